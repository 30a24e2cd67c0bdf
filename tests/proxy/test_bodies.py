"""Every kind of body replays as it was: gzip, br and deflate untouched, binary, chunked (chunk
by chunk), non-UTF-8 headers and bodies, 20 MiB each way; upgrades (WebSocket) pass through
unrecorded."""

from __future__ import annotations

import gzip
import hashlib
import random
import socket
import zlib

import brotli
import httpx
from wiretape.storage import models as m
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Request,
    TextMessage,
)

from tests.helpers import stored_recordings
from tests.proxy.upstreams import (
    CountingListener,
    Handler,
    Origin,
    RawServer,
    raw_exchange,
    without_header,
)

TEXT = ("wiretape replays what happened. " * 200).encode()
BINARY = random.Random(7).randbytes(70_000)
LATIN1_BODY = "caf\xe9 cr\xe8me \xff\xfe".encode("latin-1")  # not UTF-8


def rows(url: str) -> list[m.Recording]:
    return stored_recordings(url)


def chunked(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for part in (b"first ", b"second ", b"third"):
        h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        h.wfile.flush()
    h.wfile.write(b"0\r\n\r\n")


def upload(h: Handler) -> None:
    body = h.body()
    h.reply(200, hashlib.sha256(body).hexdigest().encode(),
            [("X-Seen-Header", h.headers.get("X-Odd", "")), ("Content-Type", "text/plain")])


def bodies_origin() -> Origin:
    o = Origin()
    o.route("GET /gzip", lambda h: h.reply(200, gzip.compress(TEXT, mtime=0), [
        ("Content-Type", "text/plain"), ("Content-Encoding", "gzip")]))
    o.route("GET /br", lambda h: h.reply(200, brotli.compress(TEXT), [
        ("Content-Type", "text/plain"), ("Content-Encoding", "br")]))
    o.route("GET /deflate", lambda h: h.reply(200, zlib.compress(TEXT), [
        ("Content-Type", "text/plain"), ("Content-Encoding", "deflate")]))
    # a body that claims gzip but is not: replayed as the bytes that came, not "fixed"
    o.route("GET /bad-gzip", lambda h: h.reply(200, b"not gzip at all", [
        ("Content-Encoding", "gzip")]))
    o.route("GET /binary", lambda h: h.reply(200, BINARY, [
        ("Content-Type", "application/octet-stream")]))
    o.route("GET /latin1", lambda h: h.reply(200, LATIN1_BODY, [
        ("Content-Type", "text/plain; charset=iso-8859-1"),
        ("X-Name", "Bj\xf6rk \xff caf\xe9")]))
    o.route("GET /chunked", chunked)
    o.route("GET /empty", lambda h: h.reply(204))
    o.route("POST /upload", upload)
    return o.start()


def raw_get(proxy_port: int, port: int, path: str, extra: bytes = b"") -> bytes:
    return raw_exchange(proxy_port, (
        f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Accept-Encoding: gzip, br, deflate\r\nConnection: close\r\n").encode()
        + extra + b"\r\n")


def raw_upload(proxy_port: int, port: int) -> bytes:
    body = b"\x00\x01\xfe\xff" * 1000 + LATIN1_BODY
    return raw_exchange(proxy_port, (
        f"POST http://127.0.0.1:{port}/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode()
        + b"X-Odd: \xe9t\xe9 \xff\r\n\r\n" + body)


PATHS = ["/gzip", "/br", "/deflate", "/bad-gzip", "/binary", "/latin1", "/chunked", "/empty"]


def stream_all(client: httpx.Client, base: str) -> dict[str, tuple[int, bytes]]:
    """Every path over one kept-alive connection: status and the raw (still encoded) body."""
    got = {}
    for p in PATHS:
        with client.stream("GET", f"{base}{p}") as r:
            got[p] = (r.status_code, b"".join(r.iter_raw()))
    return got


def test_bodies_and_headers_replay_byte_for_byte(db_url, serve):
    origin = bodies_origin()
    rec = serve(db_url)
    live = {p: raw_get(rec.proxy_port, origin.port, p) for p in PATHS}
    live["upload"] = raw_upload(rec.proxy_port, origin.port)
    # the same over one kept-alive connection with a real client
    with rec.client() as c:
        streamed = stream_all(c, origin.url)
    assert rec.stop() == 0
    origin.stop()

    assert live["/gzip"].endswith(gzip.compress(TEXT, mtime=0))
    assert live["/br"].endswith(brotli.compress(TEXT))
    assert live["/deflate"].endswith(zlib.compress(TEXT))
    assert live["/binary"].endswith(BINARY)
    assert b"\r\nX-Name: Bj\xf6rk \xff caf\xe9\r\n" in live["/latin1"]
    assert live["/latin1"].endswith(LATIN1_BODY)
    assert b"Transfer-Encoding: chunked" in live["/chunked"]
    # streamed: the origin's chunks go on as they came (and replay the same below)
    assert live["/chunked"].endswith(b"6\r\nfirst \r\n7\r\nsecond \r\n5\r\nthird\r\n0\r\n\r\n")
    upload_digest = hashlib.sha256(b"\x00\x01\xfe\xff" * 1000 + LATIN1_BODY).hexdigest()
    assert live["upload"].endswith(upload_digest.encode())
    assert b"X-Seen-Header: \xe9t\xe9 \xff\r\n" in live["upload"]
    stored = {r.path: r for r in rows(db_url)}
    assert stored["/binary"].response_body == BINARY
    assert ["X-Odd", "\xe9t\xe9 \xff"] in stored["/upload"].request_headers
    assert ["X-Name", "Bj\xf6rk \xff caf\xe9"] in stored["/latin1"].response_headers

    listener = CountingListener(origin.port)
    try:
        rep = serve(db_url, "--mode", "replay")
        again = {p: raw_get(rep.proxy_port, origin.port, p) for p in PATHS}
        again["upload"] = raw_upload(rep.proxy_port, origin.port)
        with rep.client() as c:
            restreamed = stream_all(c, origin.url)
        assert listener.accepted == 0
    finally:
        listener.close()
    for key, before in live.items():
        assert b"\r\nWiretape-Recording: " in again[key], key
        assert without_header(again[key], b"Wiretape-Recording") == before, key
    assert restreamed == streamed


def test_20_mib_request_and_response_bodies(db_url, serve):
    size = 20 * 1024 * 1024 + 1
    request_body = random.Random(1).randbytes(size)
    response_body = random.Random(2).randbytes(size)
    origin = Origin()
    origin.route("POST /big", lambda h: h.reply(
        200, response_body if h.body() == request_body else b"request damaged",
        [("Content-Type", "application/octet-stream")]))
    origin.start()
    rec = serve(db_url)
    with httpx.Client(proxy=rec.proxy, timeout=60, trust_env=False) as c:
        live = c.post(f"{origin.url}/big", content=request_body)
    assert rec.stop() == 0
    origin.stop()
    assert live.status_code == 200 and live.content == response_body
    [r] = rows(db_url)
    assert r.request_size == size and r.response_size == size
    assert hashlib.sha256(r.request_body).digest() == hashlib.sha256(request_body).digest()

    rep = serve(db_url, "--mode", "replay")
    with httpx.Client(proxy=rep.proxy, timeout=60, trust_env=False) as c:
        again = c.post(f"{origin.url}/big", content=request_body)
        other = c.post(f"{origin.url}/big", content=request_body[:-1] + b"!")
    assert again.status_code == 200
    assert hashlib.sha256(again.content).digest() == hashlib.sha256(response_body).digest()
    assert again.headers["wiretape-recording"] == str(r.id)
    assert other.status_code == 502 and other.headers["wiretape"] == "miss"


# -- upgrades ---------------------------------------------------------------------------

def websocket_echo(conn: socket.socket) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    while True:
        data = conn.recv(65536)
        if not data:
            return
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                conn.sendall(ws.send(AcceptConnection()))
            elif isinstance(event, TextMessage):
                conn.sendall(ws.send(TextMessage(data="echo: " + event.data)))
            elif isinstance(event, BytesMessage):
                conn.sendall(ws.send(BytesMessage(data=b"echo: " + bytes(event.data))))
            elif isinstance(event, CloseConnection):
                conn.sendall(ws.send(event.response()))
                return


def websocket_roundtrip(proxy_port: int, port: int) -> list[object]:
    ws = WSConnection(ConnectionType.CLIENT)
    got: list[object] = []
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as s:
        # through an HTTP proxy, a plain ws:// upgrade is sent in absolute form
        s.sendall(ws.send(Request(host=f"127.0.0.1:{port}",
                                  target=f"http://127.0.0.1:{port}/socket")))
        while not got or not isinstance(got[-1], CloseConnection):
            data = s.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                got.append(event)
                if isinstance(event, AcceptConnection):
                    s.sendall(ws.send(TextMessage(data="hello")))
                    s.sendall(ws.send(BytesMessage(data=b"\x00\xff")))
                elif isinstance(event, BytesMessage):
                    s.sendall(ws.send(CloseConnection(code=1000)))
    return got


def test_websocket_is_passed_through_and_not_recorded(sqlite_url, serve):
    server = RawServer(websocket_echo)
    for args in ((), ("--mode", "replay")):
        s = serve(sqlite_url, *args)
        events = websocket_roundtrip(s.proxy_port, server.port)
        kinds = [type(e).__name__ for e in events]
        assert kinds[:3] == ["AcceptConnection", "TextMessage", "BytesMessage"], kinds
        assert events[1].data == "echo: hello"  # type: ignore[attr-defined]
        assert bytes(events[2].data) == b"echo: \x00\xff"  # type: ignore[attr-defined]
        s.stop()
        assert "upgrade to websocket passed through, not recorded" in s.log()
    server.close()
    assert rows(sqlite_url) == []
