"""The wiretape mitmproxy addon: record, replay or pass through each exchange."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import connection, ctx, exceptions, http, tls
from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import metrics
from wiretape.storage import repository as repo
from wiretape.storage.exchange import FailureKind, Mode, OnMiss, Request, SequencePolicy
from wiretape.storage.matching import MatchRules, match_key
from wiretape.storage.notify import Notifier
from wiretape.storage.redact import Redactor
from wiretape.storage.replay import ReplayIndex, gc_paused

from . import flows
from .writer import Writer

log = logging.getLogger(__name__)

RECORD = "wiretape.record"  # flow.metadata key: (tape, captured_ns) for flows to store
REPLAYED = "wiretape.replayed"  # flow.metadata key: answered from a recording (for /metrics)
COUNTED = "wiretape.counted"  # flow.metadata key: already counted for /metrics
TIMED_OUT = "wiretape.timed_out"  # flow.metadata key: we aborted it, the upstream was too slow
CLOSEST_MEMO_SIZE = 1024  # distinct misses whose closest recordings are kept


class InvalidLatency(ValueError):
    """--replay-latency must be none, recorded or a number of milliseconds."""


def parse_latency(value: str) -> str | float:
    v = value.strip().lower()
    if v in ("none", "recorded"):
        return v
    try:
        ms = float(v.removesuffix("ms"))
    except ValueError as e:
        raise InvalidLatency(
            f"replay latency {value!r} must be none, recorded or a number of milliseconds"
        ) from e
    if not 0 <= ms <= 600_000:
        raise InvalidLatency("replay latency must be between 0 and 600000 ms")
    return ms


def parse_upstream_timeout(value: str) -> float:
    try:
        seconds = float(value.strip().lower().removesuffix("s"))
    except ValueError as e:
        raise ValueError(
            f"upstream timeout {value!r} must be a number of seconds (0: wait forever)"
        ) from e
    if not 0 <= seconds <= 86_400:
        raise ValueError("upstream timeout must be between 0 and 86400 seconds")
    return seconds


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The addon's options, parsed once in configure()."""

    sequence: SequencePolicy = SequencePolicy.REPEAT_LAST
    latency: str | float = "none"
    redactor: Redactor = field(default_factory=Redactor)
    poll_interval: float = 1.0
    upstream_timeout: float = 60.0  # seconds until the response head; 0 waits forever
    # mitmproxy's ignore_hosts: it tunnels such HTTPS untouched; plain HTTP to them we
    # forward without recording or replaying, so both schemes behave alike
    ignore_hosts: tuple[re.Pattern[str], ...] = ()


def reload_pause(load_seconds: float) -> float:
    """Seconds the poller rests after a refresh before a nudge may wake it: long enough to
    coalesce a burst of nudges, and after loading a replay index twice what the load took
    (at most 1 s). A big tape that keeps growing (`--on-miss record` on 100,000 recordings:
    about 0.5 s a load) then spends at most a third of the proxy's core reloading; the
    state is still read every poll interval.
    """
    return max(0.05, min(2 * load_seconds, 1.0))


@dataclass(slots=True)
class Runtime:
    """What the request path reads: the shared state as last seen, and the replay index."""

    mode: Mode = Mode.RECORD
    tape: str = "default"
    on_miss: OnMiss = OnMiss.ERROR
    rules: MatchRules = field(default_factory=MatchRules)
    index: ReplayIndex = field(default_factory=ReplayIndex)
    generation: int = 0
    loaded: tuple[str, int] | None = None  # (tape, revision) the index was built from


@dataclass(frozen=True, slots=True)
class _Snapshot:
    mode: Mode
    tape: str
    on_miss: OnMiss
    generation: int
    rules: MatchRules
    revision: int
    index: ReplayIndex | None  # None: index unchanged
    load_seconds: float = 0.0  # what loading `index` took


