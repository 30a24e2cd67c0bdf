"""Upstream failures are exchanges too: refused, reset, broken off and timed out upstreams are
recorded and replayed exactly as the client saw them live; replay latency."""

from __future__ import annotations

import select
import socket
import time

import httpx
import pytest

from tests.helpers import Serve, stored_recordings, wait_for
from tests.proxy.upstreams import (
    Origin,
    RawServer,
    breaking_off_mid_body,
    raw_exchange,
    resetting,
    stalling,
    without_header,
)


def client(proxy: str, timeout: float) -> httpx.Client:
    return httpx.Client(proxy=proxy, timeout=timeout, trust_env=False)


def get(proxy_port: int, port: int, path: str) -> bytes:
    """One raw HTTP/1.1 request through the proxy; the exact bytes the client receives."""
    return raw_exchange(
        proxy_port,
        f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )


def test_refused_reset_and_broken_off_replay_as_seen_live(sqlite_url, serve, refusing_port):
    refused = refusing_port
    reset_srv = RawServer(resetting)
    broken = RawServer(breaking_off_mid_body)
    cases = [(refused, "/down"), (reset_srv.port, "/reset"), (broken.port, "/broken")]
    rec = serve(sqlite_url)
    live = [get(rec.proxy_port, port, path) for port, path in cases]
    assert rec.stop() == 0
    reset_srv.close()
    broken.close()

    # what a client sees live through mitmproxy: its 502 page naming the failure, then close
    assert all(r.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") for r in live), live
    assert b"Connect call failed" in live[0]
    assert b"server closed connection" in live[1]
    assert b"peer closed connection without sending complete message body" in live[2]
    recorded = stored_recordings(sqlite_url)
    assert [(r.path, r.status, r.failure_kind) for r in recorded] == [
        ("/down", None, "refused"), ("/reset", None, "reset"), ("/broken", None, "reset")]
    assert "Connect call failed" in recorded[0].failure_message

    rep = serve(sqlite_url, "--mode", "replay")
    replayed = [get(rep.proxy_port, port, path) for port, path in cases]
    for r, ours, before in zip(recorded, replayed, live, strict=True):
        assert f"\r\nWiretape-Recording: {r.id}\r\n".encode() in ours
        assert without_header(ours, b"Wiretape-Recording") == before
    assert "replayed #" in rep.log()


def test_upstream_timeout_is_recorded_and_replayed_with_its_latency(sqlite_url, serve):
    slow = RawServer(stalling(8))
    rec = serve(sqlite_url, "--upstream-timeout", "1")
    t0 = time.monotonic()
    live = get(rec.proxy_port, slow.port, "/slow")
    live_s = time.monotonic() - t0
    assert rec.stop() == 0
    slow.close()
    assert 0.9 < live_s < 4, live_s
    assert live.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    [r] = stored_recordings(sqlite_url)
    assert r.failure_kind == "timeout" and r.status is None
    assert 900 < r.duration_ms < 4000
    assert "no answer from the upstream within 1 s; aborted" in rec.log()

    rep = serve(sqlite_url, "--mode", "replay", "--replay-latency", "recorded")
    t0 = time.monotonic()
    again = get(rep.proxy_port, slow.port, "/slow")
    assert time.monotonic() - t0 >= r.duration_ms / 1000 - 0.05
    assert without_header(again, b"Wiretape-Recording") == live


def test_connect_timeout_is_a_timeout(sqlite_url, serve):
    # a listener whose accept queue is full drops new SYNs: connecting hangs
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    try:
        # the first filler's handshake completes into the accept queue; the rest hang
        wait_for(lambda: bool(select.select([], fillers, [], 0)[1]), 5, "the queue to fill")
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            pytest.skip("this kernel accepts connections beyond the backlog")
        except TimeoutError:
            pass
        finally:
            probe.close()
        rec = serve(sqlite_url, "--upstream-timeout", "1")
        t0 = time.monotonic()
        live = get(rec.proxy_port, port, "/hole")
        assert time.monotonic() - t0 < 5
        assert rec.stop() == 0
    finally:
        for f in fillers:
            f.close()
        hole.close()
    assert live.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"upstream did not answer within 1 s" in live
    [r] = stored_recordings(sqlite_url)
    assert r.failure_kind == "timeout"
    rep = serve(sqlite_url, "--mode", "replay")
    assert without_header(get(rep.proxy_port, port, "/hole"), b"Wiretape-Recording") == live


def test_client_giving_up_is_not_recorded_as_an_upstream_failure(sqlite_url, serve):
    slow = RawServer(stalling(3))
    rec = serve(sqlite_url)
    with client(rec.proxy, 0.5) as c, pytest.raises(httpx.ReadTimeout):
        c.get(f"{slow.url}/slow")
    wait_for(lambda: "the client left before the upstream answered" in rec.log(), 10,
             "the proxy to see the client leave")
    assert rec.stop() == 0
    slow.close()
    assert stored_recordings(sqlite_url) == []
    assert "the client left before the upstream answered" in rec.log()


def test_replay_latency_recorded_fixed_and_none(sqlite_url, serve, tmp_path):
    origin = Origin()

    def slow(h):
        time.sleep(0.6)
        h.reply(200, b"slow answer", [("Content-Type", "text/plain")])

    origin.route("GET /slow", slow)
    origin.start()
    rec = serve(sqlite_url)
    with rec.client() as c:
        assert c.get(f"{origin.url}/slow").content == b"slow answer"
    assert rec.stop() == 0
    origin.stop()
    [r] = stored_recordings(sqlite_url)
    assert r.duration_ms >= 590

    # three replay processes, one per latency setting, started side by side
    procs = {args: Serve(sqlite_url, "--mode", "replay", *args, workdir=tmp_path)
             for args in (("--replay-latency", "recorded"), ("--replay-latency", "250"), ())}
    try:
        for p in procs.values():
            p.ready()

        def timed(args: tuple[str, ...], timeout: float = 10) -> float:
            with client(procs[args].proxy, timeout) as c:
                c.get(f"{origin.url}/nothing-recorded")  # warm the connection
                t0 = time.monotonic()
                resp = c.get(f"{origin.url}/slow")
                elapsed = time.monotonic() - t0
            assert resp.content == b"slow answer" and "wiretape-recording" in resp.headers
            return elapsed

        assert timed(("--replay-latency", "recorded")) >= 0.59
        fixed = timed(("--replay-latency", "250"))
        assert 0.25 <= fixed < 0.59, fixed
        none = timed(())
        assert none < 0.4 and none < fixed, none
        # a client whose timeout is shorter than the recorded latency times out offline
        with pytest.raises(httpx.ReadTimeout):
            timed(("--replay-latency", "recorded"), timeout=0.3)
    finally:
        for p in procs.values():
            p.stop()


@pytest.mark.parametrize("value, message", [
    ("soon", "--upstream-timeout 'soon' must be a number of seconds (0: wait forever)"),
    ("-3", "--upstream-timeout must be between 0 and 86400 seconds"),
])
def test_bad_upstream_timeout_is_one_line_and_exit_2(tmp_path, value, message):
    import subprocess

    from tests.helpers import WIRETAPE_BIN

    done = subprocess.run([WIRETAPE_BIN, "serve", "--db", f"sqlite:///{tmp_path}/x.db",
                           "--upstream-timeout", value], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"wiretape: error: {message}"
