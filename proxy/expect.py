"""`Expect: 100-continue` forwarded to the origin as the client sent it.

mitmproxy answers the expectation itself: once a request's headers are in (after the
`requestheaders` hook) it sends `100 Continue` to the client and drops the header, so the
origin never sees it (mitmproxy issue #2180; proxy/layers/http/__init__.py,
state_wait_for_request_headers). It reads the whole body before forwarding, so the origin
cannot answer the expectation in time anyway (mitmproxy issue #1721); what the client needs
is to send its body promptly. So:

- the client, HTTP/1 or HTTP/2, still gets mitmproxy's one 100 (it may wait for one before
  sending its body: curl over HTTP/2 waits a second without it; an origin that honours the
  expectation sends the same 100 directly), and the header is put back before the request
  is forwarded and recorded, so the origin sees it and the recording keeps it.

An origin that sees the header may answer `100 Continue` before its response. mitmproxy
takes an HTTP/1 upstream's interim (1xx) response for the final one (issue #2229; its
HTTP/2 layer drops them): `skip_interim_responses` makes its HTTP/1 client drop them too.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import events
from mitmproxy.proxy.layers.http._http1 import Http1Client

EXPECT = "wiretape.expect"  # flow.metadata: the header fields as the client sent them


def _expects_continue(request: http.Request) -> bool:
    return request.headers.get("expect", "").strip().lower() == "100-continue"


class ExpectContinue:
    def load(self, loader: Any) -> None:
        skip_interim_responses()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if not _expects_continue(request):
            return
        # mitmproxy drops the header once it has sent its 100: keep it to put back
        flow.metadata[EXPECT] = request.headers.fields

    def request(self, flow: http.HTTPFlow) -> None:
        fields = flow.metadata.pop(EXPECT, None)
        if fields is None or _expects_continue(flow.request):
            return
        # back where the client had it, beside whatever other addons changed meanwhile
        expect = [(k, v) for k, v in fields if k.lower() == b"expect"]
        at = next(i for i, (k, _) in enumerate(fields) if k.lower() == b"expect")
        now = list(flow.request.headers.fields)
        flow.request.headers.fields = tuple(now[:at] + expect + now[at:])


def _drop_interim_heads(buf: Any) -> None:
    """Remove whole 1xx response heads (except 101, a protocol switch) from the start of an
    upstream connection's receive buffer (an h11 ReceiveBuffer)."""
    while True:
        data = bytes(buf)
        if b"\r\n\r\n" not in data and b"\n\n" not in data:
            return
        parts = data.split(b"\n", 1)[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            return
        status = int(parts[1])
        if not 100 <= status < 200 or status == 101:
            return
        buf.maybe_extract_lines()  # exactly that head


_Reader = Callable[[Any, events.ConnectionEvent], Generator[Any, Any, None]]


def skip_interim_responses() -> None:
    """Make mitmproxy's HTTP/1 client ignore interim responses before the final one (RFC
    9110 15.2: a client must be able to parse them). Idempotent."""
    original: _Reader = Http1Client.read_headers
    if getattr(original, "_wiretape_skips_interim", False):
        return

    def read_headers(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
        if isinstance(event, events.DataReceived) and self.request is not None:
            _drop_interim_heads(self.buf)
        yield from original(self, event)

    read_headers._wiretape_skips_interim = True  # type: ignore[attr-defined]
    Http1Client.read_headers = read_headers  # type: ignore[method-assign]
