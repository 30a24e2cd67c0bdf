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
