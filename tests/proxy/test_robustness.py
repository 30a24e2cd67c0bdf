"""The proxy keeps serving whatever a client sends: a bad connection fails on its own (an
error answer or a closed socket, promptly), and every other client goes on."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from wiretape.storage import db
from wiretape.storage import models as m

from tests.helpers import wait_for
from tests.proxy.upstreams import Origin

BIG_HEADER = b"X-Big: " + b"a" * 200_000 + b"\r\n"


def bad_inputs(port: int) -> dict[str, bytes]:
    target = f"http://127.0.0.1:{port}/ok".encode()
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    return {
        "garbage": bytes(range(256)) * 4,
        "binary-zeros": b"\x00" * 5000,
        "just-newlines": b"\r\n" * 1000,
        "wrong-version": b"GET " + target + b" HTTP/7.3\r\n" + host + b"\r\n",
        "no-version": b"GET " + target + b"\r\n" + host + b"\r\n",
        "lowercase-version": b"GET " + target + b" http/1.1\r\n" + host + b"\r\n",
        "negative-content-length": b"POST " + target + b" HTTP/1.1\r\n" + host
        + b"Content-Length: -5\r\n\r\nhello",
        "two-content-lengths": b"POST " + target + b" HTTP/1.1\r\n" + host
        + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "bad-chunked": b"POST " + target + b" HTTP/1.1\r\n" + host
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n",
        "200kb-header": b"GET " + target + b" HTTP/1.1\r\n" + host + BIG_HEADER + b"\r\n",
        "200kb-url": b"GET " + target + b"?q=" + b"b" * 200_000 + b" HTTP/1.1\r\n" + host
        + b"\r\n",
        "nul-in-path": b"GET http://127.0.0.1/\x00x HTTP/1.1\r\n" + host + b"\r\n",
        "non-ascii-method": b"G\xc3\x89T " + target + b" HTTP/1.1\r\n" + host + b"\r\n",
        "header-without-colon": b"GET " + target + b" HTTP/1.1\r\n" + host
        + b"this is not a header\r\n\r\n",
        "no-host": b"GET /relative HTTP/1.1\r\n\r\n",
        "connect-garbage": f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode()
        + b"\x16\x03\x01\xff\xff" + bytes(range(256)),
        "connect-nowhere": b"CONNECT :0 HTTP/1.1\r\n\r\n",
        "half-request": b"GET " + target + b" HTTP/1.1\r\nHost: 127.0",
        "tls-to-plain-port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 600,
    }


def send_bad(proxy_port: int, data: bytes, half_close: bool = False) -> tuple[bytes, float]:
    """Send bytes, optionally half-close, and read until the proxy closes; a client that
    hears nothing for 1 s gives up and closes. Returns what came back and the time taken."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=1) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the proxy may hang up mid-send: that is failing the bad connection
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return out, time.monotonic() - t0


