"""Tapes: create, find, copy, empty, delete, their matching rules, the list with counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from .. import models as m
from ..errors import Conflict, NotFound
from ..matching import MatchRules, match_key
from ..times import as_utc, utcnow
from .bodies import copy_body_parts
from .rows import row_request
from .sql import insert_unless_present


class TapeNotFound(NotFound):
    """No tape has that name."""


class TapeExists(Conflict):
    """A tape with that name already exists."""


def get_tape(s: Session, name: str) -> m.Tape | None:
    return s.scalars(select(m.Tape).where(m.Tape.name == name)).one_or_none()


def require_tape(s: Session, name: str) -> m.Tape:
    tape = get_tape(s, name)
    if tape is None:
        raise TapeNotFound(f"tape {name!r} not found")
    return tape


def ensure_tape(s: Session, name: str, matching: dict[str, Any] | None = None) -> m.Tape:
    """Create the tape if it is missing; safe when several processes race to create it."""
    now = utcnow()
    insert_unless_present(s, m.Tape, {"name": name, "created_at": now, "updated_at": now,
                                      "revision": 0, "matching": matching or {}, "noise": []},
                          key="name")
    return require_tape(s, name)


def touch_tape(s: Session, tape_id: int) -> None:
    """Bump the revision. As the first write of a transaction this also serialises writers
    of one tape: a row lock on PostgreSQL, the database write lock on SQLite."""
    s.execute(
        update(m.Tape)
        .where(m.Tape.id == tape_id)
        .values(revision=m.Tape.revision + 1, updated_at=utcnow())
    )


def tape_rules(s: Session, name: str) -> MatchRules:
    tape = get_tape(s, name)
    return MatchRules.from_dict(tape.matching if tape else None)


def create_tape(s: Session, name: str, matching: dict[str, Any] | None = None) -> m.Tape:
    if get_tape(s, name) is not None:
        raise TapeExists(f"tape {name!r} already exists")
    rules = MatchRules.from_dict(matching)  # InvalidRule for a bad rule
    return ensure_tape(s, name, rules.to_dict() if matching else {})


def empty_tape(s: Session, name: str) -> int:
    """Delete a tape's recordings; returns how many there were."""
    tape = get_tape(s, name)
    if tape is None:
        return 0
    touch_tape(s, tape.id)
    result = s.execute(delete(m.Recording).where(m.Recording.tape_id == tape.id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delete_tape(s: Session, name: str) -> int:
    """Delete a tape and its recordings; returns how many recordings went with it."""
    tape = require_tape(s, name)
    n = empty_tape(s, name)
    s.execute(delete(m.Tape).where(m.Tape.id == tape.id))
    s.expunge(tape)
    return n


_COPIED = [c for c in m.Recording.__table__.columns.keys() if c not in ("id", "tape_id")]


def copy_tape(s: Session, name: str, to: str) -> m.Tape:
    """A new tape `to` with the recordings, matching rules and noise of `name`."""
    src = require_tape(s, name)
    if get_tape(s, to) is not None:
        raise TapeExists(f"tape {to!r} already exists")
    dst = ensure_tape(s, to, dict(src.matching or {}))
    dst.noise = list(src.noise or [])
    touch_tape(s, dst.id)
    R = m.Recording
    cols = [getattr(R, c) for c in _COPIED]
    s.execute(
        insert(R).from_select(
            ["tape_id", *_COPIED],
            select(literal(dst.id), *cols)
            .where(R.tape_id == src.id, R.response_external.is_(None)).order_by(R.id),
        )
    )
    # big bodies one recording at a time, each with its parts
    for old in list(s.scalars(select(R.id).where(R.tape_id == src.id,
                                                 R.response_external.is_not(None)))):
        new = s.scalar(insert(R).from_select(
            ["tape_id", *_COPIED], select(literal(dst.id), *cols).where(R.id == old),
        ).returning(R.id))
        assert new is not None
        copy_body_parts(s, old, new)
    s.flush()
    s.refresh(dst)
    return dst


def set_matching(s: Session, name: str, rules: MatchRules) -> int:
    """Store a tape's matching rules and, when they changed, re-key its recordings at once
    (so nothing needs recording again); returns how many recordings changed key or seq."""
    tape = require_tape(s, name)
    if rules == MatchRules.from_dict(tape.matching):
        return 0
    tape.matching = rules.to_dict()
    s.flush()
    return recompute_keys(s, name)


def recompute_keys(s: Session, tape_name: str) -> int:
    """Re-key every recording of a tape under its current rules and renumber `seq`."""
    tape = require_tape(s, tape_name)
    touch_tape(s, tape.id)
    rules = MatchRules.from_dict(tape.matching)
    rows = s.scalars(
        select(m.Recording).where(m.Recording.tape_id == tape.id).order_by(
            m.Recording.captured_ns, m.Recording.id
        )
    ).all()
    counters: dict[str, int] = {}
    changed = 0
    for r in rows:
        key = match_key(row_request(r), rules)
        seq = counters.get(key, 0)
        counters[key] = seq + 1
        if r.match_key != key or r.seq != seq:
            r.match_key, r.seq = key, seq
            changed += 1
    s.flush()
    return changed


@dataclass(frozen=True, slots=True)
class TapeSummary:
    name: str
    recordings: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tape: m.Tape, count: int) -> TapeSummary:
        return cls(tape.name, count, as_utc(tape.created_at), as_utc(tape.updated_at))


def list_tapes(s: Session) -> list[TapeSummary]:
    counts = select(m.Recording.tape_id, func.count(m.Recording.id).label("n")).group_by(
        m.Recording.tape_id
    ).subquery()
    stmt = (
        select(m.Tape, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.tape_id == m.Tape.id)
        .order_by(m.Tape.name)
    )
    return [TapeSummary.of(tape, int(n)) for tape, n in s.execute(stmt)]


def tape_summary(s: Session, name: str) -> TapeSummary:
    tape = require_tape(s, name)
    n = s.scalar(select(func.count(m.Recording.id)).where(m.Recording.tape_id == tape.id))
    return TapeSummary.of(tape, int(n or 0))
