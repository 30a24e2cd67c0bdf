"""The one module that knows both mitmproxy flows and wiretape's storage types."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from mitmproxy import http, version

# The error page mitmproxy itself sends when an upstream fails (private module, but the page
# must be byte-identical to the live one; tests/proxy/test_failures.py compares them).
from mitmproxy.proxy.layers.http._base import format_error
from wiretape.storage.exchange import (
    BigBody,
    Exchange,
    Failure,
    FailureKind,
    Request,
    Response,
    Stream,
)
from wiretape.storage.repository import ReplayEntry


def _text(b: bytes) -> str:
    # latin-1 maps every byte to one character: any header or path round-trips exactly
    return b.decode("latin-1")


def _headers(h: http.Headers) -> tuple[tuple[str, str], ...]:
    return tuple((_text(k), _text(v)) for k, v in h.fields)


def request_of(flow: http.HTTPFlow) -> Request:
    r = flow.request
    return Request(
        method=_text(r.data.method),
        scheme=_text(r.data.scheme) or "http",
        host=r.host,
        port=r.port,
        # a raw NUL is invalid in a request target yet mitmproxy passes it on; PostgreSQL
        # text cannot hold it, so it is kept percent-encoded (the same at record and replay
        # time, so such a request still matches its recording)
        target=_text(r.data.path).replace("\x00", "%00"),
        headers=_headers(r.headers),
        body=r.raw_content or b"",
        http_version=_text(r.data.http_version),
    )


def response_of(resp: http.Response) -> Response:
    return Response(
        status=resp.status_code,
        headers=_headers(resp.headers),
        body=resp.raw_content or b"",
        reason=_text(resp.data.reason),
        http_version=_text(resp.data.http_version),
    )


def failure_kind(message: str) -> FailureKind:
    """Classify mitmproxy's message for an upstream failure (flow.error.msg).

    Refused: "[Errno 111] Connect call failed ('127.0.0.1', 9)". Reset or closed early:
    "server closed connection", "HTTP/1 protocol error: peer closed connection without
    sending complete message body ...". Timeouts are ours (the addon marks them), except
    an OS-level connect timeout ("[Errno 110] Connection timed out").
    """
    msg = message.lower()
    if "refused" in msg or "connect call failed" in msg:
        return FailureKind.REFUSED
    if "timed out" in msg or "timeout" in msg:
        return FailureKind.TIMEOUT
    if "reset" in msg or "closed" in msg or "disconnect" in msg:
        return FailureKind.RESET
    return FailureKind.ERROR


def client_gave_up(message: str) -> bool:
    """True when flow.error is the client's doing ("Client disconnected.", "stream reset by
    client (CANCEL)"): the upstream never answered, so there is nothing true to record."""
    return "client" in message.lower()


def exchange_of(
    flow: http.HTTPFlow, captured_ns: int, kind: FailureKind | None = None
) -> Exchange:
    """A finished flow as an exchange: its response, or (when flow.error is set, even after
    the response head arrived) the failure the client saw. `kind` overrides the failure
    kind read from the message (the addon's own upstream timeout)."""
    req = request_of(flow)
    start = flow.request.timestamp_start
    if flow.response is not None and flow.error is None:
        end = flow.response.timestamp_end or time.time()
        return Exchange(req, response_of(flow.response), None, captured_ns, (end - start) * 1000)
    message = flow.error.msg if flow.error else "no response"
    failure = Failure(kind or failure_kind(message), message)
    end = flow.error.timestamp if flow.error else time.time()
    return Exchange(req, None, failure, captured_ns, max(0.0, (end - start) * 1000))


# How HAR files and other tools spell protocol versions, as mitmproxy spells them (it tells
# HTTP/2 and HTTP/3 responses by these exact strings)
_VERSIONS = {
    "h2": b"HTTP/2.0", "http/2": b"HTTP/2.0", "http/2.0": b"HTTP/2.0",
    "h3": b"HTTP/3", "http/3": b"HTTP/3", "http/3.0": b"HTTP/3",
    "http/1.1": b"HTTP/1.1", "http/1.0": b"HTTP/1.0", "": b"HTTP/1.1",
}


