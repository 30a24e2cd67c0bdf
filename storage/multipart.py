"""Multipart bodies read as their parts: what an upload means, whatever boundary the client
picked for it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import multipart as mp

# a part's headers are tiny (name, filename, type); more than this is not a form upload
_MAX_PART_HEADERS = 16


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart body, its content kept whole (bodies are in memory anyway)."""

    name: str
    filename: str | None
    content_type: str  # media type, lower case, without parameters; "" when none was sent
    content: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a `multipart/*` Content-Type, or None for any other body."""
    if not content_type:
        return None
    mtype, options = mp.parse_options_header(content_type)
    if not mtype.startswith("multipart/"):
        return None
    boundary = options.get("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def parts(content_type: str | None, body: bytes) -> list[Part] | None:
    """The parts of a multipart body in the order sent; None when the body is not multipart
    or does not parse as such (it is then compared as bytes)."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return None
    out: list[Part] = []
    segment: mp.MultipartSegment | None = None
    chunks: list[bytes] = []
    try:
        parser = mp.PushMultipartParser(boundary, max_header_count=_MAX_PART_HEADERS)
        for chunk in (body, b""):  # the empty chunk says the body ends here
            for event in parser.parse(chunk):
                if isinstance(event, mp.MultipartSegment):
                    segment, chunks = event, []
                elif event is None:
                    assert segment is not None
                    out.append(Part(
                        name=segment.name or "",
                        filename=segment.filename,
                        content_type=segment.content_type or "",
                        content=b"".join(chunks),
                    ))
                    segment = None
                else:
                    chunks.append(bytes(event))
    except mp.MultipartError:
        return None
    return out
