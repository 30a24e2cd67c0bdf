"""Content-Encoding and body-kind helpers shared by redaction, matching, display and diffs."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import brotli

from .errors import InvalidInput
from .exchange import Headers, header_value


class DecodeError(InvalidInput):
    """A body could not be decoded with its declared Content-Encoding."""


def decode_content(body: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Encoding (gzip, br, deflate, identity; comma lists applied in reverse)."""
    if not encoding or not body:
        return body
    data = body
    for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        try:
            if enc in ("gzip", "x-gzip"):
                data = gzip.decompress(data)
            elif enc == "br":
                data = brotli.decompress(data)
            elif enc == "deflate":
                try:
                    data = zlib.decompress(data)
                except zlib.error:
                    data = zlib.decompress(data, -zlib.MAX_WBITS)
            elif enc in ("identity", "none"):
                continue
            else:
                raise DecodeError(f"unsupported content-encoding {enc!r}")
        except DecodeError:
            raise
        except Exception as e:
            raise DecodeError(f"body is not valid {enc}") from e
    return data


def encode_content(body: bytes, encoding: str | None) -> bytes:
    """Apply a Content-Encoding; the inverse of decode_content."""
    if not encoding:
        return body
    data = body
    for enc in [e.strip().lower() for e in encoding.split(",") if e.strip()]:
        if enc in ("gzip", "x-gzip"):
            data = gzip.compress(data, mtime=0)
        elif enc == "br":
            data = brotli.compress(data)
        elif enc == "deflate":
            data = zlib.compress(data)
        elif enc in ("identity", "none"):
            continue
        else:
            raise DecodeError(f"unsupported content-encoding {enc!r}")
    return data


def decoded_body(headers: Headers, body: bytes) -> bytes:
    """The body with its Content-Encoding undone; the raw bytes when that fails."""
    try:
        return decode_content(body, header_value(headers, "content-encoding"))
    except DecodeError:
        return body


def is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct == "application/json" or ct.endswith("+json") or ct.endswith("/json")


# JSON nested deeper than this is not treated as JSON: it is matched byte for byte, shown as
# text and redacted by a token scan. Redaction, matching, diffs and the API's serialisers
# walk JSON trees recursively (pydantic refuses ~255 levels, deepdiff fails near 400), and
# a body is attacker-controlled. 128 is serde_json's default limit too; real APIs nest
# a few dozen levels at most.
MAX_JSON_DEPTH = 128


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when containers nest more than `limit` deep (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def parse_json(body: bytes | str) -> tuple[bool, Any]:
    """(True, value) when the body is a JSON document nested at most MAX_JSON_DEPTH deep,
    else (False, None)."""
    if isinstance(body, bytes):
        first = body.lstrip()[:1]
        ok = bool(first) and first in b'{["-0123456789tfn'
        # counting brackets is C-fast; only a document with enough of them can be too deep
        brackets = body.count(b"[") + body.count(b"{")
    else:
        first_char = body.lstrip()[:1]
        ok = bool(first_char) and first_char in '{["-0123456789tfn'
        brackets = body.count("[") + body.count("{")
    if not ok:
        return False, None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False, None
    if brackets > MAX_JSON_DEPTH and json_depth_exceeds(value):
        return False, None
    return True, value


def body_view(headers: Headers, body: bytes) -> dict[str, Any]:
    """How a body is shown to people: JSON as JSON, text as text, anything else base64."""
    data = decoded_body(headers, body)
    ctype = header_value(headers, "content-type")
    ok, value = parse_json(data) if (is_json_type(ctype) or data[:1] in (b"{", b"[")) else (
        False,
        None,
    )
    if ok:
        return {"encoding": "json", "content": value}
    try:
        return {"encoding": "text", "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "content": base64.b64encode(data).decode("ascii")}


def body_from_view(view: dict[str, Any] | None) -> bytes:
    """Bytes for a body given in the display shape (the inverse of body_view); no body is
    empty. InvalidInput when the content does not fit its encoding."""
    if view is None:
        return b""
    enc = view.get("encoding")
    content = view.get("content")
    if enc == "json":
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if enc not in ("text", "base64"):
        raise InvalidInput("body encoding must be json, text or base64")
    if not isinstance(content, str):
        raise InvalidInput(f"{enc} body content must be a string")
    if enc == "text":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except ValueError as e:
        raise InvalidInput("base64 body content is not valid base64") from e