def wire_version(recorded: str) -> bytes:
    return _VERSIONS.get(recorded.strip().lower()) or recorded.encode("latin-1")


def streamed_exchange_of(flow: http.HTTPFlow, captured_ns: int, body: bytes, stream: Stream,
                         big: BigBody | None) -> Exchange:
    """A streamed response as captured (proxy/streams.py: Capture), to its end or as far as
    it went (`stream.truncated`): its head, and the chunks in place of a body."""
    assert flow.response is not None
    response = replace(response_of(flow.response), body=body, stream=stream, big=big)
    start = flow.request.timestamp_start
    end = (flow.response.timestamp_end if stream.truncated is None else None) or time.time()
    return Exchange(request_of(flow), response, None, captured_ns, max(0.0, (end - start) * 1000))


def replayed_response(entry: ReplayEntry, date: bytes | None = None,
                      streamed: bool = False) -> http.Response:
    """The recorded response, byte for byte, plus the Wiretape-Recording header; with
    `date`, a recorded Date header carries that value instead (--replay-date now); only its
    head when `streamed` (the body follows as chunks, proxy/streams.py).

    The reason phrase is the recorded one. A response recorded over HTTP/2 or HTTP/3 has
    none; sent to an HTTP/1 client, mitmproxy gives it the status's standard phrase, as it
    does live.
    """
    fields = entry.wire_headers
    if fields is None:  # built on the first replay of this recording, then kept
        fields = entry.wire_headers = (
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in entry.headers),
            (b"Wiretape-Recording", str(entry.id).encode()),
        )
    if date is not None:
        fields = tuple((k, date) if k.lower() == b"date" else (k, v) for k, v in fields)
    now = time.time()
    return http.Response(
        http_version=wire_version(entry.http_version),
        status_code=entry.status or 502,
        reason=entry.reason.encode("latin-1"),
        headers=http.Headers(fields),
        content=None if streamed else entry.body,
        trailers=None,
        timestamp_start=now,
        timestamp_end=None if streamed else now,
    )


UPSTREAM_FAILURE_STATUS = 502  # mitmproxy answers every upstream failure with 502


def failure_response(entry: ReplayEntry, http2: bool) -> http.Response:
    """What the client saw live when the upstream failed (refused, reset, timeout, TLS
    error...): mitmproxy's own 502 error page carrying the recorded message, with the
    headers mitmproxy sends on that protocol, plus the Wiretape-Recording header.

    Live, mitmproxy sends this page (`_http1.make_error_response`, `_http2` stream error)
    and over HTTP/1 closes the connection; `Connection: close` makes the replay do the same.
    """
    status = UPSTREAM_FAILURE_STATUS
    body = format_error(status, entry.failure_message)
    recording = (b"Wiretape-Recording", str(entry.id).encode())
    now = time.time()
    if http2:
        return http.Response(
            b"HTTP/2.0", status, b"",
            http.Headers([(b"server", version.MITMPROXY.encode()),
                          (b"content-type", b"text/html"),
                          (recording[0].lower(), recording[1])]),
            body, None, now, now,
        )
    resp = http.Response.make(
        status,
        body,
        http.Headers(Server=version.MITMPROXY, Connection="close", Content_Type="text/html"),
    )
    resp.headers.fields = (*resp.headers.fields, recording)
    return resp


def miss_response(payload: dict[str, object]) -> http.Response:
    return http.Response.make(
        502,
        json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        {"Content-Type": "application/json", "Wiretape": "miss"},
    )


def error_response(message: str) -> http.Response:
    """wiretape itself failed to answer a replay request (never forwarded instead)."""
    return http.Response.make(
        502,
        json.dumps({"error": message}, ensure_ascii=False).encode("utf-8"),
        {"Content-Type": "application/json", "Wiretape": "error"},
    )
