"""Conversions between recording rows and exchanges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .. import models as m
from ..codec import decoded_body
from ..exchange import (
    BigBody,
    Exchange,
    Failure,
    FailureKind,
    Headers,
    Request,
    Response,
    Stream,
)
from ..times import from_ns, utcnow

# What a recording's response is made of: replaced together when it is edited or re-recorded
RESPONSE_COLUMNS = (
    "status", "reason", "response_http_version", "response_headers", "response_body",
    "failure_kind", "failure_message", "content_type", "response_size", "search_text",
    "response_stream", "response_external",
)


def _headers_out(headers: Iterable[Sequence[str]]) -> Headers:
    return tuple((str(k), str(v)) for k, v in headers)


def response_headers(stored: Iterable[Sequence[str]] | None) -> Headers:
    """A recording's response headers as stored (a failure has none)."""
    return _headers_out(stored or ())


def _search_text(ex: Exchange, limit: int = 65536) -> str:
    parts = []
    resp = ex.response
    response_body = b""
    if resp is not None:
        # a big body by its first bytes, unless they are compressed (a prefix does not
        # decode)
        big_text = resp.big is not None and not resp.header("content-encoding")
        response_body = resp.big.preview if resp.big is not None and big_text else resp.body
    for headers, body in (
        (ex.request.headers, ex.request.body),
        (resp.headers, response_body) if resp else ((), b""),
    ):
        if body:
            text = decoded_body(headers, body)[:limit].decode("utf-8", "ignore")
            parts.append(text.replace("\x00", ""))
    return "\n".join(parts).lower()


def exchange_row(ex: Exchange, tape_id: int, key: str, seq: int) -> dict[str, Any]:
    req, resp = ex.request, ex.response
    ctype = (resp.header("content-type") if resp else None) or ""
    return {
        "tape_id": tape_id,
        "seq": seq,
        "match_key": key,
        "captured_ns": ex.captured_ns,
        "recorded_at": from_ns(ex.captured_ns) if ex.captured_ns else utcnow(),
        "duration_ms": float(ex.duration_ms),
        "method": req.method,
        "scheme": req.scheme,
        "host": req.host,
        "port": req.port,
        "path": req.path,
        "target": req.target,
        "url": req.url,
        "http_version": req.http_version,
        "request_headers": [list(h) for h in req.headers],
        "request_body": req.body,
        "status": resp.status if resp else None,
        "reason": (resp.reason if resp else "")[:255],
        "response_http_version": resp.http_version if resp else "HTTP/1.1",
        "response_headers": [list(h) for h in resp.headers] if resp else [],
        "response_body": resp.body if resp else b"",
        # the chunks' sizes follow the body stored (redaction or an edit may change it)
        "response_stream": resp.stream.fitted(resp.size).to_json()
        if resp is not None and resp.stream is not None else None,
        "response_external": {"sha256": resp.big.digest()}
        if resp is not None and resp.big is not None else None,
        "failure_kind": str(ex.failure.kind) if ex.failure else None,
        "failure_message": ex.failure.message if ex.failure else "",
        "content_type": ctype[:255],
        "request_size": len(req.body),
        "response_size": resp.size if resp else 0,
        "note": ex.note,
        "search_text": _search_text(ex),
    }


def row_request(r: m.Recording) -> Request:
    return Request(
        method=r.method,
        scheme=r.scheme,
        host=r.host,
        port=r.port,
        target=r.target,
        headers=_headers_out(r.request_headers),
        body=r.request_body or b"",
        http_version=r.http_version,
    )


def row_exchange(r: m.Recording) -> Exchange:
    resp = None
    if r.status is not None:
        external = r.response_external
        resp = Response(
            status=r.status,
            headers=_headers_out(r.response_headers),
            body=r.response_body or b"",
            reason=r.reason,
            http_version=r.response_http_version,
            stream=Stream.from_json(r.response_stream),
            # the bytes stay in the store: read them with repository.bodies
            big=BigBody(r.response_size, str(external.get("sha256", "")))
            if isinstance(external, dict) else None,
        )
    failure = Failure(FailureKind(r.failure_kind), r.failure_message) if r.failure_kind else None
    return Exchange(
        request=row_request(r),
        response=resp,
        failure=failure,
        captured_ns=r.captured_ns,
        duration_ms=r.duration_ms,
        note=r.note,
    )
