"""Drift audits: re-send a tape's recorded requests to the live upstreams and judge the answers.

An audit
1. sends every recording's request (as recorded, minus hop-by-hop headers and REDACTED
   values, plus the `--header`s that put credentials back) to its live upstream, with a
   concurrency limit and a timeout; audits connect directly, never through HTTP_PROXY
   (which often points at wiretape itself), and trust SSL_CERT_FILE's CA if it is set;
2. sends the first request of each endpoint a second time (GET, HEAD and OPTIONS only:
   re-sending a POST twice would double its side effects), at least a second later, and
   keeps what differs between the two live answers as that endpoint's noise (timestamps,
   request ids); audits remember it in the tape (`tapes.noise_detected`);
3. classifies each difference from the recording (drift.classify): breaking, additive,
   value or latency; noise is left out unless `strict`;
4. stores the results, each recording's freshness (last verified, last verdict), and with
   `refresh` re-records what drifted in place.

The network part runs on an asyncio loop of its own (AuditRunner gives each audit a thread),
never on the proxy's: an audit stays off the request path.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from . import models as m
from . import noise
from . import repository as repo
from .compare import utc
from .diff import detect_noise, diff_exchanges, endpoint
from .drift import (
    DEFAULT_FAIL_ON,
    AuditCase,
    DriftClass,
    DriftFinding,
    at_or_above,
    classify,
    render_audit_junit,
    render_audit_text,
    worst,
)
from .errors import InvalidInput
from .exchange import Exchange, Failure, FailureKind, Headers, Request, Response
from .models import utcnow
from .redact import REDACTED, Redactor

log = logging.getLogger(__name__)

FORMATS = ("text", "json", "junit")

# Not forwarded when a recorded request is sent again: hop-by-hop headers (RFC 9110 7.6.1)
# and Content-Length, which httpx computes from the body it sends.
_NOT_SENT = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "proxy-authenticate", "proxy-authorization", "content-length", "expect",
})

# only these are sent a second time to learn noise from two live answers
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class InvalidHeader(InvalidInput):
    """A --header value that is not `Name: value`."""


class InvalidDuration(InvalidInput):
    """A duration such as --audit-every that is not a number with s, m, h or d."""


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def parse_header(text: str, flag: str = "--header") -> tuple[str, str]:
    """`Authorization: Bearer x` -> ("Authorization", "Bearer x")."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not _HEADER_NAME.match(name):
        raise InvalidHeader(f"{flag} {text!r} must be 'Name: value', e.g. "
                            "'Authorization: Bearer …'")
    return check_header(name, value.strip())


def check_header(name: str, value: str) -> tuple[str, str]:
    """A header that can go on the wire: a token name, a Latin-1 value without line breaks."""
    if not _HEADER_NAME.match(name):
        raise InvalidHeader(f"header name {name!r} is not valid")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise InvalidHeader(f"header {name} has a line break or control character in its value")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as e:
        raise InvalidHeader(f"header {name} value must be Latin-1 text") from e
    return name, value


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*\Z", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, flag: str = "duration") -> float:
    """`30s`, `15m`, `24h`, `1d` (or plain seconds) -> seconds."""
    m = _DURATION.match(text or "")
    seconds = float(m.group(1)) * _UNIT[m.group(2).lower()] if m else 0.0
    if seconds <= 0:
        raise InvalidDuration(f"{flag} {text!r} must be a positive number with s, m, h or d, "
                              "e.g. 30s, 15m, 24h, 1d")
    return seconds


