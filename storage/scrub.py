"""Secret values found by their text rather than by a name.

`Scrubber` replaces values that a rule removed wherever else they appear in an exchange
(`StreamScrub` the same in a body read a piece at a time); `scrub_log_text` takes
credentials out of log lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
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


class StreamScrub[T: (str, bytes)]:
    """A Scrubber's replacing, on a body read a piece at a time: each piece is scrubbed
    together with the end of the one before it (the longest needle less one character),
    so a value cut in two by the pieces is found as well. `hits` counts the values found."""

    def __init__(self, needles: Sequence[T], marker: T) -> None:
        self.needles: Sequence[T] = needles
        self.marker: T = marker
        self.keep = max(len(n) for n in needles) - 1
        self.tail: T = marker[:0]
        self.hits = 0

    def feed(self, piece: T) -> T:
        buf = self.tail + piece
        for needle in self.needles:
            if needle in buf:
                self.hits += buf.count(needle)
                buf = buf.replace(needle, self.marker)
        cut = max(0, len(buf) - self.keep)
        self.tail = buf[cut:]
        return buf[:cut]

    def end(self) -> T:
        out, self.tail = self.tail, self.marker[:0]
        return out


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

    def byte_needles(self) -> tuple[bytes, ...]:
        """The needles as bytes: each as UTF-8 and as latin-1, longest first."""
        out: dict[bytes, None] = {}
        for needle in self.needles:
            for enc in ("utf-8", "latin-1"):
                try:
                    out[needle.encode(enc)] = None
                except UnicodeError:
                    continue
        return tuple(sorted(out, key=len, reverse=True))

    def data(self, data: bytes) -> bytes:
        for raw in self.byte_needles():
            if raw in data:
                data = data.replace(raw, REDACTED.encode())
        return data

    def text_stream(self) -> StreamScrub[str]:
        return StreamScrub(self.needles, REDACTED)

    def data_stream(self) -> StreamScrub[bytes]:
        return StreamScrub(self.byte_needles(), REDACTED.encode())

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
