"""What replay loads: every recording of a tape as the in-memory index needs it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from .. import models as m
from ..exchange import Stream
from .tapes import get_tape


@dataclass(frozen=True, slots=True)
class Variant:
    """What replay reads of a recording to choose among the recordings of one key."""

    codings: frozenset[str]  # content codings a request must accept to be served this one
    media_type: str = ""  # of the recorded response
    accept: str | None = None  # the recorded request's Accept header
    headers: frozenset[tuple[str, str]] = frozenset()  # recorded request headers, for ties
    complete: bool = False  # False: only `codings` is filled in (a key's only recording)


@dataclass(slots=True, eq=False)
class ReplayEntry:
    """What replay needs of a recording, loaded once into the in-memory index.

    The response headers stay as the JSON text the store holds until the entry is first
    replayed: a tape of 100,000 recordings would otherwise parse 100,000 header lists
    before the proxy can answer its first request.
    """

    id: int
    match_key: str
    seq: int
    status: int | None
    reason: str
    http_version: str
    raw_headers: str | Sequence[Sequence[str]]  # JSON text, or already the pairs
    body: bytes
    failure_kind: str | None
    failure_message: str
    duration_ms: float
    # a streamed response's timings as the JSON text the store holds (None: not streamed);
    # decoded when first replayed, like the headers
    raw_stream: str | Stream | None = None
    external: bool = False  # `body` is empty: the store keeps it in parts (a big body)
    size: int = 0  # of the response body
    # the recorded request's headers, as JSON text until first needed (like the response's):
    # content negotiation and tie-breaks between recordings of one key read them
    raw_request_headers: str | Sequence[Sequence[str]] = ()
    # the proxy's encoded form of the headers, kept once it has been built
    wire_headers: tuple[tuple[bytes, bytes], ...] | None = None
    # what choosing among the recordings of one key reads (storage/replay.py), once built
    variant: Variant | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Decoded on each call: the proxy keeps only the encoded form (`wire_headers`)."""
        h = self.raw_headers
        return _pairs(h)

    @property
    def request_headers(self) -> tuple[tuple[str, str], ...]:
        return _pairs(self.raw_request_headers)

    @property
    def stream(self) -> Stream | None:
        s = self.raw_stream
        if isinstance(s, str):
            s = self.raw_stream = Stream.from_json(json.loads(s))
        return s


def _pairs(h: str | Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    pairs = json.loads(h) if isinstance(h, str) else h
    return tuple((str(k), str(v)) for k, v in pairs or ())


def replay_entries(s: Session, tape_name: str) -> list[ReplayEntry]:
    """Every recording of a tape as replay needs it.

    A Core query on the session's connection: no ORM row processing, and the header JSON
    comes back as text (decoded lazily, see ReplayEntry) on SQLite and PostgreSQL alike.
    """
    tape = get_tape(s, tape_name)
    if tape is None:
        return []
    c = m.Recording.__table__.c
    stmt = (
        select(
            c.id, c.match_key, c.seq, c.status, c.reason, c.response_http_version,
            cast(c.response_headers, Text), c.response_body, c.failure_kind,
            c.failure_message, c.duration_ms, cast(c.response_stream, Text),
            c.response_external.is_not(None), c.response_size, cast(c.request_headers, Text),
        )
        .where(c.tape_id == tape.id)
    )  # unordered: ReplayIndex puts each key's recordings in seq order
    entry = ReplayEntry  # every column but status and failure_kind is NOT NULL
    return [entry(*row) for row in s.connection().execute(stmt)]