@dataclass(frozen=True, slots=True)
class AuditOptions:
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, replacing any same name
    concurrency: int = 4
    timeout: float = 10.0  # seconds per request
    strict: bool = False
    fail_on: DriftClass = DEFAULT_FAIL_ON
    refresh: bool = False
    verify_tls: bool = True
    # how many recordings per endpoint (safe methods only) get a second live answer to learn
    # noise from, and the least time between the two (so second-resolution timestamps differ)
    noise_probes: int = 1
    probe_gap: float = 1.0
    # latency drift needs the live answer slower than 2x recorded AND this much slower: on a
    # fast network 1 ms -> 3 ms is jitter, not drift
    latency_floor_ms: float = 25.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InvalidInput("concurrency must be at least 1")
        if not self.timeout > 0:
            raise InvalidInput("timeout must be a positive number of seconds")
        for name, value in self.headers:
            check_header(name, value)

    def to_dict(self) -> dict[str, Any]:
        """What is stored with the audit: header names only, never their values."""
        return {"headers": sorted({n for n, _ in self.headers}), "concurrency": self.concurrency,
                "timeout": self.timeout, "refresh": self.refresh, "verify_tls": self.verify_tls}


# -- sending ------------------------------------------------------------------------------


def request_headers(req: Request, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The recorded request's headers to send again: hop-by-hop ones and REDACTED values
    left out, the extra ones added (replacing recorded headers of the same name)."""
    replaced = {n.lower() for n, _ in extra}
    kept = [(n, v) for n, v in req.headers
            if n.lower() not in _NOT_SENT and n.lower() not in replaced and v != REDACTED]
    return kept + list(extra)


def _failure_kind(e: Exception) -> FailureKind:
    """The kind of failure, as the proxy records it (refused, reset, timeout, error)."""
    if isinstance(e, httpx.TimeoutException):
        return FailureKind.TIMEOUT
    # httpx words a refusal "All connection attempts failed"; the OS error is in the chain
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return FailureKind.REFUSED
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return FailureKind.RESET
        cause = cause.__cause__ or cause.__context__
    if "refused" in str(e).lower():
        return FailureKind.REFUSED
    if isinstance(e, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return FailureKind.RESET
    return FailureKind.ERROR


async def send(client: httpx.AsyncClient, req: Request,
               extra: Sequence[tuple[str, str]] = ()) -> Exchange:
    """One live exchange for a recorded request. The exchange keeps the recorded request
    (never the extra headers); the response body is kept as sent (not decoded), like the
    proxy records it."""
    started_ns = time.time_ns()
    t0 = time.perf_counter()
    try:
        # httpx.Request, not client.build_request: no client default headers (Accept-Encoding,
        # User-Agent) are added to what the recording sent
        live = httpx.Request(req.method, req.url, headers=request_headers(req, extra),
                             content=req.body or None)
        resp = await client.send(live, stream=True)
        try:
            body = b"".join([chunk async for chunk in resp.aiter_raw()])
        finally:
            await resp.aclose()
    except httpx.HTTPError as e:
        ms = (time.perf_counter() - t0) * 1000
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return Exchange(req, None, Failure(_failure_kind(e), message), started_ns, ms)
    ms = (time.perf_counter() - t0) * 1000
    headers: Headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in resp.headers.raw)
    response = Response(resp.status_code, headers, body, resp.reason_phrase, resp.http_version)
    return Exchange(req, response, None, started_ns, ms)


@dataclass(frozen=True, slots=True)
class Target:
    """A recording to audit."""

    id: int
    match_key: str
    exchange: Exchange

    @property
    def endpoint(self) -> str:
        return endpoint(self.exchange)


def _answered(ex: Exchange) -> bool:
    return ex.response is not None and ex.failure is None


def _probed_twice(t: Target) -> bool:
    return t.exchange.request.method.upper() in SAFE_METHODS


async def probe(
    targets: Sequence[Target],
    options: AuditOptions,
    progress: Callable[[int], None] | None = None,
) -> dict[int, list[Exchange]]:
    """Live answers per recording id: one for each, two for the first `noise_probes`
    recordings of each GET/HEAD/OPTIONS endpoint (when the first one got an answer)."""
    tick = progress or (lambda _n: None)
    sem = asyncio.Semaphore(options.concurrency)
    answers: dict[int, list[Exchange]] = {t.id: [] for t in targets}
    done_at: dict[int, float] = {}
    limits = httpx.Limits(max_connections=options.concurrency,
                          max_keepalive_connections=options.concurrency)
    # An explicit transport: HTTP_PROXY and friends are not used (they often point at
    # wiretape itself), while SSL_CERT_FILE / SSL_CERT_DIR still name a private CA.
    transport = httpx.AsyncHTTPTransport(verify=options.verify_tls, trust_env=True,
                                         limits=limits)
    async with httpx.AsyncClient(transport=transport, timeout=options.timeout,
                                 follow_redirects=False) as client:

        async def one(t: Target, not_before: float = 0.0) -> None:
            delay = not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with sem:
                ex = await send(client, t.exchange.request, options.headers)
            answers[t.id].append(ex)
            done_at[t.id] = time.monotonic()
            tick(1)

        # tasks start in capture order, so a sequence (pending, then confirmed) is re-sent
        # in the order it was recorded
        await asyncio.gather(*(one(t) for t in targets))
        per_endpoint: dict[str, int] = {}
        second = []
        for t in targets:
            n = per_endpoint.get(t.endpoint, 0)
            if n < options.noise_probes and _probed_twice(t) and _answered(answers[t.id][0]):
                per_endpoint[t.endpoint] = n + 1
                second.append(one(t, done_at[t.id] + options.probe_gap))
        await asyncio.gather(*second)
    return answers


# -- judging ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    target: Target
    live: Exchange  # the first live answer (duration: the fastest answer's)
    findings: tuple[DriftFinding, ...]
    ignored: int

    @property
    def verdict(self) -> str:
        w = worst(self.findings)
        return str(w) if w else "ok"


def judge(
    targets: Sequence[Target],
    answers: dict[int, list[Exchange]],
    options: AuditOptions,
    manual: Sequence[str] = (),
    detected: dict[str, list[str]] | None = None,
) -> tuple[list[Outcome], noise.EndpointNoise]:
    """Classify each live answer against its recording; returns the outcomes and the noise
    learned from the live answers this time."""
    live_noise: noise.EndpointNoise = {}
    for t in targets:
        got = [ex for ex in answers[t.id] if _answered(ex)]
        if len(got) > 1:
            found = detect_noise(got)
            if found:
                live_noise.setdefault(t.endpoint, set()).update(found)
    recorded_noise = noise.recordings_noise((t.match_key, t.exchange) for t in targets)
    per_endpoint = noise.merge(detected or {}, recorded_noise, live_noise)
    outcomes = []
    for t in targets:
        first = answers[t.id][0]
        if _answered(first):
            fastest = min(ex.duration_ms for ex in answers[t.id] if _answered(ex))
            first = first.with_(duration_ms=fastest)
        matcher = noise.matcher_for(manual, per_endpoint, t.endpoint)
        findings = [
            f for f in classify(t.exchange, first, matcher, options.strict)
            if f.drift_class is not DriftClass.LATENCY
            or f.new - f.old >= options.latency_floor_ms
        ]
        ignored = 0
        if matcher and not options.strict:
            ignored = len(diff_exchanges(t.exchange, first, matcher).ignored)
        outcomes.append(Outcome(t, first, tuple(findings), ignored))
    return outcomes, live_noise


def summarize(outcomes: Sequence[Outcome], options: AuditOptions, refreshed: int,
              live_noise: noise.EndpointNoise, seconds: float) -> dict[str, Any]:
    by_class = {str(c): 0 for c in DriftClass}
    verdicts: dict[str, int] = {}
    for o in outcomes:
        for f in o.findings:
            by_class[str(f.drift_class)] += 1
        verdicts[o.verdict] = verdicts.get(o.verdict, 0) + 1
    failing = sum(1 for o in outcomes if at_or_above(o.findings, options.fail_on))
    return {
        "recordings": len(outcomes),
        "drifted": sum(1 for o in outcomes if o.findings),
        "failing": failing,
        "passed": failing == 0,
        "by_class": by_class,
        "verdicts": dict(sorted(verdicts.items())),
        "refreshed": refreshed,
        "noise_learned": {ep: sorted(ps) for ep, ps in sorted(live_noise.items())},
        "seconds": round(seconds, 3),
    }


# -- reports ------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    value = utc(value)
    return value.isoformat() if value else None


@dataclass(slots=True)
class AuditReport:
    """An audit as stored: what the API answers and the CLI prints."""

    id: int
    tape: str
    status: str
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    fail_on: str
    strict: bool
    options: dict[str, Any]
    summary: dict[str, Any]
    error: str
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        """Drift at or above fail-on was found, or the audit itself failed."""
        return self.status == "failed" or int(self.summary.get("failing", 0)) > 0

    def cases(self) -> list[AuditCase]:
        return [
            AuditCase(
                recording_id=r["recording_id"] if r["recording_id"] is not None else 0,
                endpoint=r["endpoint"], url=r["url"],
                findings=tuple(
                    DriftFinding(DriftClass(f["class"]), f["path"], f.get("old"), f.get("new"),
                                 f["message"])
                    for f in r["findings"]
                ),
            )
            for r in self.results
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "tape": self.tape, "status": self.status, "trigger": self.trigger,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "fail_on": self.fail_on, "strict": self.strict, "options": self.options,
            "summary": self.summary, "error": self.error, "results": self.results,
        }

    def render(self, fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
        if fmt == "junit":
            return render_audit_junit(self.cases(), f"wiretape audit {self.tape}", self.fail_on)
        return self.render_text()

    def render_text(self) -> str:
        head = f"audit {self.id} of tape {self.tape}"
        if self.status == "failed":
            return f"{head}: failed: {self.error}\n"
        if self.status == "running":
            return f"{head}: running\n"
        verdict = (f"FAIL: drift at or above {self.fail_on}" if self.failing
                   else f"PASS: no drift at or above {self.fail_on}")
        lines = [f"{head}: {verdict}", render_audit_text(self.cases(), self.fail_on).rstrip("\n")]
        refreshed = [r for r in self.results if r.get("refreshed")]
        if refreshed:
            lines += ["", f"re-recorded {len(refreshed)} drifted recording(s): "
                          + ", ".join(str(r["recording_id"]) for r in refreshed)]
        learned = self.summary.get("noise_learned") or {}
        if learned:
            lines += ["", "noise left out (differs between two live answers):"]
            lines += [f"  {ep}: {', '.join(ps)}" for ep, ps in learned.items()]
        return "\n".join(lines) + "\n"


def _result_dict(r: Any) -> dict[str, Any]:
    return {
        "recording_id": r.recording_id, "endpoint": r.endpoint, "method": r.method,
        "url": r.url, "verdict": r.verdict, "findings": r.findings, "ignored": r.ignored,
        "live_status": r.live_status, "live_failure": r.live_failure,
        "duration_ms": r.duration_ms, "recorded_duration_ms": r.recorded_duration_ms,
        "refreshed": r.refreshed, "checked_at": _iso(r.checked_at),
    }


def load_report(s: Session, audit_id: int) -> AuditReport:
    """An audit from the store (raises repository.AuditNotFound)."""
    audit, tape = repo.get_audit(s, audit_id)
    return AuditReport(
        id=audit.id, tape=tape, status=audit.status, trigger=audit.trigger,
        started_at=audit.started_at, finished_at=audit.finished_at, fail_on=audit.fail_on,
        strict=audit.strict, options=audit.options or {}, summary=audit.summary or {},
        error=audit.error or "",
        results=[_result_dict(r) for r in repo.audit_results(s, audit_id)],
    )


# -- one audit of a tape, from start to stored --------------------------------------------


class TapeAudit:
    """An audit of one tape: `begin` stores it as running, `run` audits and stores results."""

    def __init__(self, sessions: sessionmaker[Session], audit_id: int, tape: str,
                 targets: list[Target], manual: list[str], detected: dict[str, list[str]],
                 options: AuditOptions, redactor: Redactor,
                 on_change: Callable[[], None] | None) -> None:
        self.sessions = sessions
        self.id = audit_id
        self.tape = tape
        self.targets = targets
        self.manual = manual
        self.detected = detected
        self.options = options
        self.redactor = redactor
        self.on_change = on_change

    @classmethod
    def begin(
        cls,
        sessions: sessionmaker[Session],
        tape: str,
        options: AuditOptions,
        *,
        trigger: str = "cli",
        redactor: Redactor | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> TapeAudit:
        """Store a new running audit (raises repository.TapeNotFound)."""
        with sessions.begin() as s:
            audit = repo.create_audit(s, tape, trigger=trigger, fail_on=str(options.fail_on),
                                      strict=options.strict, options=options.to_dict())
            targets = [Target(r.id, r.match_key, repo.row_exchange(r))
                       for r in repo.audit_recordings(s, tape)]
            manual, detected = repo.tape_noise(s, tape)
            audit_id = audit.id
        return cls(sessions, audit_id, tape, targets, manual, detected, options,
                   redactor or Redactor(), on_change)

    @property
    def planned(self) -> int:
        """How many requests the audit sends at most (for a progress bar)."""
        endpoints: dict[str, int] = {}
        for t in self.targets:
            if _probed_twice(t):
                endpoints[t.endpoint] = min(endpoints.get(t.endpoint, 0) + 1,
                                            self.options.noise_probes)
        return len(self.targets) + sum(endpoints.values())

    async def run(self, progress: Callable[[int], None] | None = None) -> AuditReport:
        started = time.monotonic()
        try:
            answers = await probe(self.targets, self.options, progress)
            outcomes, live_noise = await asyncio.to_thread(
                judge, self.targets, answers, self.options, self.manual, self.detected)
            await asyncio.to_thread(self._store, outcomes, live_noise,
                                    time.monotonic() - started)
        except BaseException as e:  # cancelled too: the audit must not stay "running"
            reason = "interrupted" if isinstance(e, asyncio.CancelledError) else (
                f"{type(e).__name__}: {e}")
            log.warning("audit %d of tape %s failed: %s", self.id, self.tape, reason)
            try:
                with self.sessions.begin() as s:
                    repo.finish_audit(s, self.id, "failed", {}, reason)
            except Exception:
                log.exception("could not mark audit %d failed", self.id)
            raise
        with self.sessions() as s:
            report = load_report(s, self.id)
        log.info("audit %d of tape %s: %d recordings, %d drifted, %d at or above %s",
                 self.id, self.tape, report.summary["recordings"], report.summary["drifted"],
                 report.summary["failing"], self.options.fail_on)
        return report

    def _refreshable(self, o: Outcome) -> bool:
        # a live failure never replaces an answer: an unreachable staging service would
        # otherwise wipe the tape
        return self.options.refresh and bool(o.findings) and _answered(o.live)

    def _store(self, outcomes: list[Outcome], live_noise: noise.EndpointNoise,
               seconds: float) -> None:
        now = utcnow()
        refreshed = 0
        with self.sessions.begin() as s:
            rows = []
            for o in outcomes:
                did_refresh = False
                if self._refreshable(o):
                    rec = s.get(m.Recording, o.target.id)
                    if rec is not None:
                        repo.refresh_recording(s, rec, self.redactor.exchange(o.live))
                        did_refresh = True
                        refreshed += 1
                live = o.live
                rows.append({
                    "recording_id": o.target.id,
                    "endpoint": o.target.endpoint,
                    "method": o.target.exchange.request.method,
                    "url": o.target.exchange.request.url,
                    "verdict": o.verdict,
                    "findings": [_jsonable(f.to_dict()) for f in o.findings],
                    "ignored": o.ignored,
                    "live_status": live.response.status if live.response else None,
                    "live_failure": str(live.failure.kind) if live.failure else None,
                    "duration_ms": round(live.duration_ms, 3),
                    "recorded_duration_ms": o.target.exchange.duration_ms,
                    "refreshed": did_refresh,
                    "checked_at": now,
                })
            repo.add_audit_results(s, self.id, rows)
            tape = repo.require_tape(s, self.tape)
            repo.add_detected_noise(s, tape.id, live_noise)
            repo.finish_audit(s, self.id, "done",
                              summarize(outcomes, self.options, refreshed, live_noise, seconds))
        if refreshed and self.on_change is not None:
            self.on_change()


def _jsonable(value: Any) -> Any:
    """Finding values come from bodies: keep them JSON (bytes never reach here, but be safe)."""
    return json.loads(json.dumps(value, default=str))


# -- running audits off the event loop ----------------------------------------------------


class AuditRunner:
    """Runs audits on threads of their own, each with its own event loop, so an audit never
    runs on the proxy's loop. `stop()` cancels what still runs (stored as failed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[threading.Thread, asyncio.AbstractEventLoop,
                                       asyncio.Task[AuditReport]]] = {}
        _RUNNERS.add(self)

    def start(self, audit: TapeAudit) -> concurrent.futures.Future[AuditReport]:
        future: concurrent.futures.Future[AuditReport] = concurrent.futures.Future()
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            task = loop.create_task(audit.run())
            with self._lock:
                self._running[audit.id] = (threading.current_thread(), loop, task)
            ready.set()
            try:
                future.set_result(loop.run_until_complete(task))
            except BaseException as e:
                future.set_exception(e)
            finally:
                with self._lock:
                    self._running.pop(audit.id, None)
                loop.close()

        threading.Thread(target=main, name=f"wiretape-audit-{audit.id}", daemon=True).start()
        ready.wait()
        return future

    @property
    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._running)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            running = list(self._running.values())
        for _thread, loop, task in running:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass
        deadline = time.monotonic() + timeout
        for thread, _loop, _task in running:
            thread.join(max(0.0, deadline - time.monotonic()))


