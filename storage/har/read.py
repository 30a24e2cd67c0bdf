"""HAR import: a HAR 1.2 document checked against model.py's models, turned into exchanges.

The models say what each field must be; a document that breaks them is refused as a whole
(HarError), its message naming the first bad entry and field the way the file spells it:
`log.entries[2].response.status must be an integer`. Browser exports are taken as they
come: HTTP/2 pseudo-headers are dropped, "h2" is HTTP/2.0, a request that got no answer
(status 0) is an upstream failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..bodytext import fix_content_length
from ..edit import InvalidEdit, encode_body
from ..errors import InvalidInput
from ..exchange import (
    Exchange,
    Failure,
    FailureKind,
    Headers,
    Request,
    Response,
    Stream,
    Truncation,
    header_value,
    split_url,
)
from .model import MAX_DURATION_MS, Body, Document, Entry, ExactBody, Header


class HarError(InvalidInput):
    """A HAR document wiretape cannot import; the message names the entry and the field."""


def digest(data: bytes) -> str:
    """What guards a body's exact bytes kept under `_wiretape` (see write.py)."""
    return hashlib.sha256(data).hexdigest()


# -- errors in the file's own words -------------------------------------------------------

_MUST_BE = {
    "string_type": "must be a string", "int_type": "must be an integer",
    "float_type": "must be a number", "bool_type": "must be true or false",
    "dict_type": "must be an object", "model_type": "must be an object",
    "model_attributes_type": "must be an object", "list_type": "must be a list",
    "greater_than_equal": "is out of range", "less_than": "is out of range",
    "datetime_type": "must be an ISO 8601 date and time",
}


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the HAR document"


def _message(err: ErrorDetails) -> str:
    where = _where(err["loc"])
    if err["type"] == "value_error":
        return f"{where} {err.get('ctx', {}).get('error', err['msg'])}"
    if err["loc"] and err["loc"][-1] == "headers" and err["type"] == "list_type":
        return f"{where} must be a list of {{name, value}} objects"
    if err["loc"] and err["loc"][-1] == "time" and err["type"] == "float_type":
        return f"{where} must be a number of milliseconds"
    return f"{where} {_MUST_BE.get(err['type'], err['msg'])}"


# -- from the checked document to exchanges -----------------------------------------------

@dataclass(frozen=True, slots=True)
class HarTape:
    """What an imported HAR holds: the exchanges in file order and the tape's rules if any."""

    exchanges: list[Exchange]
    matching: dict[str, Any] | None


def _body(headers: Headers, body: Body | None, exact: ExactBody | None,
          where: str) -> tuple[Headers, bytes]:
    """The stored bytes of a body: its exact bytes when `_wiretape` kept them for this very
    content, else the content encoded with the headers' Content-Encoding."""
    content = body.content() if body is not None else b""
    if not content:
        return headers, b""
    if exact is not None and exact.sha256 == digest(content):
        try:
            return headers, base64.b64decode(exact.base64, validate=True)
        except (binascii.Error, ValueError, TypeError) as e:
            raise HarError(f"{where}: _wiretape raw body is not valid base64") from e
    if not header_value(headers, "content-encoding"):
        return headers, content
    try:
        raw = encode_body(headers, content)
    except InvalidEdit:
        # a browser export in an encoding wiretape cannot produce (zstd, say): keep the
        # decoded text and say so in the headers
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-encoding")
        raw = content
    return fix_content_length(headers, len(raw)), raw


def _headers(headers: list[Header]) -> Headers:
    return tuple((h.name, h.value) for h in headers if not h.name.startswith(":"))


def _request(e: Entry, where: str) -> Request:
    req = e.request
    scheme, host, port, target = split_url(req.url)
    headers, body = _body(_headers(req.headers), req.postData, e.wiretape.requestBody,
                          f"{where}.request.postData")
    return Request(req.method.upper(), scheme, host, port, target, headers, body,
                   req.httpVersion)


def _exchange(i: int, e: Entry) -> Exchange:
    where = f"log.entries[{i}]"
    extra, resp = e.wiretape, e.response
    if extra.capturedNs is not None:
        captured_ns = extra.capturedNs
    elif e.startedDateTime is not None:
        captured_ns = int(e.startedDateTime.timestamp() * 1_000_000) * 1000
    else:
        raise HarError(f"{where}.startedDateTime must be a string")
    duration = max(0.0, min(e.time, MAX_DURATION_MS))
    request = _request(e, where)
    if extra.failure is not None or resp.status == 0:
        if extra.failure is not None:
            failure = Failure(FailureKind(extra.failure.kind), extra.failure.message)
        else:  # a browser's export of a request that got no answer
            error = (resp.model_extra or {}).get("_error") or (e.model_extra or {}).get("_error")
            failure = Failure(FailureKind.ERROR, str(error or "no response"))
        return Exchange(request, None, failure, captured_ns, duration, extra.note)
    if not 100 <= resp.status <= 999:
        raise HarError(f"{where}.response.status {resp.status} must be between 100 and 999")
    headers, body = _body(_headers(resp.headers), resp.content, extra.responseBody,
                          f"{where}.response.content")
    stream = None
    if extra.stream is not None:
        doc = extra.stream
        stream = Stream(doc.headMs, tuple((o, int(n)) for o, n in doc.chunks),
                        Truncation(doc.truncated) if doc.truncated else None)
    response = Response(resp.status, headers, body, resp.statusText[:255], resp.httpVersion,
                        stream=stream)
    return Exchange(request, response, None, captured_ns, duration, extra.note)


def parse(doc: Any) -> HarTape:
    """Every entry of a HAR document as an exchange; HarError on the first bad entry, so an
    import is all or nothing."""
    try:
        checked = Document.model_validate(doc)
    except ValidationError as e:
        raise HarError(_message(e.errors()[0])) from None
    exchanges = [_exchange(i, entry) for i, entry in enumerate(checked.log.entries)]
    # entries of foreign HARs may share a start time: keep their file order within a key
    seen: dict[int, int] = {}
    ordered = []
    for ex in exchanges:
        n = seen.get(ex.captured_ns, 0)
        seen[ex.captured_ns] = n + 1
        ordered.append(ex.with_(captured_ns=ex.captured_ns + n) if n else ex)
    meta = checked.log.wiretape
    return HarTape(ordered, meta.matching if meta is not None else None)


def loads(text: str | bytes) -> HarTape:
    try:
        doc = json.loads(text)
    except RecursionError as e:
        raise HarError("not a HAR file: its JSON is nested too deeply to read") from e
    except ValueError as e:
        raise HarError(f"not a HAR file: {e}") from e
    return parse(doc)
