"""Tapes: create, find, copy, empty, delete, their matching rules, the list with counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.orm import Session, load_only

from .. import models as m
from ..errors import Conflict, NotFound
from ..matching import KEY_VERSION, MatchRules, match_key
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
                                      "revision": 0, "matching": matching or {}, "noise": [],
                                      "key_version": KEY_VERSION},
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
    tape.key_version = KEY_VERSION  # no recording left with an older key
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
    dst.key_version = src.key_version  # the keys are copied as they are
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
    """Re-key every recording of a tape under its current rules (and this version of the
    keys) and renumber `seq`; returns how many recordings changed key or seq."""
    tape = require_tape(s, tape_name)
    touch_tape(s, tape.id)
    rules = MatchRules.from_dict(tape.matching)
    R = m.Recording
    rows = s.scalars(
        # what a key is computed from, not the responses (often the bulk of a row)
        select(R).options(load_only(
            R.id, R.match_key, R.seq, R.captured_ns, R.method, R.scheme, R.host, R.port,
            R.target, R.request_headers, R.request_body, R.http_version,
        )).where(R.tape_id == tape.id).order_by(R.captured_ns, R.id)
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
    tape.key_version = KEY_VERSION
    s.flush()
    return changed


def outdated_tapes(s: Session) -> list[str]:
    """Tapes whose match keys an older wiretape computed (see matching.KEY_VERSION)."""
    return list(s.scalars(select(m.Tape.name).where(m.Tape.key_version < KEY_VERSION)
                          .order_by(m.Tape.name)))


def rekey_outdated_tape(s: Session, name: str) -> int | None:
    """Re-key one tape if its keys are still older than this wiretape's (another process
    may have done it meanwhile: the tape's row is locked first); returns how many
    recordings changed, or None if there was nothing to do."""
    tape = get_tape(s, name)
    if tape is None:
        return None
    touch_tape(s, tape.id)  # the tape's write lock, then read its version again
    s.refresh(tape)
    if tape.key_version >= KEY_VERSION:
        return None
    return recompute_keys(s, name)


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
