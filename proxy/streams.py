"""Streamed responses: passed on chunk by chunk while recorded, and replayed as chunks.

Recording: a response that is an event stream, has no Content-Length (chunked, or read
until the upstream closes) or is bigger than BIG_BODY is streamed by mitmproxy
(`flow.response.stream`); a `Capture` passes each chunk on unchanged and keeps it with the
time it arrived. A body over BIG_BODY goes to a spool file instead of memory.

Replaying: mitmproxy sends a response an addon sets in one piece (its HTTP layer streams
only what comes from a server), so a recording that must go out as chunks is served by a
server of our own on a loopback port: the request hook points the flow at it, mitmproxy
streams its answer to the client, and `responseheaders` puts the recorded head (status,
headers, version) back in place of the loopback's. That server paces the chunks as
recorded, holds a truncated stream open as the live one was, and breaks off where the
upstream broke off. Big bodies are read from the store a few parts at a time, off the
event loop, through a small cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from mitmproxy import http
from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import repository as repo
from wiretape.storage.bodies import (
    BIG_BODY,
    PART_SIZE,
    SpooledBody,
    chunk_bytes,
    is_streamed,
    stream_sizes,
)
from wiretape.storage.exchange import BigBody, Stream, Truncation

from . import flows
from .workarounds import connection_handler

log = logging.getLogger(__name__)

CAPTURE = "wiretape.capture"  # flow.metadata key: the Capture of a recorded stream
# flow.metadata key: (token, job) of a replay served by StreamReplay
REPLAY_STREAM = "wiretape.replay_stream"

CACHE_BYTES = 64 * 1024 * 1024  # big bodies read from the store and kept for the next replay
CACHE_ITEM = 16 * 1024 * 1024  # bigger ones are read a few parts at a time on every replay
PARTS_PER_READ = 4


def should_stream(request: http.Request, response: http.Response) -> bool:
    """storage.bodies.is_streamed for a mitmproxy flow."""
    h = response.headers
    return is_streamed(request.method, response.status_code, h.get("content-type"),
                       h.get("content-length"))


class Throttle(Protocol):
    def pause(self) -> None: ...

    def resume(self) -> None: ...  # called from another thread


class UpstreamThrottle:
    """Stops reading from a flow's upstream connection while its body's spool catches up
    with the disk (mitmproxy's own backpressure covers only slow clients). mitmproxy's
    reader may resume the socket when it drains its buffer; the next chunk then pauses
    it again, so at most a buffer more comes in meanwhile."""

    def __init__(self, flow: http.HTTPFlow) -> None:
        self.loop = asyncio.get_running_loop()
        handler = connection_handler(flow.client_conn)
        io = handler.transports.get(flow.server_conn) if handler is not None else None
        writer = io.writer if io is not None else None
        self.transport: asyncio.BaseTransport | None = (
            writer.transport if isinstance(writer, asyncio.StreamWriter) else None)

    def pause(self) -> None:
        t = self.transport
        if isinstance(t, asyncio.ReadTransport) and not t.is_closing() and t.is_reading():
            t.pause_reading()

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self._resume)

    def _resume(self) -> None:
        t = self.transport
        if isinstance(t, asyncio.ReadTransport) and not t.is_closing() and not t.is_reading():
            t.resume_reading()


class Capture:
    """`flow.response.stream` of a recorded response: each chunk goes on to the client
    unchanged and is kept with its arrival time, in memory up to BIG_BODY bytes, then in
    a spool file (pausing the upstream while the disk lags, with `throttle`)."""

    def __init__(self, started: float, head_at: float, throttle: Throttle | None = None) -> None:
        self.started = started  # when the request was sent (epoch seconds)
        self.head_ms = max(0.0, (head_at - started) * 1000)
        self.chunks: list[tuple[float, int]] = []
        self.pieces: list[bytes] = []
        self.size = 0
        self.spool: SpooledBody | None = None
        self.throttle = throttle
        self.taken = False  # `result` was called: what comes after is not stored

    def __call__(self, data: bytes) -> bytes:
        if data and not self.taken:  # mitmproxy calls with b"" at the end
            self.chunks.append(((time.time() - self.started) * 1000, len(data)))
            self.size += len(data)
            if self.spool is None and self.size > BIG_BODY:
                throttle = self.throttle
                self.spool = SpooledBody(throttle.resume if throttle is not None else None)
                for piece in self.pieces:
                    self.spool.write(piece)
                self.pieces = []
            if self.spool is not None:
                if self.spool.write(data) and self.throttle is not None:
                    self.throttle.pause()
            else:
                self.pieces.append(data)
        return data

    def result(self, truncated: Truncation | None) -> tuple[bytes, Stream, BigBody | None]:
        """(body, stream, big body): the body in memory, or b"" and the spooled big body."""
        self.taken = True
        stream = Stream(self.head_ms, tuple(self.chunks), truncated)
        if self.spool is None:
            return b"".join(self.pieces), stream, None
        spool = self.spool
        return b"", stream, BigBody(spool.size, "", spool.preview, spool)

    def discard(self) -> None:
        if self.spool is not None:
            self.spool.close()


# -- replay -------------------------------------------------------------------------------

class BodyCache:
    """Big bodies read from the store, least recently replayed first out, at most
    CACHE_BYTES in all; bodies over CACHE_ITEM are never kept."""

    def __init__(self, capacity: int = CACHE_BYTES, item_limit: int = CACHE_ITEM) -> None:
        self.capacity, self.item_limit = capacity, item_limit
        self._items: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self.size = 0

    def get(self, key: tuple[int, str]) -> bytes | None:
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: tuple[int, str], body: bytes) -> None:
        if len(body) > self.item_limit or key in self._items:
            return
        self._items[key] = body
        self.size += len(body)
        while self.size > self.capacity:
            _, old = self._items.popitem(last=False)
            self.size -= len(old)


@dataclass(slots=True)
class _Job:
    entry: repo.ReplayEntry
    request: http.Request  # the client's, put back once the loopback's head has come
    started: float  # monotonic time the request was taken up
    paced: bool  # send each chunk at its recorded offset


class StreamReplay:
    """Replays recordings as chunks to mitmproxy from a loopback port (see the module's
    docstring): an addon for its hooks, started on first use. Jobs are handed over by
    one-time tokens in the request path."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.cache = BodyCache()
        self._server: asyncio.Server | None = None
        self._starting: asyncio.Lock | None = None
        self._jobs: dict[str, _Job] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def _ensure_started(self) -> None:
        if self._server is not None:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._server is None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]

    async def replay(self, flow: http.HTTPFlow, entry: repo.ReplayEntry, started: float,
                     paced: bool) -> None:
        """Point the flow at the loopback server, which answers with `entry`'s chunks."""
        await self._ensure_started()
        token = secrets.token_hex(16)
        job = self._jobs[token] = _Job(entry, flow.request, started, paced)
        flow.metadata[REPLAY_STREAM] = (token, job)
        address = f"127.0.0.1:{self.port}"
        flow.request = http.Request.make("GET", f"http://{address}/{token}",
                                         headers=((b"Host", address.encode()),))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """The loopback's head has come: put the client's request and the recorded head in
        its place, and stream the chunks on as they come."""
        taken = flow.metadata.pop(REPLAY_STREAM, None)
        if taken is None:
            return
        _token, job = taken
        flow.request = job.request
        flow.response = flows.replayed_response(job.entry, streamed=True)
        flow.response.stream = True

    def error(self, flow: http.HTTPFlow) -> None:
        """The client left before the loopback answered: forget the job."""
        taken = flow.metadata.pop(REPLAY_STREAM, None)
        if taken is not None:
            self._jobs.pop(taken[0], None)
            flow.request = taken[1].request

    async def done(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- the loopback side -------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                parts = head.split(b" ", 2)
                token = parts[1][1:].decode("ascii", "replace") if len(parts) > 1 else ""
                job = self._jobs.pop(token, None)
                if job is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    return
                if not await self._send(job, reader, writer):
                    return
        except OSError:
            return  # mitmproxy hung up: the client left
        except Exception:
            # the client gets a broken response, as from an upstream that failed mid-body
            log.exception("replaying a stream failed")
        finally:
            self._writers.discard(writer)
            writer.close()  # after what is written has gone out (a truncated stream's end)

    async def _send(self, job: _Job, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        """Write one replayed response; True if the connection can serve another."""
        entry = job.entry
        stream = entry.stream
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        size = entry.size if entry.external else len(entry.body)
        # (offset, size) of each chunk to send; a big body without a stream goes in parts
        plan = ([(o, n) for o, n in stream.fitted(size).chunks if n > 0]
                if stream is not None else [(0.0, n) for n in stream_sizes(None, size)])
        i = 0
        async for chunk in self._chunks(entry, [n for _, n in plan]):
            if job.paced and i < len(plan):
                wait = job.started + plan[i][0] / 1000 - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            i += 1
            writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await writer.drain()
        truncated = stream.truncated if stream is not None else None
        if truncated is None:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        if truncated is Truncation.UPSTREAM:
            return False  # the upstream broke off here: so does the replay
        # the live stream was still open when it was stored: so is this one, until the
        # client leaves (mitmproxy then closes this connection) or wiretape stops
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        return False

    async def _chunks(self, entry: repo.ReplayEntry, sizes: list[int]) -> AsyncIterator[bytes]:
        """The body cut into `sizes` (they add up to it): from the index, the cache, or the
        store a few parts at a time."""
        if not entry.external:
            for chunk in chunk_bytes(entry.body, sizes):
                yield chunk
            return
        key = (entry.id, str(entry.external))
        body = self.cache.get(key)
        if body is not None:
            for chunk in chunk_bytes(body, sizes):
                yield chunk
            return
        keep = entry.size <= self.cache.item_limit
        kept: list[bytes] = []
        buf = bytearray()
        start = 0
        pending = iter(sizes)
        want = next(pending, None)
        while True:
            parts = await asyncio.to_thread(self._read_parts, entry.id, start)
            start += len(parts)
            for part in parts:
                if keep:
                    kept.append(part)
                buf += part
                while want is not None and len(buf) >= want:
                    yield bytes(buf[:want])
                    del buf[:want]
                    want = next(pending, None)
            if len(parts) < PARTS_PER_READ:
                break
        if buf:
            yield bytes(buf)
        if keep:
            self.cache.put(key, b"".join(kept))

    def _read_parts(self, rid: int, start: int) -> list[bytes]:
        with self.sessions() as s:
            return repo.body_parts(s, rid, start, PARTS_PER_READ)



def replays_as_stream(entry: repo.ReplayEntry, recorded_latency: bool) -> bool:
    """Whether a recording is replayed through StreamReplay: a big body, a truncated
    stream, several chunks, or one chunk whose wait after the head is to be reproduced.
    Everything else is answered in one piece, without the loopback hop."""
    if entry.failure_kind is not None:
        return False
    if entry.external:
        return True
    stream = entry.stream
    if stream is None or not stream.chunks and stream.truncated is None:
        return False
    return stream.truncated is not None or len(stream.chunks) > 1 or recorded_latency


__all__ = ["BIG_BODY", "CAPTURE", "PART_SIZE", "REPLAY_STREAM", "BodyCache", "Capture",
           "StreamReplay", "replays_as_stream", "should_stream"]