_RUNNERS: weakref.WeakSet[AuditRunner] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # daemon threads die with the interpreter: cancel first, so audits are stored as failed
    # instead of staying "running" forever
    for runner in list(_RUNNERS):
        runner.stop(5.0)


# -- audits on a schedule ---------------------------------------------------------------


def audit_due(s: Session, every: float) -> str | None:
    """The current tape (the shared runtime state's), if it has recordings and no audit of
    it started within `every` seconds; otherwise None. Several processes sharing one
    database thus audit a tape about once per interval between them."""
    state = repo.get_state(s)
    if state is None or repo.get_tape(s, state.tape) is None:
        return None
    if repo.count_recordings(s, state.tape) == 0:
        return None
    last = utc(repo.last_audit_started(s, state.tape))
    if last is not None and utcnow() - last < timedelta(seconds=every):
        return None
    return state.tape


async def audit_every(
    sessions: sessionmaker[Session],
    every: float,
    options: AuditOptions,
    runner: AuditRunner,
    redactor: Redactor | None = None,
) -> None:
    """Audit the current tape whenever one is due, forever (cancel the task to stop)."""
    check = min(every, 60.0)
    while True:
        try:
            tape = await asyncio.to_thread(_due, sessions, every)
            if tape is not None:
                audit = await asyncio.to_thread(TapeAudit.begin, sessions, tape, options,
                                                trigger="schedule", redactor=redactor)
                log.info("scheduled audit %d of tape %s started", audit.id, tape)
                try:
                    await asyncio.wrap_future(runner.start(audit))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    pass  # logged and stored as failed by the audit itself
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled audit failed")
        await asyncio.sleep(check)


def _due(sessions: sessionmaker[Session], every: float) -> str | None:
    with sessions() as s:
        return audit_due(s, every)
