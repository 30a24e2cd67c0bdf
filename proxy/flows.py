"""The one module that knows both mitmproxy flows and wiretape's storage types."""

from __future__ import annotations

import json
import time

from mitmproxy import http
from wiretape.storage.exchange import Exchange, Failure, FailureKind, Request, Response
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
        target=_text(r.data.path),
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
    msg = message.lower()
    if "refused" in msg or "connect call failed" in msg:
        return FailureKind.REFUSED
    if "timed out" in msg or "timeout" in msg:
        return FailureKind.TIMEOUT
    if "reset" in msg or "closed" in msg or "disconnect" in msg:
        return FailureKind.RESET
    return FailureKind.ERROR


def exchange_of(flow: http.HTTPFlow, captured_ns: int) -> Exchange:
    """A finished flow (response or error) as an exchange."""
    req = request_of(flow)
    start = flow.request.timestamp_start
    if flow.response is not None and flow.error is None:
        end = flow.response.timestamp_end or time.time()
        return Exchange(req, response_of(flow.response), None, captured_ns, (end - start) * 1000)
    message = flow.error.msg if flow.error else "no response"
    failure = Failure(failure_kind(message), message)
    end = flow.error.timestamp if flow.error else time.time()
    return Exchange(req, None, failure, captured_ns, max(0.0, (end - start) * 1000))


def replayed_response(entry: ReplayEntry) -> http.Response:
    """The recorded response, byte for byte, plus the Wiretape-Recording header."""
    fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in entry.headers]
    fields.append((b"Wiretape-Recording", str(entry.id).encode()))
    now = time.time()
    return http.Response(
        http_version=entry.http_version.encode("latin-1") or b"HTTP/1.1",
        status_code=entry.status or 502,
        reason=entry.reason.encode("latin-1"),
        headers=tuple(fields),
        content=entry.body,
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )


def failure_response(entry: ReplayEntry) -> http.Response:
    """What the client saw live when the upstream failed: mitmproxy's 502."""
    body = json.dumps(
        {
            "error": f"upstream failure replayed: {entry.failure_kind}",
            "detail": entry.failure_message,
        }
    ).encode()
    return http.Response.make(
        502,
        body,
        {
            "Content-Type": "application/json",
            "Wiretape-Recording": str(entry.id),
            "Wiretape-Failure": entry.failure_kind or "error",
        },
    )


def miss_response(payload: dict[str, object]) -> http.Response:
    return http.Response.make(
        502,
        json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        {"Content-Type": "application/json", "Wiretape": "miss"},
    )
