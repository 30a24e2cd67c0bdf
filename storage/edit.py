"""Recordings written or edited by hand: status, headers and body kept consistent.

Bodies are given as people read them (decoded) and stored encoded with the headers'
Content-Encoding, with a Content-Length to match, so replay sends consistent bytes.
"""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus

from .bodytext import fix_content_length
from .codec import DecodeError, decode_content, encode_content
from .errors import InvalidInput
from .exchange import (
    Exchange,
    Headers,
    InvalidURL,
    Request,
    Response,
    header_value,
    split_url,
)


class InvalidEdit(InvalidInput):
    """An edit that cannot be stored consistently (e.g. an unsupported Content-Encoding)."""


def reason_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _same_encoding(a: str | None, b: str | None) -> bool:
    def norm(v: str | None) -> list[str]:
        return [e.strip().lower() for e in (v or "").split(",")
                if e.strip() and e.strip().lower() not in ("identity", "none")]

    return norm(a) == norm(b)


def encode_body(headers: Headers, content: bytes) -> bytes:
    """`content` (decoded) encoded with the headers' Content-Encoding, as replay sends it."""
    if not content:
        return b""
    try:
        return encode_content(content, header_value(headers, "content-encoding"))
    except DecodeError as e:
        raise InvalidEdit(
            f"{e}: use gzip, br, deflate or identity, or remove the Content-Encoding header"
        ) from e


def with_content_length(headers: Headers, length: int) -> Headers:
    """Content-Length in step with the body: fixed where present, added when missing (unless
    the message is chunked), so a replayed response is always delimited."""
    if header_value(headers, "content-length") is not None:
        return fix_content_length(headers, length)
    if header_value(headers, "transfer-encoding") is not None:
        return headers
    return (*headers, ("Content-Length", str(length)))


def new_request(method: str, url: str, headers: Headers, content: bytes) -> Request:
    """A request written by hand (InvalidEdit for a URL it cannot use)."""
    try:
        scheme, host, port, target = split_url(url)
    except InvalidURL as e:
        raise InvalidEdit(f"request url {e}") from e
    body = encode_body(headers, content)
    if body:
        headers = with_content_length(headers, len(body))
    return Request(method.upper(), scheme, host, port, target, headers, body)


def new_response(status: int, headers: Headers, content: bytes,
                 reason: str | None = None) -> Response:
    """A response written by hand; without a reason, the status's own phrase."""
    body = encode_body(headers, content)
    return Response(status, with_content_length(headers, len(body)), body,
                    reason if reason is not None else reason_for(status))


def edit_exchange(
    ex: Exchange,
    *,
    status: int | None = None,
    headers: Headers | None = None,
    body: bytes | None = None,
    name: str = "the recording",
) -> Exchange:
    """The exchange with the given parts of its response replaced; a recorded upstream
    failure becomes a response when a status is given.

    `body` is the new content as people see it (decoded); it is stored encoded with the
    Content-Encoding of the (new) headers. When only the headers change the encoding (say the
    user removed `Content-Encoding: gzip`), the stored body is re-encoded to match. The
    Content-Length header follows the stored body. `name` says which exchange in messages.
    """
    if status is None and headers is None and body is None:
        return ex
    resp = ex.response
    if resp is None:
        if status is None:
            kind = ex.failure.kind if ex.failure else "no response"
            raise InvalidEdit(f"{name} is an upstream failure ({kind}): give a status to "
                              "turn it into a response")
        resp = Response(status=status, reason=reason_for(status))
    new_headers = tuple(headers) if headers is not None else resp.headers
    old_enc = header_value(resp.headers, "content-encoding")
    new_enc = header_value(new_headers, "content-encoding")
    big = resp.big
    if body is not None:
        raw, big = encode_body(new_headers, body), None  # a new body is held inline
    elif _same_encoding(old_enc, new_enc):
        raw = resp.body
    elif big is not None:
        raise InvalidEdit(f"{name}'s body is too big to re-encode here: send a new body "
                          "too, or keep its Content-Encoding")
    else:
        try:
            decoded = decode_content(resp.body, old_enc)
        except DecodeError as e:
            raise InvalidEdit(
                f"the stored body is not valid {old_enc}; send the body too to replace it"
            ) from e
        raw = encode_body(new_headers, decoded)
    size = big.size if big is not None else len(raw)
    if ex.response is None:  # a new response is always delimited
        new_headers = with_content_length(new_headers, size)
    elif raw != resp.body or big is not resp.big or headers is not None:
        new_headers = fix_content_length(new_headers, size)
    new_status = resp.status if status is None else status
    reason = resp.reason if new_status == resp.status else reason_for(new_status)
    # a streamed response keeps its chunks' timings, cut to fit the new body when stored
    edited = replace(resp, status=new_status, headers=new_headers, body=raw, reason=reason,
                     big=big)
    return ex.with_(response=edited, failure=None)
