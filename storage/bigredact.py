"""Redaction of a body too big to hold in memory (over bodies.BIG_BODY), as it is stored.

The same rules as for any other body: secret JSON fields replaced, and every value removed
elsewhere in the exchange (a token from the request's headers, a cookie) scrubbed. The body
is read back from its spool a part at a time, its Content-Encoding undone and done again a
piece at a time, so memory stays bounded by a part whatever the body's size.

A body is read once more for every step that has something to do, and rewritten only when
something was found:
1. a screen: does any removed value occur, and could a secret JSON field (its quoted name,
   or a `\\u` escape that could spell one)? A body with neither is kept as it came;
2. if a field could be there, a scan that finds the fields' values (to scrub them wherever
   else they occur, before them as well as after);
3. the rewrite into a new spool, with a new size, digest and preview.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import brotli

from .bodies import SpooledBody
from .bodytext import BodyText, as_text, is_wide, looks_like_json
from .codec import DecodeError, is_json_type
from .exchange import BigBody, Headers, header_value
from .jsonscan import JsonFieldScan, json_needles
from .scrub import Removed, Scrubber, StreamScrub

_CODINGS = ("gzip", "x-gzip", "deflate", "br")


class _Coder(Protocol):
    def __call__(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Inflate:
    """gzip (members one after another, as gzip.decompress reads them) or deflate (with
    the zlib wrapper, or raw as some servers send it)."""

    def __init__(self, coding: str) -> None:
        self.gzip = coding != "deflate"
        self._obj: zlib._Decompress | None = None

    def __call__(self, data: bytes) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            wrapped = len(data) > 1 and data[0] & 0x0F == 8 and int.from_bytes(data[:2]) % 31 == 0
            self._obj = zlib.decompressobj(31 if self.gzip else 15 if wrapped else -15)
        out = self._obj.decompress(data)
        while self.gzip and self._obj.eof and self._obj.unused_data:
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(31)
            out += self._obj.decompress(rest)
        return out

    def flush(self) -> bytes:
        return self._obj.flush() if self._obj is not None else b""


class _Deflate:
    def __init__(self, coding: str) -> None:
        self._obj = zlib.compressobj(6, zlib.DEFLATED, 15 if coding == "deflate" else 31)

    def __call__(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


class _Unbrotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def __call__(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data))

    def flush(self) -> bytes:
        return b""


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Compressor(quality=4)  # 11, the default, takes seconds a MB

    def __call__(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data))

    def flush(self) -> bytes:
        return bytes(self._obj.finish())


def _codings(encoding: str | None) -> list[str] | None:
    """The Content-Encoding's codings in the order applied; None if one is not known."""
    names = [e.strip().lower() for e in (encoding or "").split(",") if e.strip()]
    names = [n for n in names if n not in ("identity", "none")]
    return names if all(n in _CODINGS for n in names) else None


def _through(pieces: Iterable[bytes], coder: _Coder) -> Iterator[bytes]:
    for piece in pieces:
        if out := coder(piece):
            yield out
    if out := coder.flush():
        yield out


def _decoded(parts: Iterable[bytes], codings: list[str]) -> Iterator[bytes]:
    pieces: Iterable[bytes] = parts
    for coding in reversed(codings):
        pieces = _through(pieces, _Unbrotli() if coding == "br" else _Inflate(coding))
    try:
        yield from pieces
    except (zlib.error, brotli.error) as e:
        raise DecodeError(f"body is not valid {', '.join(codings)}") from e


def _encoded(pieces: Iterable[bytes], codings: list[str]) -> Iterator[bytes]:
    for coding in codings:
        pieces = _through(pieces, _Brotli() if coding == "br" else _Deflate(coding))
    return iter(pieces)


class _NotText(Exception):
    """The body stopped decoding in the charset its start was found to be in."""


@dataclass(frozen=True, slots=True)
class _Charset:
    bom: bytes
    encoding: str

    @classmethod
    def of(cls, sample: bytes, ctype: str) -> _Charset | None:
        for cut in range(4):  # the sample may end inside a character
            text = as_text(sample[: len(sample) - cut], ctype)
            if text is not None:
                return cls(text.bom, text.encoding)
        return None

    @property
    def wide(self) -> bool:
        return is_wide(BodyText("", self.bom, self.encoding))

    def texts(self, pieces: Iterable[bytes]) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self.encoding)()
        skip = len(self.bom)
        try:
            for piece in pieces:
                if skip:
                    piece, skip = piece[skip:], max(0, skip - len(piece))
                if text := decoder.decode(piece):
                    yield text
            if text := decoder.decode(b"", final=True):
                yield text
        except UnicodeError as e:
            raise _NotText from e

    def data(self, texts: Iterable[str]) -> Iterator[bytes]:
        encoder = codecs.getincrementalencoder(self.encoding)()
        if self.bom:
            yield self.bom
        for text in texts:
            if out := encoder.encode(text):
                yield out
        if out := encoder.encode("", final=True):
            yield out


class _Step[T: (str, bytes)](Protocol):
    def feed(self, piece: T) -> T: ...

    def end(self) -> T: ...


