"""Big bodies' parts: written a part at a time as they are stored, read back the same way."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session

from .. import models as m

P = m.BodyPart


def add_body_parts(s: Session, rid: int, parts: Iterable[bytes]) -> int:
    """Store a recording's body from its parts, in order, one INSERT each (a part's bytes
    are let go once written); returns how many bytes."""
    size = 0
    for idx, data in enumerate(parts):
        s.execute(insert(P).values(recording_id=rid, idx=idx, data=data))
        size += len(data)
    return size


def delete_body_parts(s: Session, rid: int) -> None:
    s.execute(delete(P).where(P.recording_id == rid))


def copy_body_parts(s: Session, src: int, dst: int) -> None:
    s.execute(insert(P).from_select(
        ["recording_id", "idx", "data"],
        select(literal(dst), P.idx, P.data)
        .where(P.recording_id == src),
    ))


def body_part_count(s: Session, rid: int) -> int:
    return int(s.scalar(select(func.count()).where(P.recording_id == rid)) or 0)


def body_parts(s: Session, rid: int, start: int = 0, count: int | None = None) -> list[bytes]:
    """Parts `start` .. `start + count - 1` of a recording's big body (all from `start`)."""
    stmt = select(P.data).where(P.recording_id == rid, P.idx >= start).order_by(P.idx)
    if count is not None:
        stmt = stmt.limit(count)
    return [bytes(d) for d in s.scalars(stmt)]


def iter_body(s: Session, rid: int, batch: int = 4) -> Iterator[bytes]:
    """A big body's parts in order, `batch` parts per query: never the whole body at once."""
    start = 0
    while True:
        parts = body_parts(s, rid, start, batch)
        yield from parts
        if len(parts) < batch:
            return
        start += batch


def read_body(s: Session, rid: int) -> bytes:
    """A big body whole (for what needs all of it at once: a HAR export)."""
    return b"".join(iter_body(s, rid))


def body_head(s: Session, rid: int, size: int) -> bytes:
    """The first `size` bytes of a big body."""
    out = b""
    for part in iter_body(s, rid, batch=1):
        out += part[: size - len(out)]
        if len(out) >= size:
            break
    return out
