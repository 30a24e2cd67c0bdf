"""Secret values found by their text rather than by a name.

`Scrubber` replaces values that a rule removed wherever else they appear in an exchange;
`redact_json_tokens` redacts JSON too deep or too broken to parse by scanning its tokens;
`scrub_log_text` takes credentials out of log lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

from .bodytext import as_text, fix_content_length, is_wide
from .codec import DecodeError, decode_content, encode_content
from .exchange import Headers, header_value

REDACTED = "REDACTED"

# Framing headers are never scrubbed: they describe the bytes, and are recomputed.
NOT_SCRUBBED = frozenset({"content-length", "content-encoding", "transfer-encoding"})
# A removed value shorter than this is not hunted elsewhere: it would match ordinary text.
MIN_SCRUB_LENGTH = 6

Removed = set[str]


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s"{}\[\]:,]+', re.S)


def _json_string(token: str) -> str:
    try:
        value = json.loads(token)
    except ValueError:
        return token[1:-1]
    return value if isinstance(value, str) else token[1:-1]


def leaves(value: Any, removed: Removed) -> None:
    """Every string inside a removed JSON value, walked without recursion."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            removed.add(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def redact_json_tokens(text: str, names: frozenset[str], removed: Removed) -> str | None:
    """Redaction of JSON that does not parse, or nests deeper than codec.MAX_JSON_DEPTH:
    a scan of its tokens, without recursion, replacing the value after every secret key
    (a whole object or list included). None if nothing was replaced."""
    tokens = [(m.start(), m.end(), m.group()) for m in _JSON_TOKEN.finditer(text)]
    out: list[str] = []
    pos = 0
    i = 0
    n = len(tokens)
    while i + 2 < n:
        tok = tokens[i][2]
        if not (tok[0] == '"' and tokens[i + 1][2] == ":"
                and _json_string(tok).lower() in names):
            i += 1
            continue
        start, end, value = tokens[i + 2]
        last = i + 2
        if value in ("{", "["):
            depth = 0
            for j in range(i + 2, n):
                t = tokens[j][2]
                if t in ("{", "["):
                    depth += 1
                elif t in ("}", "]"):
                    depth -= 1
                elif t[0] == '"':
                    removed.add(_json_string(t))
                last = j
                if depth == 0:
                    break
            end = tokens[last][1]
        elif value in ("}", "]", ":", ","):
            i += 2
            continue
        elif value != f'"{REDACTED}"':
            if value[0] == '"':
                removed.add(_json_string(value))
        if value == f'"{REDACTED}"':
            i = last + 1
            continue
        out.append(text[pos:start])
        out.append(f'"{REDACTED}"')
        pos = end
        i = last + 1
    if not out:
        return None
    out.append(text[pos:])
    return "".join(out)


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@'\"<>]+@")
_CONNECT_USERINFO = re.compile(r"\b(CONNECT\s+)[^\s/@'\"<>]+@")


@lru_cache(maxsize=32)
def _query_in_text(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?i)([?&;#](?:{alternatives})=)[^&\s'\"#<>]*")


def scrub_log_text(text: str, query: frozenset[str]) -> str:
    """A log line without the credentials a URL may carry: `user:password@` and the values
    of secret query parameters, wherever a URL appears in it (mitmproxy's own lines quote
    raw request lines)."""
    if "@" in text:
        text = _CONNECT_USERINFO.sub(rf"\1{REDACTED}@", _USERINFO.sub(rf"\1{REDACTED}@", text))
    if "=" in text:
        text = _query_in_text(query).sub(rf"\1{REDACTED}", text)
    return text


@dataclass(frozen=True, slots=True)
class Scrubber:
    """Replaces removed values wherever they appear: as written, percent-encoded, escaped
    in JSON, and as the latin-1 text of their UTF-8 bytes (how headers are kept)."""

    needles: tuple[str, ...]

    @classmethod
    def of(cls, removed: Removed) -> Scrubber | None:
        found: set[str] = set()
        for value in removed:
            if len(value) < MIN_SCRUB_LENGTH or value in REDACTED:
                continue
            found.update((
                value, quote(value, safe=""), quote_plus(value), quote(value, safe="/:@"),
                json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
                value.encode("utf-8", "surrogatepass").decode("latin-1"),
            ))
        needles = tuple(sorted((n for n in found if len(n) >= MIN_SCRUB_LENGTH),
                               key=len, reverse=True))
        return cls(needles) if needles else None

    def text(self, text: str) -> str:
        for needle in self.needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def data(self, data: bytes) -> bytes:
        for needle in self.needles:
            for enc in ("utf-8", "latin-1"):
                try:
                    raw = needle.encode(enc)
                except UnicodeError:
                    continue
                if raw in data:
                    data = data.replace(raw, REDACTED.encode())
        return data

    def headers(self, headers: Headers) -> Headers:
        new = tuple((k, v if k.lower() in NOT_SCRUBBED else self.text(v)) for k, v in headers)
        return headers if new == headers else new

    def body(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        if not body:
            return headers, body
        encoding = header_value(headers, "content-encoding")
        try:
            data = decode_content(body, encoding)
        except DecodeError:
            data, encoding = body, None  # undecodable: scrub the bytes as they are
        text = as_text(data, header_value(headers, "content-type") or "")
        if text is not None and is_wide(text):
            scrubbed = self.text(text.text)
            new = data if scrubbed == text.text else text.encode(scrubbed)
        else:
            new = self.data(data)
        if new == data:
            return headers, body
        new_body = encode_content(new, encoding)
        return fix_content_length(headers, len(new_body)), new_body