def _fed[T: (str, bytes)](pieces: Iterable[T], step: _Step[T]) -> Iterator[T]:
    for piece in pieces:
        if out := step.feed(piece):
            yield out
    if out := step.end():
        yield out


class _Lowered:
    """A detector fed lower-cased text (a JSON key's name compared case-insensitively)."""

    def __init__(self, inner: StreamScrub[str]) -> None:
        self.inner = inner

    def feed(self, piece: str) -> str:
        self.inner.feed(piece.lower())
        return piece

    def end(self) -> str:
        self.inner.end()
        return ""


@dataclass(slots=True)
class _Plan:
    """How one body is read: which codings to undo, in which charset (when read as text)."""

    codings: list[str]
    charset: _Charset | None
    json: bool  # JSON by its Content-Type or its first bytes, and names to look for


@dataclass(slots=True)
class _Steps:
    """What one pass found, read once it has been drained."""

    screen: _Lowered | None = None  # secret field names (or \u escapes)
    scan: JsonFieldScan | None = None  # secret fields replaced
    scrubs: list[StreamScrub[str] | StreamScrub[bytes]] = field(default_factory=list)

    @property
    def names(self) -> int:
        return self.screen.inner.hits if self.screen is not None else 0

    @property
    def changed(self) -> bool:
        return self.scan is not None and self.scan.changed

    @property
    def values(self) -> int:
        return sum(s.hits for s in self.scrubs)


def _pass(parts: Iterable[bytes], plan: _Plan, *, names: frozenset[str] = frozenset(),
          screen_names: bool = False, scrub: Scrubber | None = None,
          removed: Removed | None = None) -> tuple[Iterator[bytes], _Steps]:
    """The body through one pass (decoded, each step applied, encoded again), and its
    steps."""
    data: Iterable[bytes] = _decoded(parts, plan.codings)
    steps = _Steps()
    charset = plan.charset
    wide = charset is not None and charset.wide
    if charset is not None:
        if plan.json and screen_names:
            steps.screen = _Lowered(StreamScrub((*json_needles(names), "\\u"), ""))
        if plan.json and removed is not None and names:
            steps.scan = JsonFieldScan(names, removed)
        text_scrub = scrub.text_stream() if scrub is not None and wide else None
        text_steps = [s for s in (steps.screen, steps.scan, text_scrub) if s is not None]
        if text_steps:
            texts: Iterable[str] = charset.texts(data)
            for step in text_steps:
                texts = _fed(texts, step)
            data = charset.data(texts)
        if text_scrub is not None:
            steps.scrubs.append(text_scrub)
    if scrub is not None and not wide:
        byte_scrub = scrub.data_stream()
        data = _fed(data, byte_scrub)
        steps.scrubs.append(byte_scrub)
    return _encoded(data, plan.codings), steps


def _drain(pieces: Iterator[bytes]) -> None:
    for _ in pieces:
        pass


def _first(parts: Callable[[], Iterator[bytes]], codings: list[str]) -> bytes:
    for piece in _decoded(parts(), codings):
        return piece
    return b""


def redact_big_body(headers: Headers, big: BigBody, names: frozenset[str],
                    removed: Removed) -> BigBody:
    """`big` (being captured, with its spool as `source`) with its secret JSON fields
    replaced and the `removed` values scrubbed; the same BigBody when nothing was found.
    The values taken out of JSON fields are added to `removed`."""
    source = big.source
    if source is None:
        return big
    scrub = Scrubber.of(removed)
    ctype = header_value(headers, "content-type") or ""
    codings = _codings(header_value(headers, "content-encoding"))
    if codings is None:
        codings = []  # an unknown coding: scrub the bytes as they are
    try:
        sample = _first(source.parts, codings)
    except DecodeError:
        codings, sample = [], _first(source.parts, [])
    plan = _Plan(codings, _Charset.of(sample, ctype),
                 bool(names) and (is_json_type(ctype) or looks_like_json(sample)))
    if scrub is None and not plan.json:
        return big
    for _ in range(3):  # a coding or a charset that fails further on is given up
        pieces, found = _pass(source.parts(), plan, names=names, screen_names=True,
                              scrub=scrub)
        try:
            _drain(pieces)
            break
        except DecodeError:
            plan.codings = []
        except _NotText:
            plan.charset = None
    changed = False
    if found.names:
        fields: Removed = set()
        pieces, scanned = _pass(source.parts(), plan, names=names, removed=fields)
        _drain(pieces)
        changed = scanned.changed
        removed |= fields
        scrub = Scrubber.of(removed)
    if not changed and not found.values:
        return big
    spool = SpooledBody()
    try:
        pieces, _ = _pass(source.parts(), plan, names=names if changed else frozenset(),
                          removed=set(), scrub=scrub)
        for piece in pieces:
            if spool.write(piece):
                spool.flushed()  # the disk lags: let it catch up before reading on
        spool.flushed()
    except BaseException:
        spool.close()
        raise
    return replace(big, size=spool.size, sha256="", preview=spool.preview, source=spool)
