"""Which responses are streamed, and how a Capture keeps a stream (mitmproxy's tflow/tutils)."""

from __future__ import annotations

import threading

import pytest
from mitmproxy import http
from mitmproxy.test import tutils
from wiretape.proxy.streams import BodyCache, Capture, should_stream
from wiretape.storage import bodies
from wiretape.storage.bodies import BIG_BODY, SPOOL_BACKLOG
from wiretape.storage.exchange import Truncation


def response(status: int = 200, **headers: str) -> http.Response:
    r = tutils.tresp(status_code=status)
    r.headers.clear()
    for k, v in headers.items():
        r.headers[k.replace("_", "-")] = v
    return r


@pytest.mark.parametrize(("method", "resp", "streamed"), [
    ("GET", response(Content_Type="text/event-stream", Content_Length="10"), True),
    ("GET", response(Content_Type="text/event-stream; charset=utf-8"), True),
    ("GET", response(Transfer_Encoding="chunked"), True),  # length unknown
    ("GET", response(), True),  # read until the upstream closes (or HTTP/2 without length)
    ("GET", response(Content_Length=str(BIG_BODY + 1)), True),
    ("GET", response(Content_Length=str(BIG_BODY)), False),
    ("GET", response(Content_Length="bogus"), True),
    ("HEAD", response(Transfer_Encoding="chunked"), False),
    ("GET", response(204), False),
    ("GET", response(304), False),
    ("GET", response(101, Upgrade="websocket"), False),
])
def test_which_responses_are_streamed(method: str, resp: http.Response, streamed: bool) -> None:
    assert should_stream(tutils.treq(method=method.encode()), resp) is streamed


def test_a_capture_passes_chunks_on_and_spools_what_outgrows_memory() -> None:
    cap = Capture(started=100.0, head_at=100.25)
    piece = b"x" * (BIG_BODY // 2)
    assert cap(b"first") == b"first"
    assert cap(b"") == b""  # mitmproxy's end-of-stream call adds no chunk
    body, stream, big = cap.result(None)
    assert body == b"first" and big is None
    assert stream.head_ms == 250.0 and [n for _, n in stream.chunks] == [5]
    cap(b"late")  # after the result was taken (wiretape stopping): passed on, not kept
    assert cap.size == 5

    cap = Capture(started=100.0, head_at=100.25)
    cap(b"first")
    for _ in range(3):  # past BIG_BODY: what was in memory moves to the spool with the rest
        assert cap(piece) is piece
    assert cap.pieces == [] and cap.spool is not None
    body, stream, big = cap.result(Truncation.CLIENT)
    assert body == b"" and big is not None and big.size == 5 + 3 * len(piece)
    assert stream.truncated is Truncation.CLIENT and len(stream.chunks) == 4
    assert b"".join(big.source.parts()) == b"first" + piece * 3  # type: ignore[union-attr]
    assert big.preview.startswith(b"firstxxx")
    cap.discard()


def test_the_body_cache_is_bounded() -> None:
    cache = BodyCache(capacity=10, item_limit=6)
    cache.put((1, "a"), b"123456")
    cache.put((2, "b"), b"1234567")  # over the item limit: never kept
    assert cache.get((2, "b")) is None
    cache.put((3, "c"), b"12345")  # over capacity: the least recently used goes
    assert cache.get((1, "a")) is None and cache.get((3, "c")) == b"12345"
    assert cache.size == 5


class FakeThrottle:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.resumed = threading.Event()

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")
        self.resumed.set()


def test_a_capture_pauses_the_upstream_while_its_spool_lags_behind_the_disk() -> None:
    throttle = FakeThrottle()
    cap = Capture(started=0.0, head_at=0.0, throttle=throttle)
    disk = threading.Event()
    bodies._pool().submit(disk.wait, 20)  # the disk takes nothing for now
    piece = b"z" * (1024 * 1024)
    n = (BIG_BODY + SPOOL_BACKLOG) // len(piece) + 2
    for _ in range(n):
        cap(piece)
    assert "pause" in throttle.calls and "resume" not in throttle.calls
    disk.set()
    assert throttle.resumed.wait(20)
    _, _, big = cap.result(None)
    assert big is not None and big.size == n * len(piece)
    cap.discard()
