"""Workarounds for how mitmproxy, set up as wiretape needs it, treats some clients."""

from __future__ import annotations

import logging
import re
from typing import Any

from mitmproxy import connection, ctx, tls
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import http as http_layers

# mitmproxy internals: the HTTP/1 server connection and its error page (private module)
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.utils import human

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


# -- request heads mitmproxy would wait on or forward ----------------------------------------

# RFC 9112 3: method SP request-target SP HTTP-version, the version HTTP/1.0 or HTTP/1.1
# (anything else on an HTTP/1 connection, HTTP/9.9 say, mitmproxy forwarded as it was).
_METHOD = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_REQUEST_LINE = re.compile(_METHOD + rb"+[ \t]+[^ \t]+[ \t]+HTTP/1\.[01][ \t]*\r?")
# What a request line may look like while it is still arriving: a method, a target, then
# some prefix of the version. Bytes that cannot begin one (5 KB of random bytes, a NUL)
# are refused at once instead of waiting for a blank line that never comes.
_LINE_PREFIX = re.compile(
    _METHOD + rb"*(?:[ \t]+[^ \t]*(?:[ \t]+(?:H(?:T(?:T(?:P(?:/(?:1(?:\.[01]?)?)?)?)?)?)?"
    rb"[ \t]*\r?)?)?)?")
MAX_REQUEST_LINE = 1024 * 1024  # mitmproxy serves a 200 KB URL; a megabyte is no URL
MAX_REQUEST_HEAD = 4 * 1024 * 1024  # mitmproxy sets no bound ("FIXME: header size DoS")


def request_head_problem(data: bytes) -> tuple[int, str] | None:
    """What is wrong with the start of an HTTP/1 request head, as far as it has arrived
    (status, message); None while it may still become a valid one."""
    data = data.lstrip(b"\r\n")  # RFC 9112 2.2: empty lines before a request line
    end = data.find(b"\n")
    if end == -1:
        if len(data) > MAX_REQUEST_LINE:
            return 414, "request line too long"
        if not _LINE_PREFIX.fullmatch(data):
            return 400, "not an HTTP/1 request line"
        return None
    if not _REQUEST_LINE.fullmatch(data[:end]):
        return 400, "not an HTTP/1.0 or HTTP/1.1 request line"
    if len(data) > MAX_REQUEST_HEAD and data.find(b"\n\r\n") == data.find(b"\n\n") == -1:
        return 431, "request head too large"
    return None


class StrictHttp1Server(_http1.Http1Server):
    """mitmproxy's HTTP/1 server side, refusing a request head that cannot be HTTP/1.0 or
    1.1 as soon as that shows (400, then the connection is closed), and a head that never
    ends (mitmproxy waits for its blank line until the client gives up: tcp_timeout, 600 s).
    The line itself is not logged: a URL may carry credentials."""

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            problem = request_head_problem(bytes(self.buf))
            if problem is not None:
                status, message = problem
                yield commands.SendData(self.conn, _http1.make_error_response(status, message))
                yield commands.CloseConnection(self.conn)
                yield commands.Log(f"{human.format_address(self.conn.peername)}: {message}")
                self.state = self.done
                return
        yield from super().read_headers(event)


def strict_http1_requests() -> None:
    """Have mitmproxy's HTTP layer use StrictHttp1Server for clients (it names the class
    in its module when a client connection starts)."""
    http_layers.Http1Server = StrictHttp1Server  # type: ignore[attr-defined]
