"""A tape at a glance (the web UI's tapes page): how fresh its recordings are, its last audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import models as m
from .repository import list_audits, require_tape
from .times import as_utc


@dataclass(frozen=True, slots=True)
class Freshness:
    """How many recordings an audit has verified, when, and the verdicts they got."""

    verified: int = 0
    never_verified: int = 0
    oldest_verified_at: datetime | None = None
    newest_verified_at: datetime | None = None
    verdicts: dict[str, int] = field(default_factory=dict)


def freshness(s: Session, tape_name: str) -> Freshness:
    """One aggregate over the tape's recordings (never the rows themselves: a tape may hold
    100,000 recordings and the tapes page asks for every tape)."""
    tape = require_tape(s, tape_name)
    R = m.Recording
    never_checked = R.last_verified_at.is_(None)
    rows = s.execute(
        select(R.last_verdict, func.count(R.id), func.min(R.last_verified_at),
               func.max(R.last_verified_at))
        .where(R.tape_id == tape.id)
        .group_by(R.last_verdict, never_checked)
    ).all()
    verdicts: dict[str, int] = {}
    never = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    for verdict, count, first, last in rows:
        if first is None:  # the group of recordings no audit has verified
            never += int(count)
            continue
        verdicts[verdict or "unknown"] = verdicts.get(verdict or "unknown", 0) + int(count)
        first, last = as_utc(first), as_utc(last or first)
        oldest = first if oldest is None or first < oldest else oldest
        newest = last if newest is None or last > newest else newest
    return Freshness(sum(verdicts.values()), never, oldest, newest, dict(sorted(verdicts.items())))


def last_audit(s: Session, tape_name: str) -> m.Audit | None:
    """The tape's newest audit, running or finished."""
    audits = list_audits(s, tape_name, 1)
    return audits[0] if audits else None
