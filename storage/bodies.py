"""Bodies too big to hold in memory, and streamed bodies: spooling, parts, chunks and events.

A body over BIG_BODY is never held whole: while it is captured it goes to an anonymous
temporary file (written by a worker thread, never on the proxy's event loop), it is stored
in parts of PART_SIZE bytes, and replay reads it back a part at a time.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from .codec import parse_json
from .exchange import Headers, Stream, header_value

BIG_BODY = 4 * 1024 * 1024  # bytes: bodies over this are streamed, spooled and stored in parts
PART_SIZE = 1024 * 1024  # bytes of a big body per stored part
PREVIEW_SIZE = 64 * 1024  # the first bytes of a big body kept for text search and display

_spool_lock = threading.Lock()
_spool_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One worker for every spool: writes of one body stay in order, and a slow disk holds
    back only spooling, never the event loop."""
    global _spool_pool
    with _spool_lock:
        if _spool_pool is None:
            _spool_pool = ThreadPoolExecutor(1, thread_name_prefix="wiretape-spool")
        return _spool_pool


SPOOL_BACKLOG = 16 * 1024 * 1024  # bytes queued for the disk before the source should pause
SPOOL_RESUME = 4 * 1024 * 1024  # ... and resume once the queue is down to this


class SpooledBody:
    """A body being captured into an anonymous temporary file.

    `write` is called on the event loop and only queues the bytes; the spool thread writes
    them and keeps the SHA-256. The writer thread reads the parts back (`parts`, which
    waits for the queued writes) and `close`s the spool once stored.

    A disk slower than the network (a busy machine flushing its page cache) would let the
    queue, and memory, grow with the body: `write` returns True once more than `backlog`
    bytes wait, and `on_drained` is called (on the spool thread) once they are down to
    `resume`, so the caller can stop reading from its source meanwhile.
    """

    def __init__(self, on_drained: Callable[[], None] | None = None,
                 backlog: int = SPOOL_BACKLOG, resume: int = SPOOL_RESUME) -> None:
        self.size = 0
        self.preview = b""
        self.on_drained = on_drained
        self._backlog, self._resume = backlog, resume
        self._pending = 0
        self._throttled = False
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._sha = hashlib.sha256()
        self._last: Future[None] | None = None
        self._closed = False

    def write(self, data: bytes) -> bool:
        """Queue `data`; True when the queue is over its backlog (pause the source)."""
        if not data:
            return False
        if len(self.preview) < PREVIEW_SIZE:
            self.preview += data[: PREVIEW_SIZE - len(self.preview)]
        self.size += len(data)
        with self._lock:
            self._pending += len(data)
            if self._pending > self._backlog:
                self._throttled = True
            throttled = self._throttled
        self._last = _pool().submit(self._write, data)
        return throttled

    def _write(self, data: bytes) -> None:
        if not self._closed:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="wiretape-body-")
            self._file.write(data)
            self._sha.update(data)
        with self._lock:
            self._pending -= len(data)
            drained = self._throttled and self._pending <= self._resume
            if drained:
                self._throttled = False
        if drained and self.on_drained is not None:
            self.on_drained()

    def flushed(self) -> None:
        """Wait until every queued write is in the file (blocking: not on the event loop)."""
        if self._last is not None:
            self._last.result()

    @property
    def sha256(self) -> str:
        self.flushed()
        return self._sha.hexdigest()

    def parts(self) -> Iterator[bytes]:
        """The body from its start, PART_SIZE bytes at a time (again on every call)."""
        self.flushed()
        if self._file is None:
            return
        self._file.seek(0)
        while part := self._file.read(PART_SIZE):
            yield part

    def close(self) -> None:
        self._closed = True
        file = self._file
        if file is not None:
            # after the writes already queued (the spool thread may be writing one now)
            _pool().submit(file.close)


def chunk_bytes(body: bytes | Iterable[bytes], sizes: Iterable[int]) -> Iterator[bytes]:
    """The body cut into chunks of `sizes` (read from `body`'s pieces as needed); whatever
    remains after the last size is one more chunk."""
    pieces = iter([body] if isinstance(body, bytes) else body)
    buf = bytearray()
    for n in sizes:
        while len(buf) < n:
            piece = next(pieces, None)
            if piece is None:
                break
            buf += piece
        out = bytes(buf[:n])
        del buf[:n]
        if out:
            yield out
    for piece in pieces:
        buf += piece
    if buf:
        yield bytes(buf)


def stream_sizes(stream: Stream | None, size: int) -> list[int]:
    """The chunk sizes to replay a body of `size` bytes with: its stream's, fitted to it,
    or big bodies without a stream in parts."""
    if stream is not None:
        return [n for _, n in stream.fitted(size).chunks]
    return [min(PART_SIZE, size - i) for i in range(0, size, PART_SIZE)]


# -- server-sent events -------------------------------------------------------------------

def _event_stream_type(ctype: str | None) -> bool:
    return (ctype or "").split(";", 1)[0].strip().lower() == "text/event-stream"


def is_event_stream(headers: Headers) -> bool:
    return _event_stream_type(header_value(headers, "content-type"))


def is_streamed(method: str, status: int, content_type: str | None,
                content_length: str | None) -> bool:
    """Whether a response is passed on (and stored) as the chunks it comes in rather than
    whole: an event stream, one of unknown length (chunked, read until the upstream closes,
    HTTP/2 without Content-Length) or a body over BIG_BODY. Bodiless answers never are.
    Takes the response's Content-Type and Content-Length headers (None if absent)."""
    if method.upper() == "HEAD" or status < 200 or status in (204, 304):
        return False
    if _event_stream_type(content_type):
        return True
    length = content_length
    if length is None:
        return True
    try:
        return int(length) > BIG_BODY
    except ValueError:
        return True


def sse_events(text: str) -> list[dict[str, Any]]:
    """A text/event-stream body as its events (WHATWG HTML, "event stream interpretation"):
    each `{"data": ...}` with `event`, `id` and `retry` when given. `data` that is a JSON
    document is parsed, so two streams compare field by field; comments (keep-alives) are
    left out. An event the body ends in the middle of is kept: a truncated stream shows
    what it got."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    data: list[str] | None = None

    def dispatch() -> None:
        nonlocal current, data
        if data is not None:
            joined = "\n".join(data)
            ok, value = parse_json(joined.encode("utf-8"))
            current["data"] = value if ok else joined
        if current:
            events.append(current)
        current, data = {}, None

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            dispatch()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data = [*(data or []), value]
        elif name in ("event", "id"):
            current[name] = value
        elif name == "retry" and value.isdigit():
            current[name] = int(value)
    dispatch()
    return events
