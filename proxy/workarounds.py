"""Workarounds for how mitmproxy, set up as wiretape needs it, treats some clients."""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import connection, ctx, tls

log = logging.getLogger(__name__)


def connection_handler(client: connection.Client) -> Any:
    """mitmproxy's handler of a client connection, or None (mitmproxy internals: the
    proxyserver addon keeps one per client, with the transports of its connections)."""
    server = ctx.master.addons.get("proxyserver")
    return getattr(server, "connections", {}).get(client.id)


class ClientWorkarounds:
    def client_disconnected(self, client: connection.Client) -> None:
        """Close a client socket mitmproxy has finished with but left open.

        A client that half-closes and then fails the TLS handshake (bytes that parse as a
        broken ClientHello, then FIN) ends mitmproxy's handler with the socket still open:
        it would sit in CLOSE_WAIT until tcp_timeout. On every normal path the transport
        is already gone by this hook, so this closes nothing else.
        """
        handler = connection_handler(client)
        io = handler.transports.get(client) if handler is not None else None
        writer = io.writer if io is not None else None
        if writer is not None and not writer.is_closing():
            log.debug("closing a client connection mitmproxy left open: %s", client.peername)
            writer.close()

    def tls_start_client(self, data: tls.TlsData) -> None:
        """Pick HTTP/2 for a client that offers it.

        With connection_strategy=lazy mitmproxy meets the client before any upstream, so it
        has no server choice to mirror and takes the client's first offer, and clients such
        as httpx list http/1.1 before h2: they would never get HTTP/2 through wiretape,
        though real servers (and mitmproxy's eager default) give it to them. This runs after
        mitmproxy's tlsconfig addon has prepared the connection, and changes its choice
        only where it had nothing to go on.
        """
        app = data.ssl_conn.get_app_data() if data.ssl_conn is not None else None
        if (
            isinstance(app, dict)
            and app.get("http2")
            and app.get("client_alpn") is None
            and app.get("server_alpn") is None
            and b"h2" in (data.conn.alpn_offers or ())
        ):
            app["client_alpn"] = b"h2"
