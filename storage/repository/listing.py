"""The recording list: filters (shared by list, delete-by-filter and `wiretape ls`) and pages.

Each filter picks the index that serves it best; see `_FEW` for how.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, column, func, literal, select, text
from sqlalchemy.orm import Session

from .. import models as m
from ..times import as_utc
from .sql import is_sqlite
from .tapes import require_tape


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    """The filters of the recording list, shared by list, delete-by-filter and `wiretape ls`."""

    tape: str | None = None
    method: str | None = None
    host: str | None = None
    path: str | None = None  # prefix of the path (without the query string)
    status: int | None = None
    q: str | None = None  # text in the (decoded) request or response body
    since: datetime | None = None  # recorded at or after
    until: datetime | None = None  # recorded before

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (self.tape, self.method, self.host, self.path, self.status, self.q,
                      self.since, self.until)
        )


def _db_time(s: Session, value: datetime) -> datetime:
    value = as_utc(value)
    # SQLite stores the UTC wall time without an offset; compare like with like
    return value.replace(tzinfo=None) if is_sqlite(s) else value


# A filter an index can narrow (text in bodies, a path prefix, a time range) is only worth
# the index when it selects few recordings: a page of a common match is found sooner by
# walking ids newest-first and stopping after one page. PostgreSQL's planner tells the two
# apart from its statistics; SQLite keeps none by default, so on SQLite the repository counts
# (through the index, stopping at this many) and shows the planner only the useful path.
_FEW = 2000
FTS_TABLE = "recordings_fts"  # SQLite's trigram index of search_text (migration 0004)


def _few(s: Session, stmt: Any) -> bool:
    n = s.scalar(select(func.count()).select_from(stmt.limit(_FEW).subquery()))
    return int(n or 0) < _FEW


def _has_fts(s: Session) -> bool:
    return s.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": FTS_TABLE},
    ).first() is not None


def _text_condition(s: Session, needle: str) -> tuple[list[Any], bool]:
    """Recordings whose decoded bodies hold `needle` (lower-cased, like search_text), and
    whether an index narrowed them to a few."""
    R = m.Recording
    conds: list[Any] = [R.search_text.contains(needle, autoescape=True)]
    # PostgreSQL: the pg_trgm index serves this LIKE directly. SQLite: ask its FTS5 trigram
    # table for the few candidates (it needs 3 characters; no LIKE wildcards to escape)
    if (is_sqlite(s) and len(needle) >= 3
            and not any(c in needle for c in "%_") and _has_fts(s)):
        pattern = f"%{needle}%"
        many = s.scalar(
            text(f"SELECT count(*) FROM (SELECT 1 FROM {FTS_TABLE} "
                 "WHERE search_text LIKE :pattern LIMIT :few)"),
            {"pattern": pattern, "few": _FEW},
        )
        if int(many or 0) < _FEW:
            candidates = text(
                f"SELECT rowid FROM {FTS_TABLE} WHERE search_text LIKE :fts_pattern"
            ).bindparams(fts_pattern=pattern).columns(column("rowid", Integer))
            conds.append(R.id.in_(candidates))
            return conds, True
    return conds, False


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix` (code point order)."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000
    return prefix[:-1] + chr(last) if last <= 0x10FFFF else None


@dataclass(slots=True)
class Where:
    conds: list[Any]
    tape: m.Tape | None
    # an index on a selective filter finds its few matches: sort those rather than walk
    # the id index (see _FEW)
    narrow: bool = False


def filter_conditions(s: Session, f: RecordingFilter) -> Where:
    R = m.Recording
    sqlite_db = is_sqlite(s)
    w = Where([], None)
    if f.tape is not None:
        w.tape = require_tape(s, f.tape)
        w.conds.append(R.tape_id == w.tape.id)
    if f.method:
        w.conds.append(R.method == f.method.upper())
    if f.host:
        hosts = {f.host, f.host.lower()}
        w.conds.append(R.host.in_(sorted(hosts)))
    if f.path:
        # exact, case-sensitive prefix (SQLite's LIKE would ignore case)
        w.conds.append(func.substr(R.path, 1, len(f.path)) == f.path)
        if not sqlite_db:
            # PostgreSQL's planner weighs the (tape_id, path text_pattern_ops) index itself
            w.conds.append(R.path.startswith(f.path, autoescape=True))
        elif w.tape is not None:
            end = _prefix_end(f.path)
            span = [R.path >= f.path] + ([R.path < end] if end is not None else [])
            if _few(s, select(R.id).where(R.tape_id == w.tape.id, *span)):
                w.conds += span  # a rare prefix: the (tape_id, path) index finds it
                w.narrow = True
    if f.status is not None:
        w.conds.append(R.status == f.status)
    if f.q:
        conds, narrow = _text_condition(s, f.q.lower())
        w.conds += conds
        w.narrow = w.narrow or narrow
    if f.since is not None or f.until is not None:
        span = _time_span(s, R.recorded_at, f)
        if w.tape is not None and _few(s, select(R.id).where(R.tape_id == w.tape.id, *span)):
            w.narrow = True  # a short stretch of time: the (tape_id, recorded_at) index
        elif sqlite_db and w.tape is not None:
            # a long one: keep SQLite's planner off the time index, walk ids instead
            span = _time_span(s, func.coalesce(R.recorded_at, R.recorded_at), f)
        w.conds += span
    return w


def _time_span(s: Session, when: Any, f: RecordingFilter) -> list[Any]:
    return ([when >= _db_time(s, f.since)] if f.since is not None else []) + (
        [when < _db_time(s, f.until)] if f.until is not None else [])


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """One line of the recording list: no bodies, nothing decoded."""

    id: int
    tape: str
    seq: int
    method: str
    url: str
    status: int | None
    duration_ms: float
    recorded_at: datetime
    request_size: int
    response_size: int
    content_type: str
    # freshness: when a drift audit last compared it with the live upstream, and the verdict
    last_verified_at: datetime | None = None
    last_verdict: str | None = None


def list_recordings(
    s: Session, f: RecordingFilter, limit: int = 50, before_id: int | None = None
) -> list[RecordingSummary]:
    """Newest first (id descending), keyset-paged: `before_id` is the last id of the previous
    page. New recordings get higher ids, so they never shift a page being walked."""
    R, T = m.Recording, m.Tape
    w = filter_conditions(s, f)
    conds, tape = w.conds, w.tape
    if before_id is not None:
        conds.append(R.id < before_id)
    cols = (R.id, R.seq, R.method, R.url, R.status, R.duration_ms, R.recorded_at,
            R.request_size, R.response_size, R.content_type)
    if tape is not None:
        stmt = select(*cols, literal(tape.name, String()))
    else:
        stmt = select(*cols, T.name).join(T, T.id == R.tape_id)
    # `id + 0` sorts the same but cannot be read off the id index, so for a narrow filter
    # the planner takes that filter's index and sorts its few matches
    order = (R.id + 0).desc() if w.narrow else R.id.desc()
    listed = (stmt.add_columns(R.last_verified_at, R.last_verdict)
              .where(*conds).order_by(order).limit(limit))
    return [
        RecordingSummary(
            id=row[0], tape=row[10], seq=row[1], method=row[2], url=row[3], status=row[4],
            duration_ms=row[5] or 0.0, recorded_at=as_utc(row[6]), request_size=row[7] or 0,
            response_size=row[8] or 0, content_type=row[9] or "",
            last_verified_at=as_utc(row[11]),
            last_verdict=row[12],
        )
        for row in s.execute(listed)
    ]
