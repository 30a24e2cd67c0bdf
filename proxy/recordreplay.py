"""Record, replay or pass through each exchange, as the shared state's mode says."""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from typing import Any

from mitmproxy import http
from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import repository as repo
from wiretape.storage.exchange import FailureKind, Mode, OnMiss, Request, Truncation
from wiretape.storage.matching import MatchRules, header_values, match_keys
from wiretape.storage.redact import Redactor

from . import flows
from .metrics import OUTCOME, Outcome
from .options import ReplayDate, WiretapeOptions
from .state import Runtime
from .streams import (
    CAPTURE,
    Capture,
    StreamReplay,
    UpstreamThrottle,
    replays_as_stream,
    should_stream,
)
from .timeout import TIMED_OUT
from .writer import Writer

log = logging.getLogger(__name__)

RECORD = "wiretape.record"  # flow.metadata key: (tape, captured_ns) for flows to store
CLOSEST_MEMO_SIZE = 1024  # distinct misses whose closest recordings are kept
_TRUNCATION_WHY = {
    Truncation.CLIENT: "the client left",
    Truncation.SHUTDOWN: "wiretape stopped",
    Truncation.UPSTREAM: "the upstream broke off",
}


class RecordReplay:
    """The request hook decides; the response and error hooks hand captures to the writer.

    In replay mode nothing reaches the network unless --on-miss says so: a miss is
    answered here (a 502 naming the closest recordings), unlike mitmproxy's server
    replay, which forwards a request once its recordings run out (mitmproxy #8363).
    """

    def __init__(self, rt: Runtime, options: WiretapeOptions, redactor: Redactor,
                 writer: Writer, sessions: sessionmaker[Session],
                 streams: StreamReplay | None = None) -> None:
        self.rt = rt
        self.options = options
        self.redactor = redactor
        self.writer = writer
        self.sessions = sessions
        self._date_memo: tuple[int, bytes] = (0, b"")
        self.streams = streams or StreamReplay(sessions)
        # recorded flows whose response is streaming, by flow id: stored as far as they
        # went if wiretape stops first
        self.streaming: dict[str, http.HTTPFlow] = {}

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
            return
        if rt.mode is Mode.PASSTHROUGH or self._ignored(flow):
            return
        if rt.mode is Mode.RECORD:
            self._record(flow)
            return
        try:
            req = self.redactor.request(flows.request_of(flow))
            key, fallback = match_keys(req, rt.rules)
            entry = rt.index.next(key, self.options.config.sequence, req, fallback)
        except Exception as e:
            # an addon error would let mitmproxy forward the flow: replay must never reach
            # the network, so answer instead
            log.exception("%s %s: cannot match this request", flow.request.method,
                          flow.request.pretty_url)
            flow.response = flows.error_response(f"wiretape could not replay this request: {e}")
            return
        if entry is None:
            await self._miss(flow, req, key)
            return
        config = self.options.config
        if replays_as_stream(entry, config.recorded_latency):
            started = time.monotonic()
            stream = entry.stream
            await self._delay(stream.head_ms if stream is not None else 0.0)
            await self.streams.replay(flow, entry, started, paced=config.recorded_latency)
            flow.metadata[OUTCOME] = Outcome.REPLAYED
            log.info("replayed #%d %s %s (streamed)", entry.id, req.method, req.url)
            return
        await self._delay(entry.duration_ms)
        if entry.failure_kind is not None:
            flow.response = flows.failure_response(entry, flow.request.is_http2)
        else:
            flow.response = flows.replayed_response(entry, self._date())
        flow.is_replay = "response"
        flow.metadata[OUTCOME] = Outcome.REPLAYED
        log.info("replayed #%d %s %s", entry.id, req.method, req.url)

    def _date(self) -> bytes | None:
        """--replay-date now: the time of day as a Date header (made once a second)."""
        if self.options.config.replay_date is not ReplayDate.NOW:
            return None
        second = int(time.time())
        if self._date_memo[0] != second:
            self._date_memo = (second, formatdate(second, usegmt=True).encode("ascii"))
        return self._date_memo[1]

    def _record(self, flow: http.HTTPFlow) -> None:
        flow.metadata[RECORD] = (self.rt.tape, time.time_ns())
        flow.metadata[OUTCOME] = Outcome.RECORDED

    def _ignored(self, flow: http.HTTPFlow) -> bool:
        ignore_hosts = self.options.config.ignore_hosts
        if not ignore_hosts:
            return False
        target = f"{flow.request.host}:{flow.request.port}"
        return any(rex.search(target) for rex in ignore_hosts)

    async def _delay(self, recorded_ms: float) -> None:
        config = self.options.config
        ms = recorded_ms if config.recorded_latency else config.latency_ms
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    # -- misses ------------------------------------------------------------------------
    async def _miss(self, flow: http.HTTPFlow, req: Request, key: str) -> None:
        rt = self.rt
        if rt.on_miss is OnMiss.FORWARD:
            log.info("miss %s %s: forwarded (spy)", req.method, req.url)
            return
        if rt.on_miss is OnMiss.RECORD:
            log.info("miss %s %s: forwarded and recorded", req.method, req.url)
            self._record(flow)
            return
        try:
            closest = await self._closest_cached(req, key)
        except Exception:
            log.exception("finding the closest recordings failed")
            closest = []
        self.writer.miss(rt.tape, req.method, req.url, closest)
        log.info("miss %s %s (tape %s)", req.method, req.url, rt.tape)
        flow.metadata[OUTCOME] = Outcome.MISS
        flow.response = flows.miss_response(
            {
                "error": "no recording matches",
                "tape": rt.tape,
                "request": {"method": req.method, "url": req.url},
                "closest": closest,
            }
        )

    def _closest(self, tape: str, req: Request, rules: MatchRules) -> list[dict[str, Any]]:
        with self.sessions() as s:
            return repo.closest(s, tape, req, rules)

    async def _closest_cached(self, req: Request, key: str) -> list[dict[str, Any]]:
        """The closest recordings to a miss, computed once per key while the tape and its
        rules stay as they are: a test suite repeats its misses (retries, polling), and
        each would otherwise cost queries and a diff against every candidate."""
        rt = self.rt
        # explain() reports the host as sent and the content negotiation headers; everything
        # else it reads is in the key
        cache_key = (rt.tape, key, req.host, header_values(req.headers, "accept-encoding"),
                     header_values(req.headers, "accept"))
        memo = rt.closest
        cached = memo.get(cache_key)
        if cached is not None:
            return cached
        closest = await asyncio.to_thread(self._closest, rt.tape, req, rt.rules)
        if memo is rt.closest:  # the tape or rules did not change meanwhile
            if len(memo) >= CLOSEST_MEMO_SIZE:
                memo.clear()
            memo[cache_key] = closest
        return closest

    # -- captures ----------------------------------------------------------------------
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Stream what should not wait for its end (proxy/streams.py: should_stream),
        capturing it chunk by chunk if it is being recorded."""
        resp = flow.response
        if resp is None or flow.metadata.get(OUTCOME) in (Outcome.REPLAYED, Outcome.MISS):
            return
        if not should_stream(flow.request, resp):
            return
        if RECORD in flow.metadata:
            capture = Capture(flow.request.timestamp_start, resp.timestamp_start or time.time(),
                              UpstreamThrottle(flow))
            flow.metadata[CAPTURE] = capture
            resp.stream = capture
            self.streaming[flow.id] = flow
        else:
            resp.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        self.streaming.pop(flow.id, None)
        capture: Capture | None = flow.metadata.pop(CAPTURE, None)
        meta = flow.metadata.pop(RECORD, None)
        if meta is None:
            return
        assert flow.response is not None
        if flow.response.status_code == 101 or flow.websocket is not None:
            log.info("%s: upgraded connection passed through, not recorded",
                     flow.request.pretty_url)
            return
        tape, captured_ns = meta
        if capture is not None and capture.chunks:
            self._store_stream(flow, tape, captured_ns, capture, None)
            return
        self.writer.record(tape, flows.exchange_of(flow, captured_ns))

    def _store_stream(self, flow: http.HTTPFlow, tape: str, captured_ns: int, capture: Capture,
                      truncated: Truncation | None) -> None:
        body, stream, big = capture.result(truncated)
        if truncated is not None:
            log.info("%s %s: stream stored as far as it went (%d chunks, %d bytes; %s)",
                     flow.request.method, flow.request.pretty_url, len(stream.chunks),
                     capture.size, _TRUNCATION_WHY[truncated])
        self.writer.record(tape, flows.streamed_exchange_of(flow, captured_ns, body, stream, big))

    def done(self) -> None:
        """wiretape is stopping: streams still open are stored as far as they went."""
        for flow in list(self.streaming.values()):
            self.streaming.pop(flow.id, None)
            capture = flow.metadata.pop(CAPTURE, None)
            meta = flow.metadata.pop(RECORD, None)
            if capture is not None and meta is not None:
                tape, captured_ns = meta
                self._store_stream(flow, tape, captured_ns, capture, Truncation.SHUTDOWN)

    def error(self, flow: http.HTTPFlow) -> None:
        # set until the response hook has run: an error after that (the client leaving
        # once served) is not a second exchange; an error mid-body is this one's failure
        self.streaming.pop(flow.id, None)
        capture: Capture | None = flow.metadata.pop(CAPTURE, None)
        meta = flow.metadata.pop(RECORD, None)
        if meta is None:
            return
        timed_out = bool(flow.metadata.pop(TIMED_OUT, False))
        message = flow.error.msg if flow.error else ""
        if capture is not None:
            # the head and some chunks went out live: that is what is replayed, then the
            # stream stays open (the client left) or breaks off (the upstream did)
            gave_up = flows.client_gave_up(message) and not timed_out
            truncated = Truncation.CLIENT if gave_up else Truncation.UPSTREAM
            tape, captured_ns = meta
            self._store_stream(flow, tape, captured_ns, capture, truncated)
            return
        if not timed_out and flows.client_gave_up(message):
            log.info("%s %s: the client left before the upstream answered (%s); not recorded",
                     flow.request.method, flow.request.pretty_url, message)
            return
        tape, captured_ns = meta
        kind = FailureKind.TIMEOUT if timed_out else None
        self.writer.record(tape, flows.exchange_of(flow, captured_ns, kind))
