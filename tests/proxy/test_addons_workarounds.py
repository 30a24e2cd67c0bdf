"""Client workarounds: HTTP/2 for clients that offer it when mitmproxy had nothing to go on."""

from __future__ import annotations

from typing import Any

import pytest
from mitmproxy import options, tls
from mitmproxy.proxy import context
from mitmproxy.test import tflow
from OpenSSL import SSL
from wiretape.proxy.workarounds import ClientWorkarounds


def tls_start(offers: tuple[bytes, ...], app: dict[str, Any]) -> dict[str, Any]:
    """Fire tls_start_client on a connection as mitmproxy's tlsconfig leaves it."""
    client = tflow.tclient_conn()
    client.alpn_offers = offers
    ssl_conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD))
    ssl_conn.set_app_data(app)
    data = tls.TlsData(client, context.Context(client, options.Options()), ssl_conn)
    ClientWorkarounds().tls_start_client(data)
    return app


BLANK = {"http2": True, "client_alpn": None, "server_alpn": None}


def test_h2_is_picked_for_a_client_that_offers_it_second() -> None:
    assert tls_start((b"http/1.1", b"h2"), dict(BLANK))["client_alpn"] == b"h2"


@pytest.mark.parametrize(("offers", "app"), [
    ((b"http/1.1",), BLANK),  # no h2 on offer
    ((b"http/1.1", b"h2"), {**BLANK, "http2": False}),  # HTTP/2 turned off
    ((b"http/1.1", b"h2"), {**BLANK, "server_alpn": b"http/1.1"}),  # mirrors the server
])
def test_otherwise_the_choice_is_left_alone(offers, app) -> None:
    assert tls_start(offers, dict(app))["client_alpn"] is None


def test_a_request_head_arriving_byte_by_byte_is_never_refused_early():
    from wiretape.proxy.workarounds import request_head_problem

    for head in (b"GET http://a.test/x?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
                 b"\r\nCONNECT a.test:443 HTTP/1.0\r\n\r\n",
                 b"M-SEARCH * HTTP/1.1\r\n\r\n",
                 b"GET /\x00x\t HTTP/1.1\n\n"):
        for i in range(len(head) + 1):
            assert request_head_problem(head[:i]) is None, head[:i]


def test_request_heads_that_cannot_become_http1():
    from wiretape.proxy.workarounds import MAX_REQUEST_LINE, request_head_problem

    for data in (b"GET / HTTP/9.9\r\n", b"GET / HTTP/1.1x\r\n", b"GET / http/1.1\r\n",
                 b"GET /\r\n", b"G\xc3\x89T / HTTP/1.1\r\n", b"GET / HTTP/1.1 extra\r\n"):
        assert request_head_problem(data) == (400, "not an HTTP/1.0 or HTTP/1.1 request line")
    for data in (b"\x00", b"\x16\x03\x01", b"GET / HTTP/2", b"GET / HTTP/1.1x", b"{\"a\": 1}"):
        assert request_head_problem(data) == (400, "not an HTTP/1 request line"), data
    assert request_head_problem(b"GET /" + b"a" * MAX_REQUEST_LINE) == (
        414, "request line too long")