def open_sockets(pid: int) -> int:
    """Sockets the process holds (listeners, client and upstream connections), not files:
    the database pool may open another SQLite connection under load."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass
    return count


def good_request(proxy_port: int, port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as s:
        s.sendall(f"GET http://127.0.0.1:{port}/ok HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Connection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.fixture
def origin():
    o = Origin()
    o.route("GET /ok", lambda h: h.reply(200, b"fine"))
    o.route("POST /ok", lambda h: h.reply(200, b"fine " + h.body()))
    yield o.start()
    o.stop()


@pytest.mark.parametrize("mode", ["record", "replay"])
def test_bad_clients_fail_alone(sqlite_url, serve, origin, mode):
    if mode == "replay":
        rec = serve(sqlite_url)
        assert good_request(rec.proxy_port, origin.port).endswith(b"fine")
        rec.stop()
    s = serve(sqlite_url, "--mode", mode)
    assert good_request(s.proxy_port, origin.port).endswith(b"fine")
    baseline = open_sockets(s.proc.pid)
    results = {}
    for name, data in bad_inputs(origin.port).items():
        for half_close in (False, True):
            answer, took = send_bad(s.proxy_port, data, half_close)
            results[name, half_close] = answer
            assert took < 5, (name, half_close, took)
            # the next client is served
            assert good_request(s.proxy_port, origin.port).endswith(b"fine"), name
    for name in ("no-version", "lowercase-version", "negative-content-length",
                 "two-content-lengths", "header-without-colon", "no-host", "connect-nowhere"):
        assert results[name, False].startswith(b"HTTP/1.1 400 Bad Request\r\n"), name
    # bad connections side by side with good ones
    with ThreadPoolExecutor(16) as pool:
        bad = [pool.submit(send_bad, s.proxy_port, d, h)
               for d in bad_inputs(origin.port).values() for h in (False, True)]
        good = [pool.submit(good_request, s.proxy_port, origin.port) for _ in range(20)]
        assert all(f.result().endswith(b"fine") for f in good)
        assert all(f.result()[1] < 5 for f in bad)
    # every bad connection was closed on the proxy's side too: nothing left in CLOSE_WAIT
    wait_for(lambda: open_sockets(s.proc.pid) <= baseline, 10, "the proxy to close bad connections")
    assert s.proc.poll() is None
    assert s.stop() == 0
    # (mitmproxy itself may log "mitmproxy has crashed!" for one connection, e.g. TLS bytes
    # after a CONNECT whose ClientHello it could not parse; only that connection ends)
    assert " ERROR wiretape" not in s.log()


def test_slow_and_stuck_clients_do_not_block_others(sqlite_url, serve, origin):
    s = serve(sqlite_url)
    stuck = []
    for data in (b"", b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x", b"\x16\x03\x01"):
        c = socket.create_connection(("127.0.0.1", s.proxy_port))
        c.sendall(data)
        stuck.append(c)
    # a client that opens a TLS tunnel and never finishes the handshake
    t = socket.create_connection(("127.0.0.1", s.proxy_port))
    t.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
    stuck.append(t)
    try:
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda: results.append(
            good_request(s.proxy_port, origin.port))) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(15)
        assert len(results) == 8 and all(r.endswith(b"fine") for r in results)
        # a TLS client that gives up mid-handshake
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", s.proxy_port), timeout=5)
        raw.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 200")
        raw.sendall(b"\x16\x03\x01\x00\x05hello")
        raw.close()
        assert good_request(s.proxy_port, origin.port).endswith(b"fine")
    finally:
        for c in stuck:
            c.close()
    assert s.stop() == 0


def test_an_exchange_the_database_refuses_does_not_block_the_others(db_url):
    """PostgreSQL refuses NUL in text; the writer drops that exchange alone (and says so)
    instead of retrying its batch for ever while every later capture waits behind it."""
    from wiretape.proxy.writer import Writer
    from wiretape.storage.exchange import Exchange, Request, Response
    from wiretape.storage.redact import Redactor

    engine = db.make_engine(db_url)
    try:
        writer = Writer(db.make_sessions(engine), Redactor(), linger=0.2)
        writer.start()
        ok = Response(200, (("Content-Type", "text/plain"),), b"fine")
        for target in ("/before", "/bad\x00nul", "/after"):
            writer.record("default", Exchange(
                Request("GET", "http", "127.0.0.1", 8000, target), ok, None, time.time_ns()))
        writer.close(timeout=30)
        assert not writer._thread.is_alive()
        with db.make_sessions(engine)() as s:
            paths = [r.path for r in s.scalars(select(m.Recording).order_by(m.Recording.id))]
    finally:
        engine.dispose()
    if db_url.startswith("postgresql"):
        assert paths == ["/before", "/after"] and writer.dropped == 1
    else:
        assert paths == ["/before", "/bad\x00nul", "/after"] and writer.dropped == 0


def test_deeply_nested_json_is_recorded_and_replayed(sqlite_url, serve, origin):
    """A body nested 1,200 levels (valid for json.loads) once killed the writer thread in
    redaction, or, without a secret field, had its batch retried for ever as if the
    database were down. Now it is recorded like any body (matched byte for byte, its secret
    fields replaced), the next exchanges too, and shutdown is prompt."""
    secret = "hunter2-nested-secret"
    with_secret = '{"a":' * 1200 + f'{{"password": "{secret}"}}' + "}" * 1200
    without = "[" * 1200 + "]" * 1200
    url = f"http://127.0.0.1:{origin.port}/ok"
    json_type = {"Content-Type": "application/json"}
    s = serve(sqlite_url)
    with s.client() as c:
        for body in (with_secret, without):
            assert c.post(url, content=body, headers=json_type).status_code == 200
        assert c.get(url).text == "fine"
    items = s.api("GET", "/api/recordings", params={"limit": 10}).json()["items"]
    assert [i["method"] for i in items] == ["GET", "POST", "POST"]
    assert s.stop(timeout=60) == 0
    assert "Traceback" not in s.log() and "retrying" not in s.log()

    r = serve(sqlite_url, "--mode", "replay")
    with r.client() as c:
        for body in (with_secret, without):
            got = c.post(url, content=body, headers=json_type)
            assert got.status_code == 200 and got.headers.get("wiretape-recording"), got.text
        # the upstream echoed the password: stored, and so replayed, scrubbed
        echoed = c.post(url, content=with_secret, headers=json_type).text
        assert secret not in echoed and echoed.startswith("fine ") and "REDACTED" in echoed
    r.stop()
    for log in (s.log(), r.log()):
        assert secret not in log


def _answer_within(port: int, data: bytes, keep_alive_first: bytes = b"") -> bytes:
    """Send `data` (after a good request on the same connection, if given) and read until
    the proxy closes. The 5 s are a generous bound on a wait, not a speed assertion: the
    answer comes at once, and a proxy still waiting after 5 s is the bug."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        if keep_alive_first:
            c.sendall(keep_alive_first)
            first = b""
            while b"fine" not in first:
                first += c.recv(65536)
        c.sendall(data)
        out = b""
        try:
            while chunk := c.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass  # a close (RST: the proxy did not read everything sent) is an answer too
    return out


