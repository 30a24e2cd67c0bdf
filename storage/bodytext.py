"""Bodies read as text: which charset a body is in, and how to write text back in it."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass

from .exchange import Headers

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def content_type_param(ctype: str, name: str) -> str | None:
    """A Content-Type parameter (`charset`, `boundary`), unquoted."""
    for part in ctype.split(";")[1:]:
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            return value.strip().strip('"')
    return None


@dataclass(frozen=True, slots=True)
class BodyText:
    """A body as text, and how to turn text back into the same kind of bytes."""

    text: str
    bom: bytes
    encoding: str

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.encoding)


def as_text(data: bytes, ctype: str) -> BodyText | None:
    """The body decoded per its byte-order mark, else its charset, else JSON's own rule
    (RFC 4627: UTF-8, -16 or -32 told apart by where the NULs are). A decoding that gives
    NUL characters is the wrong one (JSON text never holds a raw NUL): UTF-16 labelled
    utf-8 still decodes "successfully", with a NUL before every letter."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            candidates = [(bom, enc)]
            break
    else:
        charset = (content_type_param(ctype, "charset") or "").lower()
        detected = json.detect_encoding(data)
        # a charset without its byte order: where the NULs are tells it
        order = (detected, charset) if charset in ("utf-16", "utf-32") else (charset, detected)
        candidates = [(b"", c) for c in order if c]
    for prefix, enc in candidates:
        try:
            text = data[len(prefix):].decode(enc)
        except (LookupError, UnicodeError):
            continue
        if "\x00" not in text or enc == candidates[-1][1]:
            return BodyText(text, prefix, enc)
    return None


def is_wide(t: BodyText) -> bool:
    return t.encoding.replace("_", "-").lower().startswith(("utf-16", "utf-32", "utf16",
                                                             "utf32"))


def looks_like_json(data: bytes) -> bool:
    return data.lstrip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe")[:1] in (b"{", b"[")


def fix_content_length(headers: Headers, length: int) -> Headers:
    """Keep Content-Length in step with a body that changed (only where one was sent)."""
    if not any(k.lower() == "content-length" for k, _ in headers):
        return headers
    return tuple((k, str(length) if k.lower() == "content-length" else v) for k, v in headers)
