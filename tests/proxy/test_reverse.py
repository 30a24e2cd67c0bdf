"""Reverse-proxy mode (`--upstream URL`): clients that ignore HTTP_PROXY talk to wiretape as
if it were the service; record and replay work exactly as in forward mode."""

from __future__ import annotations

import json
import ssl

import httpx

from tests.helpers import stored_recordings
from tests.proxy.upstreams import (
    CountingListener,
    Origin,
    raw_exchange,
    without_header,
)


def orders_origin(**kw: object) -> Origin:
    origin = Origin(**kw)  # type: ignore[arg-type]
    origin.route("GET /orders", lambda h: h.reply(
        200, json.dumps({"orders": [1, 2], "host": h.headers["Host"]}).encode(),
        [("Content-Type", "application/json"), ("X-Origin", "orders")]))
    origin.route("POST /orders", lambda h: h.reply(
        201, b"created:" + h.body(), [("Content-Type", "text/plain")]))
    return origin.start()


def direct(port: int, request: bytes) -> bytes:
    """A client that knows nothing of proxies: raw HTTP/1.1 straight to wiretape."""
    return raw_exchange(port, request)


def test_reverse_proxy_records_and_replays_offline(db_url, serve):
    origin = orders_origin()
    rec = serve(db_url, "--upstream", origin.url)
    get = (b"GET /orders?page=1 HTTP/1.1\r\nHost: orders.internal\r\nConnection: close\r\n\r\n")
    post = (b"POST /orders HTTP/1.1\r\nHost: orders.internal\r\nContent-Length: 5\r\n"
            b"Content-Type: text/plain\r\nConnection: close\r\n\r\nhello")
    live = [direct(rec.proxy_port, get), direct(rec.proxy_port, post)]
    with httpx.Client(base_url=f"http://127.0.0.1:{rec.proxy_port}", trust_env=False) as c:
        via_httpx = c.get("/orders", params={"page": "1"})
    assert rec.stop() == 0
    origin.stop()

    assert live[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Origin: orders" in live[0]
    assert live[1].startswith(b"HTTP/1.1 201 Created\r\n") and live[1].endswith(b"created:hello")
    assert via_httpx.status_code == 200 and via_httpx.json()["orders"] == [1, 2]
    recorded = stored_recordings(db_url)
    # stored under the upstream's address, as forward mode would store a request to it
    assert {(r.scheme, r.host, r.port) for r in recorded} == {("http", "127.0.0.1", origin.port)}
    assert [r.seq for r in recorded] == [0, 0, 1]

    listener = CountingListener(origin.port)
    try:
        rep = serve(db_url, "--mode", "replay", "--upstream", origin.url)
        again = [direct(rep.proxy_port, get), direct(rep.proxy_port, post)]
        with httpx.Client(base_url=f"http://127.0.0.1:{rep.proxy_port}",
                          trust_env=False) as c:
            again_httpx = c.get("/orders", params={"page": "1"})
            miss = c.get("/never")
        assert listener.accepted == 0
    finally:
        listener.close()
    for ours, before in zip(again, live, strict=True):
        assert without_header(ours, b"Wiretape-Recording") == before
    assert again_httpx.content == via_httpx.content
    assert again_httpx.headers["wiretape-recording"] == str(recorded[2].id)
    assert miss.status_code == 502 and miss.headers["wiretape"] == "miss"


def test_reverse_proxy_to_https_upstream_with_tls_or_plain_clients(sqlite_url, serve, tmp_path):
    origin = orders_origin(tls_dir=tmp_path / "tls")
    rec = serve(sqlite_url, "--upstream", origin.url, "--upstream-insecure")
    ca = ssl.create_default_context(cafile=str(rec.confdir / "mitmproxy-ca-cert.pem"))
    with httpx.Client(trust_env=False) as plain, httpx.Client(trust_env=False, verify=ca) as tls:
        a = plain.get(f"http://127.0.0.1:{rec.proxy_port}/orders")
        # a client speaking TLS to wiretape gets a certificate from wiretape's CA
        b = tls.post(f"https://127.0.0.1:{rec.proxy_port}/orders", content=b"over tls")
    rec.stop()
    origin.stop()
    assert a.status_code == 200 and a.json()["orders"] == [1, 2]
    assert b.status_code == 201 and b.content == b"created:over tls"
    assert {r.scheme for r in stored_recordings(sqlite_url)} == {"https"}

    listener = CountingListener(origin.port)
    try:
        rep = serve(sqlite_url, "--mode", "replay", "--upstream", origin.url,
                    confdir=rec.confdir)
        with httpx.Client(trust_env=False) as plain, \
                httpx.Client(trust_env=False, verify=ca) as tls:
            a2 = plain.get(f"http://127.0.0.1:{rep.proxy_port}/orders")
            b2 = tls.post(f"https://127.0.0.1:{rep.proxy_port}/orders", content=b"over tls")
        assert listener.accepted == 0
    finally:
        listener.close()
    assert (a2.status_code, a2.content) == (a.status_code, a.content)
    assert (b2.status_code, b2.content) == (b.status_code, b.content)


def test_reverse_proxy_upstream_down_is_recorded_and_replayed(sqlite_url, serve,
                                                            refusing_port):
    down = f"http://127.0.0.1:{refusing_port}"
    request = b"GET /orders HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n"
    rec = serve(sqlite_url, "--upstream", down)
    live = direct(rec.proxy_port, request)
    rec.stop()
    assert live.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert [r.failure_kind for r in stored_recordings(sqlite_url)] == ["refused"]
    rep = serve(sqlite_url, "--mode", "replay", "--upstream", down)
    assert without_header(direct(rep.proxy_port, request), b"Wiretape-Recording") == live