@pytest.mark.parametrize("mode", ["record", "replay"])
def test_unknown_versions_and_random_bytes_get_400_not_forwarded(sqlite_url, serve, origin,
                                                                  mode):
    import random

    s = serve(sqlite_url, "--mode", mode, "--on-miss", "forward")
    target = f"http://127.0.0.1:{origin.port}/ok".encode()
    host = f"Host: 127.0.0.1:{origin.port}\r\n".encode()
    bad = {
        "HTTP/9.9": b"GET " + target + b" HTTP/9.9\r\n" + host + b"\r\n",
        "HTTP/9.9 with a body": b"POST " + target + b" HTTP/9.9\r\n" + host
        + b"Content-Length: 5\r\n\r\nhello",
        "HTTP/7.3": b"GET " + target + b" HTTP/7.3\r\n" + host + b"\r\n",
        "HTTP/2.0 as text": b"GET " + target + b" HTTP/2.0\r\n" + host + b"\r\n",
        "HTTP/1.2": b"GET " + target + b" HTTP/1.2\r\n" + host + b"\r\n",
        "zeros": b"\x00" * 5000,
        **{f"5 KB of random bytes #{seed}": random.Random(seed).randbytes(5000)
           for seed in range(25)},
    }
    good = b"GET " + target + b" HTTP/1.1\r\n" + host + b"\r\n"
    for name, data in bad.items():
        for first in (b"", good):  # on a new connection, and on a kept-alive one
            out = _answer_within(s.proxy_port, data, first)
            assert out == b"" or out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (name, out)
    assert all(path == "/ok" and method == "GET" for method, path, _h in origin.requests)
    assert len(origin.requests) == len(bad)  # only the good requests went upstream
    assert good_request(s.proxy_port, origin.port).endswith(b"fine")
    assert s.stop() == 0
    assert " ERROR " not in s.log()