class Wiretape:
    def __init__(
        self, sessions: sessionmaker[Session], writer: Writer, notifier: Notifier | None = None
    ) -> None:
        self.sessions = sessions
        self.writer = writer
        self.config = ProxyConfig()
        self.rt = Runtime()
        self._nudge: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Lock | None = None
        # refresh() calls so far, and how many of them the last applied read began after:
        # concurrent admin API writes share one read (and index load) instead of queueing
        self._asked = 0
        self._served = 0
        # (tape, match key, host) -> closest recordings of a miss; replaced on any change
        self._closest_memo: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._loop_thread: int | None = None
        # flow.id -> the timer that aborts a forwarded request whose upstream is too slow
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        if notifier is not None:
            notifier.subscribe(self._on_change)

    # -- options -----------------------------------------------------------------------
    def load(self, loader: Any) -> None:
        loader.add_option(
            "wiretape_sequence", str, "repeat-last",
            "After the last recording of a key: repeat-last, cycle or strict.",
            choices=[p.value for p in SequencePolicy],
        )
        loader.add_option(
            "wiretape_replay_latency", str, "none",
            "Replay delay: none, recorded, or a fixed number of milliseconds.",
        )
        loader.add_option("wiretape_redact_header", Sequence[str], [], "More headers to redact.")
        loader.add_option("wiretape_redact_query", Sequence[str], [], "More query names to redact.")
        loader.add_option("wiretape_redact_json", Sequence[str], [], "More JSON fields to redact.")
        loader.add_option(
            "wiretape_poll_interval", str, "1.0",
            "Seconds between checks of the shared store for mode, rule and tape changes.",
        )
        loader.add_option(
            "wiretape_upstream_timeout", str, "60",
            "Seconds a forwarded request may wait for the upstream's response head; "
            "then it fails as a timeout (recorded, and replayed as one). 0: no limit.",
        )

    def configure(self, updated: set[str]) -> None:
        if not any(u.startswith("wiretape_") or u == "ignore_hosts" for u in updated):
            return
        o = ctx.options
        try:
            poll = float(o.wiretape_poll_interval)
            if not 0.05 <= poll <= 60:
                raise ValueError("poll interval must be between 0.05 and 60 seconds")
            self.config = ProxyConfig(
                sequence=SequencePolicy(o.wiretape_sequence),
                latency=parse_latency(o.wiretape_replay_latency),
                redactor=Redactor.with_extra(
                    o.wiretape_redact_header, o.wiretape_redact_query, o.wiretape_redact_json
                ),
                poll_interval=poll,
                upstream_timeout=parse_upstream_timeout(o.wiretape_upstream_timeout),
                ignore_hosts=tuple(re.compile(x, re.IGNORECASE) for x in o.ignore_hosts),
            )
        except (ValueError, re.error) as e:
            raise exceptions.OptionsError(str(e)) from e

    # -- shared state ------------------------------------------------------------------
    def _read(self, loaded: tuple[str, int] | None, force: bool) -> _Snapshot | None:
        with self.sessions() as s:
            state = repo.get_state(s)
            if state is None:
                return None
            tape = repo.get_tape(s, state.tape)
            revision = tape.revision if tape else -1
            mode = Mode(state.mode)
            index = None
            started = time.perf_counter()
            if mode is Mode.REPLAY and (force or loaded != (state.tape, revision)):
                # off the event loop, the collector paused: a big tape is 100,000s of
                # objects, and a collection pass per few hundred of them doubled the load
                with gc_paused():
                    index = ReplayIndex(repo.replay_entries(s, state.tape))
            return _Snapshot(
                mode=mode,
                tape=state.tape,
                on_miss=OnMiss(state.on_miss),
                generation=state.replay_generation,
                rules=MatchRules.from_dict(tape.matching if tape else None),
                revision=revision,
                index=index,
                load_seconds=time.perf_counter() - started if index is not None else 0.0,
            )

    def _apply(self, snap: _Snapshot) -> None:
        rt = self.rt
        if snap.index is not None:
            if rt.loaded is not None and rt.loaded[0] == snap.tape:
                snap.index.keep_positions(rt.index)  # sequences go on where they were
            rt.index = snap.index
            rt.loaded = (snap.tape, snap.revision)
            log.info("replay index: tape %s, %d recordings", snap.tape, rt.index.size)
        if snap.index is not None or (snap.tape, snap.rules) != (rt.tape, rt.rules):
            self._closest_memo = {}
        if snap.generation != rt.generation:
            rt.index.reset()
            rt.generation = snap.generation
        if (snap.mode, snap.tape, snap.on_miss) != (rt.mode, rt.tape, rt.on_miss):
            log.info("mode %s, tape %s, on-miss %s", snap.mode, snap.tape, snap.on_miss)
        rt.mode, rt.tape, rt.on_miss, rt.rules = snap.mode, snap.tape, snap.on_miss, snap.rules

    def prepare(self) -> None:
        """Load the shared state and the replay index before the proxy starts listening."""
        snap = self._read(None, force=True)
        if snap is not None:
            self._apply(snap)
        # what is alive now (modules, the index) lives as long as the process: keep it out
        # of the collector's passes (reference counting still frees a replaced index)
        gc.freeze()

    async def refresh(self, force: bool = False) -> float:
        """Take in the shared state; the seconds spent loading a new replay index, if any."""
        # one at a time: a slow read must not apply an older snapshot over a newer one
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        self._asked += 1
        ticket = self._asked
        async with self._refreshing:
            if not force and self._served >= ticket:
                return 0.0  # a read that began after this call has been applied meanwhile
            began = self._asked  # callers queued behind us are served by this read too
            snap = await asyncio.to_thread(self._read, self.rt.loaded, force)
            self._served = began
            if snap is None:
                return 0.0
            self._apply(snap)
            return snap.load_seconds

    def _on_change(self, wait: bool) -> concurrent.futures.Future[object] | None:
        """Called from the writer thread or the admin API's threads after a commit.

        The writer's nudges are coalesced by the poller. A caller that waits (the admin API)
        gets a future that completes once the change is applied here, so it answers only
        after this process serves what it wrote.
        """
        loop, nudge = self._loop, self._nudge
        if loop is None or nudge is None or loop.is_closed():
            return None
        if not wait or threading.get_ident() == self._loop_thread:
            loop.call_soon_threadsafe(nudge.set)
            return None
        return asyncio.run_coroutine_threadsafe(self._refresh_logged(), loop)

    async def _refresh_logged(self) -> float:
        try:
            return await self.refresh()
        except Exception:
            log.exception("reading the shared state failed; keeping the last one")
            return 0.0

    async def _poll(self) -> None:
        assert self._nudge is not None
        pause = 0.0
        while True:
            # the rest after a refresh counts towards the poll interval: unnudged, the
            # state is still read every poll interval; nudged, no sooner than `pause`
            await asyncio.sleep(pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(),
                                       timeout=max(0.0, self.config.poll_interval - pause))
            self._nudge.clear()
            pause = reload_pause(await self._refresh_logged())

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._nudge = asyncio.Event()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()

    # -- connections ---------------------------------------------------------------------
    def client_disconnected(self, client: connection.Client) -> None:
        """Close a client socket mitmproxy has finished with but left open.

        A client that half-closes and then fails the TLS handshake (bytes that parse as a
        broken ClientHello, then FIN) ends mitmproxy's handler with the socket still open:
        it would sit in CLOSE_WAIT until tcp_timeout. On every normal path the transport
        is already gone by this hook, so this closes nothing else.
        """
        server = ctx.master.addons.get("proxyserver")
        handler = getattr(server, "connections", {}).get(client.id)
        io = handler.transports.get(client) if handler is not None else None
        writer = io.writer if io is not None else None
        if writer is not None and not writer.is_closing():
            log.debug("closing a client connection mitmproxy left open: %s", client.peername)
            writer.close()

    # -- TLS with clients ----------------------------------------------------------------
    def tls_start_client(self, data: tls.TlsData) -> None:
        """Pick HTTP/2 for a client that offers it.

        With connection_strategy=lazy mitmproxy meets the client before any upstream, so it
        has no server choice to mirror and takes the client's first offer, and clients such
        as httpx list http/1.1 before h2: they would never get HTTP/2 through wiretape,
        though real servers (and mitmproxy's eager default) give it to them. This runs after
        mitmproxy's tlsconfig addon has prepared the connection, and changes its choice
        only where it had nothing to go on.
        """
        app = data.ssl_conn.get_app_data() if data.ssl_conn is not None else None
        if (
            isinstance(app, dict)
            and app.get("http2")
            and app.get("client_alpn") is None
            and app.get("server_alpn") is None
            and b"h2" in (data.conn.alpn_offers or ())
        ):
            app["client_alpn"] = b"h2"

    # -- the request path --------------------------------------------------------------
    async def request(self, flow: http.HTTPFlow) -> None:
        rt = self.rt
        if flow.response is not None:
            return
        if flow.request.headers.get("upgrade"):
            # WebSocket and other upgrades become a stream of frames, not an exchange
            if rt.mode is not Mode.PASSTHROUGH:
                log.info("%s %s: upgrade to %s passed through, not recorded",
                         flow.request.method, flow.request.pretty_url,
                         flow.request.headers["upgrade"])
            self._arm(flow)
            return
        if rt.mode is Mode.PASSTHROUGH or self._ignored(flow):
            self._arm(flow)
            return
        if rt.mode is Mode.RECORD:
            flow.metadata[RECORD] = (rt.tape, time.time_ns())
            self._arm(flow)
            return
        try:
            req = self.config.redactor.request(flows.request_of(flow))
            key = match_key(req, rt.rules)
            entry = rt.index.next(key, self.config.sequence)
        except Exception as e:
            # an addon error would let mitmproxy forward the flow: replay must never reach
            # the network, so answer instead
            log.exception("%s %s: cannot match this request", flow.request.method,
                          flow.request.pretty_url)
            flow.response = flows.error_response(f"wiretape could not replay this request: {e}")
            return
        if entry is not None:
            await self._delay(entry.duration_ms)
            if entry.failure_kind is not None:
                flow.response = flows.failure_response(entry, flow.request.is_http2)
            else:
                flow.response = flows.replayed_response(entry)
            flow.metadata[REPLAYED] = True
            log.info("replayed #%d %s %s", entry.id, req.method, req.url)
            return
        await self._miss(flow, req, key)

    def _ignored(self, flow: http.HTTPFlow) -> bool:
        if not self.config.ignore_hosts:
            return False
        target = f"{flow.request.host}:{flow.request.port}"
        return any(rex.search(target) for rex in self.config.ignore_hosts)

    # -- the upstream timeout ------------------------------------------------------------
    def _arm(self, flow: http.HTTPFlow) -> None:
        """Start the clock on a request about to be forwarded.

        mitmproxy has no upstream response timeout (only tcp_timeout, 600 s of client
        inactivity) and cannot kill a flow in transit (mitmproxy issue #4711), so on expiry
        we cancel the task of the flow's server connection: mitmproxy then fails the flow
        as it does for any upstream that went away, and the client gets its usual 502.
        """
        seconds = self.config.upstream_timeout
        if seconds > 0:
            loop = asyncio.get_running_loop()
            self._deadlines[flow.id] = loop.call_later(seconds, self._expire, flow)

    def _disarm(self, flow: http.HTTPFlow) -> None:
        timer = self._deadlines.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, flow: http.HTTPFlow) -> None:
        self._deadlines.pop(flow.id, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        seconds = self.config.upstream_timeout
        task = _server_task(flow)
        if task is None:
            log.warning("%s %s: no answer within %g s, but its upstream connection was not "
                        "found to abort", flow.request.method, flow.request.pretty_url, seconds)
            return
        flow.metadata[TIMED_OUT] = True
        log.info("%s %s: no answer from the upstream within %g s; aborted",
                 flow.request.method, flow.request.pretty_url, seconds)
        task.cancel(f"upstream did not answer within {seconds:g} s")

    async def _delay(self, recorded_ms: float) -> None:
        latency = self.config.latency
        if latency == "none":
            return
        ms = recorded_ms if latency == "recorded" else latency
        assert isinstance(ms, float)
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    def _closest(self, tape: str, req: Request, rules: MatchRules) -> list[dict[str, Any]]:
        with self.sessions() as s:
            return repo.closest(s, tape, req, rules)

    async def _closest_cached(self, req: Request, key: str) -> list[dict[str, Any]]:
        """The closest recordings to a miss, computed once per key while the tape and its
        rules stay as they are: a test suite repeats its misses (retries, polling), and
        each would otherwise cost queries and a diff against every candidate."""
        rt = self.rt
        # explain() reports the host as sent; everything else it reads is in the key
        cache_key = (rt.tape, key, req.host)
        cached = self._closest_memo.get(cache_key)
        if cached is not None:
            return cached
        memo = self._closest_memo
        closest = await asyncio.to_thread(self._closest, rt.tape, req, rt.rules)
        if memo is self._closest_memo:  # the tape or rules did not change meanwhile
            if len(memo) >= CLOSEST_MEMO_SIZE:
                memo.clear()
            memo[cache_key] = closest
        return closest

    async def _miss(self, flow: http.HTTPFlow, req: Request, key: str) -> None:
        rt = self.rt
        if rt.on_miss is OnMiss.FORWARD:
            log.info("miss %s %s: forwarded (spy)", req.method, req.url)
            self._arm(flow)
            return
        if rt.on_miss is OnMiss.RECORD:
            log.info("miss %s %s: forwarded and recorded", req.method, req.url)
            flow.metadata[RECORD] = (rt.tape, time.time_ns())
            self._arm(flow)
            return
        try:
            closest = await self._closest_cached(req, key)
        except Exception:
            log.exception("finding the closest recordings failed")
            closest = []
        self.writer.miss(rt.tape, req.method, req.url, closest)
        log.info("miss %s %s (tape %s)", req.method, req.url, rt.tape)
        flow.response = flows.miss_response(
            {
                "error": "no recording matches",
                "tape": rt.tape,
                "request": {"method": req.method, "url": req.url},
                "closest": closest,
            }
        )

    def _count(self, flow: http.HTTPFlow) -> None:
        """One count and one latency sample per finished request, for /metrics."""
        if flow.metadata.get(COUNTED):
            return  # an error after the response (client gone) is the same request
        flow.metadata[COUNTED] = True
        mode = self.rt.mode
        if RECORD in flow.metadata:
            outcome = "recorded"
        elif flow.metadata.get(REPLAYED):
            outcome = "replayed"
        elif flow.response is not None and flow.response.headers.get("Wiretape") == "miss":
            outcome = "miss"
        else:
            outcome = "forwarded" if mode is Mode.REPLAY else "passthrough"
        metrics.observe(mode.value, outcome, time.time() - flow.request.timestamp_start)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._disarm(flow)  # the upstream answered in time

    def response(self, flow: http.HTTPFlow) -> None:
        self._count(flow)
        self._disarm(flow)
        meta = flow.metadata.pop(RECORD, None)
        if meta is None:
            return
        assert flow.response is not None
        if flow.response.status_code == 101 or flow.websocket is not None:
            log.info("%s: upgraded connection passed through, not recorded",
                     flow.request.pretty_url)
            return
        tape, captured_ns = meta
        self.writer.record(tape, flows.exchange_of(flow, captured_ns))

    def error(self, flow: http.HTTPFlow) -> None:
        self._count(flow)
        self._disarm(flow)
        # set until the response hook has run: an error after that (the client leaving
        # once served) is not a second exchange; an error mid-body is this one's failure
        meta = flow.metadata.pop(RECORD, None)
        if meta is None:
            return
        timed_out = bool(flow.metadata.pop(TIMED_OUT, False))
        message = flow.error.msg if flow.error else ""
        if not timed_out and flows.client_gave_up(message):
            log.info("%s %s: the client left before the upstream answered (%s); not recorded",
                     flow.request.method, flow.request.pretty_url, message)
            return
        tape, captured_ns = meta
        kind = FailureKind.TIMEOUT if timed_out else None
        self.writer.record(tape, flows.exchange_of(flow, captured_ns, kind))


def _server_task(flow: http.HTTPFlow) -> asyncio.Task[Any] | None:
    """The asyncio task serving the flow's upstream connection (mitmproxy internals:
    the proxyserver addon's handler of this client, and its transports)."""
    server = ctx.master.addons.get("proxyserver")
    handler = getattr(server, "connections", {}).get(flow.client_conn.id)
    if handler is None:
        return None
    transports = handler.transports
    io = transports.get(flow.server_conn)
    if io is None:
        # still connecting: the flow's server_conn is set once connected, so look for the
        # connection being opened to the flow's destination
        address = (flow.request.host, flow.request.port)
        io = next((io for conn, io in transports.items()
                   if conn is not flow.client_conn and conn.address == address), None)
    return io.handler if io is not None else None
