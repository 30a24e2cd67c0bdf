"""All SQL lives here. Functions take a Session and never commit: callers own transactions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, load_only

from . import models as m
from .codec import decoded_body
from .errors import Conflict, NotFound
from .exchange import Exchange, Failure, FailureKind, Request, Response
from .matching import MatchRules, explain, match_key
from .models import utcnow


class TapeNotFound(NotFound):
    """No tape has that name."""


class RecordingNotFound(NotFound):
    """No recording has that id."""


# -- conversions between rows and exchanges ----------------------------------------------

def _headers_out(headers: Iterable[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in headers)


def _search_text(ex: Exchange, limit: int = 65536) -> str:
    parts = []
    for headers, body in (
        (ex.request.headers, ex.request.body),
        (ex.response.headers, ex.response.body) if ex.response else ((), b""),
    ):
        if body:
            text = decoded_body(headers, body)[:limit].decode("utf-8", "ignore")
            parts.append(text.replace("\x00", ""))
    return "\n".join(parts).lower()


def exchange_row(ex: Exchange, tape_id: int, key: str, seq: int) -> dict[str, Any]:
    req, resp = ex.request, ex.response
    ctype = (resp.header("content-type") if resp else None) or ""
    return {
        "tape_id": tape_id,
        "seq": seq,
        "match_key": key,
        "captured_ns": ex.captured_ns,
        "recorded_at": datetime.fromtimestamp(ex.captured_ns / 1e9, UTC)
        if ex.captured_ns
        else utcnow(),
        "duration_ms": float(ex.duration_ms),
        "method": req.method,
        "scheme": req.scheme,
        "host": req.host,
        "port": req.port,
        "path": req.path,
        "target": req.target,
        "url": req.url,
        "http_version": req.http_version,
        "request_headers": [list(h) for h in req.headers],
        "request_body": req.body,
        "status": resp.status if resp else None,
        "reason": (resp.reason if resp else "")[:255],
        "response_http_version": resp.http_version if resp else "HTTP/1.1",
        "response_headers": [list(h) for h in resp.headers] if resp else [],
        "response_body": resp.body if resp else b"",
        "failure_kind": str(ex.failure.kind) if ex.failure else None,
        "failure_message": ex.failure.message if ex.failure else "",
        "content_type": ctype[:255],
        "request_size": len(req.body),
        "response_size": len(resp.body) if resp else 0,
        "note": ex.note,
        "search_text": _search_text(ex),
    }


def row_request(r: m.Recording) -> Request:
    return Request(
        method=r.method,
        scheme=r.scheme,
        host=r.host,
        port=r.port,
        target=r.target,
        headers=_headers_out(r.request_headers),
        body=r.request_body or b"",
        http_version=r.http_version,
    )


def row_exchange(r: m.Recording) -> Exchange:
    resp = None
    if r.status is not None:
        resp = Response(
            status=r.status,
            headers=_headers_out(r.response_headers),
            body=r.response_body or b"",
            reason=r.reason,
            http_version=r.response_http_version,
        )
    failure = Failure(FailureKind(r.failure_kind), r.failure_message) if r.failure_kind else None
    return Exchange(
        request=row_request(r),
        response=resp,
        failure=failure,
        captured_ns=r.captured_ns,
        duration_ms=r.duration_ms,
        note=r.note,
    )


# -- tapes ---------------------------------------------------------------------------------

def get_tape(s: Session, name: str) -> m.Tape | None:
    return s.scalars(select(m.Tape).where(m.Tape.name == name)).one_or_none()


def require_tape(s: Session, name: str) -> m.Tape:
    tape = get_tape(s, name)
    if tape is None:
        raise TapeNotFound(f"tape {name!r} not found")
    return tape


def ensure_tape(s: Session, name: str, matching: dict[str, Any] | None = None) -> m.Tape:
    """Create the tape if it is missing; safe when several processes race to create it."""
    values = {
        "name": name,
        "created_at": utcnow(),
        "updated_at": utcnow(),
        "revision": 0,
        "matching": matching or {},
        "noise": [],
    }
    dialect = s.get_bind().dialect.name
    ins: Any
    if dialect == "postgresql":
        ins = postgresql.insert(m.Tape).values(**values).on_conflict_do_nothing(
            index_elements=["name"]
        )
    else:
        ins = sqlite.insert(m.Tape).values(**values).on_conflict_do_nothing(
            index_elements=["name"]
        )
    s.execute(ins)
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


def tape_revisions(s: Session) -> dict[str, int]:
    return {name: rev for name, rev in s.execute(select(m.Tape.name, m.Tape.revision))}


def empty_tape(s: Session, name: str) -> int:
    tape = get_tape(s, name)
    if tape is None:
        return 0
    touch_tape(s, tape.id)
    result = s.execute(delete(m.Recording).where(m.Recording.tape_id == tape.id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- recordings ----------------------------------------------------------------------------

def add_exchanges(
    s: Session, tape_name: str, exchanges: Sequence[Exchange], rules: MatchRules | None = None
) -> list[tuple[int, str, int]]:
    """Store exchanges in a tape; returns (id, match_key, seq) for each, in input order.

    `seq` follows capture order (captured_ns), not write order: a late write of an earlier
    capture shifts the later recordings of its key up by one.
    """
    if not exchanges:
        return []
    tape = ensure_tape(s, tape_name)
    touch_tape(s, tape.id)  # the per-tape write lock (see touch_tape)
    rules = rules if rules is not None else MatchRules.from_dict(tape.matching)
    keys = [match_key(ex.request, rules) for ex in exchanges]
    # Recordings captured no later than the batch's first capture precede all of it: only
    # their number per key matters (counted on the tape/key/captured_ns index). Later ones
    # (rare: another process, or a late write) are read to place the batch among them.
    # A key recorded thousands of times thus costs a count, not thousands of rows.
    first_ns = min(ex.captured_ns for ex in exchanges)
    before: dict[str, int] = {}
    existing: dict[str, list[tuple[int, int]]] = {}  # key -> [(captured_ns, id)] after first_ns
    R = m.Recording
    unique = sorted(set(keys))
    for i in range(0, len(unique), 500):
        chunk = unique[i : i + 500]
        of_chunk = (R.tape_id == tape.id, R.match_key.in_(chunk))
        for key, n in s.execute(
            select(R.match_key, func.count()).where(*of_chunk, R.captured_ns <= first_ns)
            .group_by(R.match_key)
        ):
            before[key] = n
        for key, cns, rid in s.execute(
            select(R.match_key, R.captured_ns, R.id).where(*of_chunk, R.captured_ns > first_ns)
        ):
            existing.setdefault(key, []).append((cns, rid))
    order = sorted(range(len(exchanges)), key=lambda i: exchanges[i].captured_ns)
    rows: list[dict[str, Any]] = [{} for _ in exchanges]
    shift: dict[int, int] = {}
    for i in order:
        ex, key = exchanges[i], keys[i]
        prior = existing.setdefault(key, [])
        seq = before.get(key, 0) + sum(1 for cns, _ in prior if cns <= ex.captured_ns)
        for cns, rid in prior:
            if cns > ex.captured_ns and rid > 0:
                shift[rid] = shift.get(rid, 0) + 1
        rows[i] = exchange_row(ex, tape.id, key, seq)
        prior.append((ex.captured_ns, -1))
    for rid, by in shift.items():
        s.execute(update(m.Recording).where(m.Recording.id == rid).values(seq=m.Recording.seq + by))
    ids = list(
        s.scalars(
            m.Recording.__table__.insert().returning(  # type: ignore[attr-defined]
                m.Recording.__table__.c.id, sort_by_parameter_order=True
            ),
            rows,
        )
    )
    return [(ids[i], keys[i], rows[i]["seq"]) for i in range(len(exchanges))]


def get_recording(s: Session, rid: int) -> m.Recording:
    row = s.get(m.Recording, rid)
    if row is None:
        raise RecordingNotFound(f"recording {rid} not found")
    return row


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
    # the proxy's encoded form of the headers, kept once it has been built
    wire_headers: tuple[tuple[bytes, bytes], ...] | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Decoded on each call: the proxy keeps only the encoded form (`wire_headers`)."""
        h = self.raw_headers
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
            c.failure_message, c.duration_ms,
        )
        .where(c.tape_id == tape.id)
    )  # unordered: ReplayIndex puts each key's recordings in seq order
    entry = ReplayEntry  # every column but status and failure_kind is NOT NULL
    return [entry(*row) for row in s.connection().execute(stmt)]


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


def closest(
    s: Session, tape_name: str, req: Request, rules: MatchRules, n: int = 3
) -> list[dict[str, Any]]:
    """The recordings of a tape nearest to a request that missed, with what differs."""
    tape = get_tape(s, tape_name)
    if tape is None:
        return []
    R = m.Recording
    # only what `explain` reads: the responses (often the bulk of a row) stay in the table
    base = select(R).options(load_only(
        R.id, R.url, R.match_key, R.method, R.scheme, R.host, R.port, R.target,
        R.request_headers, R.request_body, R.http_version,
    )).where(R.tape_id == tape.id)
    candidates: list[m.Recording] = []
    seen_keys: set[str] = set()
    for stmt in (
        base.where(R.path == req.path, R.method == req.method),
        base.where(R.path == req.path),
        base.where(R.host == req.host),
        base,
    ):
        for r in s.scalars(stmt.order_by(R.id).limit(200)):
            if r.match_key not in seen_keys:
                seen_keys.add(r.match_key)
                candidates.append(r)
        if len(candidates) >= n:
            break
    scored = []
    for r in candidates:
        diffs = explain(req, row_request(r), rules)
        scored.append((len(diffs), r.id, {"id": r.id, "url": r.url, "differences": diffs}))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [d for _, _, d in scored[:n]]


# -- runtime state and misses --------------------------------------------------------------

STATE_ID = 1


def get_state(s: Session) -> m.RuntimeState | None:
    return s.get(m.RuntimeState, STATE_ID)


def init_state(s: Session, mode: str, tape: str, on_miss: str) -> m.RuntimeState:
    """Set the shared mode at process start (the command line is what the user asked for)."""
    state = get_state(s)
    if state is None:
        dialect = s.get_bind().dialect.name
        values = {
            "id": STATE_ID, "mode": mode, "tape": tape, "on_miss": on_miss,
            "replay_generation": 0, "updated_at": utcnow(),
        }
        ins: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
            m.RuntimeState
        ).values(**values)
        s.execute(ins.on_conflict_do_nothing(index_elements=["id"]))
    return set_state(s, mode=mode, tape=tape, on_miss=on_miss)


def set_state(
    s: Session, mode: str | None = None, tape: str | None = None, on_miss: str | None = None
) -> m.RuntimeState:
    values: dict[str, Any] = {"updated_at": utcnow()}
    if mode is not None:
        values["mode"] = mode
    if tape is not None:
        values["tape"] = tape
    if on_miss is not None:
        values["on_miss"] = on_miss
    s.execute(update(m.RuntimeState).where(m.RuntimeState.id == STATE_ID).values(**values))
    state = get_state(s)
    assert state is not None
    s.refresh(state)
    return state


def reset_sequences(s: Session) -> int:
    s.execute(
        update(m.RuntimeState)
        .where(m.RuntimeState.id == STATE_ID)
        .values(replay_generation=m.RuntimeState.replay_generation + 1, updated_at=utcnow())
    )
    state = get_state(s)
    if state is None:
        return 0
    s.refresh(state)
    return state.replay_generation


def add_miss(s: Session, tape: str, method: str, url: str, closest: list[dict[str, Any]]) -> int:
    miss = m.Miss(tape=tape, method=method, url=url, closest=closest, at=utcnow())
    s.add(miss)
    s.flush()
    return miss.id


def list_misses(s: Session, tape: str | None = None, limit: int = 100) -> list[m.Miss]:
    stmt = select(m.Miss).order_by(m.Miss.id.desc()).limit(limit)
    if tape is not None:
        stmt = stmt.where(m.Miss.tape == tape)
    return list(s.scalars(stmt))


def count_recordings(s: Session, tape_name: str) -> int:
    return int(
        s.scalar(
            select(func.count(m.Recording.id))
            .join(m.Tape, m.Tape.id == m.Recording.tape_id)
            .where(m.Tape.name == tape_name)
        )
        or 0
    )


# -- the admin API: listing, editing and moving recordings and tapes ---------------------

class TapeExists(Conflict):
    """A tape with that name already exists (the API answers 409)."""


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


def as_utc(value: datetime) -> datetime:
    """Aware UTC (SQLite hands back the stored UTC wall time without a zone)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)


def _db_time(s: Session, value: datetime) -> datetime:
    value = as_utc(value)
    # SQLite stores the UTC wall time without an offset; compare like with like
    return value.replace(tzinfo=None) if s.get_bind().dialect.name == "sqlite" else value


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
    if (s.get_bind().dialect.name == "sqlite" and len(needle) >= 3
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
class _Where:
    conds: list[Any]
    tape: m.Tape | None
    # an index on a selective filter finds its few matches: sort those rather than walk
    # the id index (see _FEW)
    narrow: bool = False


def _conditions(s: Session, f: RecordingFilter) -> _Where:
    R = m.Recording
    sqlite_db = s.get_bind().dialect.name == "sqlite"
    w = _Where([], None)
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
        span = ([R.recorded_at >= _db_time(s, f.since)] if f.since is not None else []) + (
            [R.recorded_at < _db_time(s, f.until)] if f.until is not None else [])
        if w.tape is not None and _few(s, select(R.id).where(R.tape_id == w.tape.id, *span)):
            w.narrow = True  # a short stretch of time: the (tape_id, recorded_at) index
        elif sqlite_db and w.tape is not None:
            # a long one: keep SQLite's planner off the time index, walk ids instead
            when = func.coalesce(R.recorded_at, R.recorded_at)
            span = ([when >= _db_time(s, f.since)] if f.since is not None else []) + (
                [when < _db_time(s, f.until)] if f.until is not None else [])
        w.conds += span
    return w


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
    w = _conditions(s, f)
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
            last_verified_at=as_utc(row[11]) if row[11] is not None else None,
            last_verdict=row[12],
        )
        for row in s.execute(listed)
    ]


def _renumber(s: Session, tape_id: int, keys: Iterable[str]) -> None:
    """Give the recordings of these keys `seq` 0, 1, 2… again in capture order."""
    R = m.Recording
    keys = sorted(set(keys))
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        counters: dict[str, int] = {}
        for rid, key, seq in s.execute(
            select(R.id, R.match_key, R.seq)
            .where(R.tape_id == tape_id, R.match_key.in_(chunk))
            .order_by(R.match_key, R.captured_ns, R.id)
        ).all():
            want = counters.get(key, 0)
            counters[key] = want + 1
            if seq != want:
                s.execute(update(R).where(R.id == rid).values(seq=want))


def delete_recording(s: Session, rid: int) -> None:
    row = get_recording(s, rid)
    tape_id, key = row.tape_id, row.match_key
    touch_tape(s, tape_id)
    s.execute(delete(m.Recording).where(m.Recording.id == rid))
    _renumber(s, tape_id, [key])


def delete_recordings(s: Session, f: RecordingFilter) -> int:
    """Delete every recording the filter selects; returns how many."""
    R = m.Recording
    conds = _conditions(s, f).conds
    affected: dict[int, set[str]] = {}
    for tape_id, key in s.execute(select(R.tape_id, R.match_key).where(*conds).distinct()):
        affected.setdefault(tape_id, set()).add(key)
    if not affected:
        return 0
    for tape_id in sorted(affected):
        touch_tape(s, tape_id)
    result = s.execute(delete(R).where(*conds))
    for tape_id, keys in affected.items():
        _renumber(s, tape_id, keys)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def update_recording(
    s: Session, rid: int, exchange: Exchange, note: str | None = None
) -> m.Recording:
    """Store an edited response (the request, and so the match key, stays as recorded)."""
    row = get_recording(s, rid)
    touch_tape(s, row.tape_id)
    values = exchange_row(exchange, row.tape_id, row.match_key, row.seq)
    for name in ("status", "reason", "response_http_version", "response_headers",
                 "response_body", "failure_kind", "failure_message", "content_type",
                 "response_size", "search_text"):
        setattr(row, name, values[name])
    if note is not None:
        row.note = note
    s.flush()
    return row


# -- tapes -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TapeSummary:
    name: str
    recordings: int
    created_at: datetime
    updated_at: datetime


def _summary(tape: m.Tape, count: int) -> TapeSummary:
    return TapeSummary(tape.name, count, as_utc(tape.created_at), as_utc(tape.updated_at))


def list_tapes(s: Session) -> list[TapeSummary]:
    counts = select(m.Recording.tape_id, func.count(m.Recording.id).label("n")).group_by(
        m.Recording.tape_id
    ).subquery()
    stmt = (
        select(m.Tape, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.tape_id == m.Tape.id)
        .order_by(m.Tape.name)
    )
    return [_summary(tape, int(n)) for tape, n in s.execute(stmt)]


def tape_summary(s: Session, name: str) -> TapeSummary:
    tape = require_tape(s, name)
    n = s.scalar(select(func.count(m.Recording.id)).where(m.Recording.tape_id == tape.id))
    return _summary(tape, int(n or 0))


def create_tape(s: Session, name: str, matching: dict[str, Any] | None = None) -> m.Tape:
    if get_tape(s, name) is not None:
        raise TapeExists(f"tape {name!r} already exists")
    rules = MatchRules.from_dict(matching)  # InvalidRule for a bad rule
    return ensure_tape(s, name, rules.to_dict() if matching else {})


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
            select(literal(dst.id), *cols).where(R.tape_id == src.id).order_by(R.id),
        )
    )
    s.flush()
    s.refresh(dst)
    return dst


def set_matching(s: Session, name: str, rules: MatchRules) -> int:
    """Store a tape's matching rules and re-key its recordings; returns how many changed."""
    tape = require_tape(s, name)
    tape.matching = rules.to_dict()
    s.flush()
    return recompute_keys(s, name)


def import_exchanges(
    s: Session,
    tape_name: str,
    exchanges: Sequence[Exchange],
    replace: bool = False,
    matching: dict[str, Any] | None = None,
) -> list[int]:
    """Add exchanges to a tape in the caller's transaction (all or nothing). With `replace`
    the tape is emptied first; `matching` rules are applied to a new or replaced tape."""
    existed = get_tape(s, tape_name) is not None
    tape = ensure_tape(s, tape_name)
    touch_tape(s, tape.id)
    if replace:
        empty_tape(s, tape_name)
    if matching is not None and (replace or not existed):
        rules = MatchRules.from_dict(matching)
        if rules.to_dict() != MatchRules.from_dict(tape.matching).to_dict():
            tape.matching = rules.to_dict()
            s.flush()
            recompute_keys(s, tape_name)
    return [rid for rid, _key, _seq in add_exchanges(s, tape_name, exchanges)]


def tape_recordings(s: Session, name: str, batch: int = 500) -> Iterable[m.Recording]:
    """Every recording of a tape in capture order, loaded a batch at a time."""
    tape = require_tape(s, name)
    R = m.Recording
    last: tuple[int, int] | None = None
    while True:
        stmt = select(R).where(R.tape_id == tape.id)
        if last is not None:
            stmt = stmt.where(
                (R.captured_ns > last[0]) | ((R.captured_ns == last[0]) & (R.id > last[1]))
            )
        rows = s.scalars(stmt.order_by(R.captured_ns, R.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = (rows[-1].captured_ns, rows[-1].id)
        for r in rows:
            s.expunge(r)


# -- drift audits, noise and freshness -----------------------------------------------------

class AuditNotFound(NotFound):
    """No audit has that id."""


def audit_recordings(s: Session, tape_name: str) -> list[m.Recording]:
    """Every recording of a tape in capture order (the order an audit re-sends them in)."""
    tape = require_tape(s, tape_name)
    R = m.Recording
    return list(s.scalars(select(R).where(R.tape_id == tape.id).order_by(R.captured_ns, R.id)))


def tape_items(s: Session, tape_name: str) -> list[tuple[str, int, Exchange]]:
    """(match key, id, exchange) of every recording of a tape, each key's in `seq` order:
    what `diff.diff_tapes` pairs."""
    tape = require_tape(s, tape_name)
    R = m.Recording
    rows = s.scalars(
        select(R).where(R.tape_id == tape.id).order_by(R.match_key, R.seq, R.captured_ns, R.id)
    )
    return [(r.match_key, r.id, row_exchange(r)) for r in rows]


def endpoint_recordings(s: Session, r: m.Recording) -> list[m.Recording]:
    """The recordings of `r`'s tape with the same method, host, port and path (its endpoint),
    each key's in `seq` order."""
    R = m.Recording
    return list(
        s.scalars(
            select(R)
            .where(R.tape_id == r.tape_id, R.method == r.method, R.host == r.host,
                   R.port == r.port, R.path == r.path)
            .order_by(R.match_key, R.seq, R.captured_ns, R.id)
        )
    )


def tape_noise(s: Session, tape_name: str) -> tuple[list[str], dict[str, list[str]]]:
    """(patterns given by hand, {endpoint: patterns detected by audits}) of a tape."""
    tape = require_tape(s, tape_name)
    manual = [str(p) for p in (tape.noise or []) if isinstance(p, str)]
    detected = {str(ep): [str(p) for p in ps] for ep, ps in (tape.noise_detected or {}).items()}
    return manual, detected


def set_tape_noise(
    s: Session,
    tape_name: str,
    manual: Sequence[str] | None = None,
    detected: Mapping[str, Sequence[str]] | None = None,
) -> m.Tape:
    """Replace a tape's hand-written noise patterns and/or its detected ones."""
    tape = require_tape(s, tape_name)
    if manual is not None:
        tape.noise = sorted(set(manual))
    if detected is not None:
        tape.noise_detected = {ep: sorted(set(ps)) for ep, ps in sorted(detected.items()) if ps}
    s.flush()
    return tape


def add_detected_noise(s: Session, tape_id: int, found: Mapping[str, Iterable[str]]) -> None:
    """Merge noise patterns found by an audit into the tape's detected noise."""
    if not any(found.values()):
        return
    tape = s.get(m.Tape, tape_id, with_for_update=s.get_bind().dialect.name == "postgresql")
    if tape is None:
        return
    merged = {ep: set(ps) for ep, ps in (tape.noise_detected or {}).items()}
    for ep, ps in found.items():
        merged.setdefault(ep, set()).update(ps)
    # a new object: SQLAlchemy does not see changes made inside a JSON value
    tape.noise_detected = {ep: sorted(ps) for ep, ps in sorted(merged.items()) if ps}
    s.flush()


def create_audit(
    s: Session,
    tape_name: str,
    *,
    trigger: str,
    fail_on: str,
    strict: bool,
    options: dict[str, Any],
) -> m.Audit:
    tape = require_tape(s, tape_name)
    audit = m.Audit(tape_id=tape.id, status="running", trigger=trigger, started_at=utcnow(),
                    fail_on=fail_on, strict=strict, options=options, summary={}, error="")
    s.add(audit)
    s.flush()
    return audit


def add_audit_results(s: Session, audit_id: int, results: Sequence[dict[str, Any]]) -> None:
    """Store an audit's results and each audited recording's freshness (last verified,
    last verdict). Results name their recording in `recording_id`."""
    if not results:
        return
    s.execute(m.AuditResult.__table__.insert(),  # type: ignore[attr-defined]
              [{**r, "audit_id": audit_id} for r in results])
    live = {r["recording_id"] for r in results if r.get("recording_id") is not None}
    # recordings deleted while the audit ran are skipped, not updated into an error
    existing = set(s.scalars(select(m.Recording.id).where(m.Recording.id.in_(live)))) if live \
        else set()
    fresh = [
        {"id": r["recording_id"], "last_verified_at": r["checked_at"],
         "last_verdict": "refreshed" if r.get("refreshed") else r["verdict"]}
        for r in results if r.get("recording_id") in existing
    ]
    if fresh:
        s.execute(update(m.Recording), fresh)


def finish_audit(
    s: Session, audit_id: int, status: str, summary: dict[str, Any], error: str = ""
) -> None:
    s.execute(
        update(m.Audit)
        .where(m.Audit.id == audit_id)
        .values(status=status, summary=summary, error=error[:2000], finished_at=utcnow())
    )


def get_audit(s: Session, audit_id: int) -> tuple[m.Audit, str]:
    """The audit and the name of its tape."""
    row = s.execute(
        select(m.Audit, m.Tape.name).join(m.Tape, m.Tape.id == m.Audit.tape_id)
        .where(m.Audit.id == audit_id)
    ).one_or_none()
    if row is None:
        raise AuditNotFound(f"audit {audit_id} not found")
    return row[0], row[1]


def audit_results(s: Session, audit_id: int) -> list[m.AuditResult]:
    return list(s.scalars(select(m.AuditResult).where(m.AuditResult.audit_id == audit_id)
                          .order_by(m.AuditResult.id)))


def list_audits(s: Session, tape_name: str, limit: int = 50) -> list[m.Audit]:
    """A tape's audits, newest first."""
    tape = require_tape(s, tape_name)
    return list(s.scalars(select(m.Audit).where(m.Audit.tape_id == tape.id)
                          .order_by(m.Audit.id.desc()).limit(limit)))


def last_audit_started(s: Session, tape_name: str) -> datetime | None:
    """When the tape's newest audit started (None if never audited)."""
    return s.scalar(
        select(func.max(m.Audit.started_at)).join(m.Tape, m.Tape.id == m.Audit.tape_id)
        .where(m.Tape.name == tape_name)
    )


def refresh_recording(s: Session, r: m.Recording, ex: Exchange) -> None:
    """Re-record a recording in place: the live response (already redacted) replaces the
    recorded one; the request, id, key, seq and capture time stay, so history and replay
    order hold. Bumps the tape's revision so replay indexes reload."""
    touch_tape(s, r.tape_id)
    row = exchange_row(ex.with_(request=row_request(r)), r.tape_id, r.match_key, r.seq)
    values = {k: row[k] for k in (
        "duration_ms", "status", "reason", "response_http_version", "response_headers",
        "response_body", "failure_kind", "failure_message", "content_type", "response_size",
        "search_text")}
    s.execute(update(m.Recording).where(m.Recording.id == r.id)
              .values(**values, recorded_at=utcnow()))


def recording_history(s: Session, rid: int, limit: int = 50) -> list[tuple[m.AuditResult, str]]:
    """What each audit found for one recording, newest first, with the audit's status."""
    get_recording(s, rid)
    return [
        (res, status)
        for res, status in s.execute(
            select(m.AuditResult, m.Audit.status)
            .join(m.Audit, m.Audit.id == m.AuditResult.audit_id)
            .where(m.AuditResult.recording_id == rid)
            .order_by(m.AuditResult.id.desc()).limit(limit)
        )
    ]


def tape_freshness(s: Session, tape_name: str) -> list[dict[str, Any]]:
    """Per recording of a tape: when an audit last verified it, its last verdict, and when
    it last matched the live upstream (verdict ok). Least recently verified first."""
    tape = require_tape(s, tape_name)
    R, A = m.Recording, m.AuditResult
    matched = {
        rid: at
        for rid, at in s.execute(
            select(A.recording_id, func.max(A.checked_at))
            .join(R, R.id == A.recording_id)
            .where(R.tape_id == tape.id, A.verdict == "ok")
            .group_by(A.recording_id)
        )
    }
    rows = s.execute(
        select(R.id, R.method, R.url, R.status, R.last_verified_at, R.last_verdict)
        .where(R.tape_id == tape.id)
        .order_by(R.last_verified_at.is_not(None), R.last_verified_at, R.id)
    )
    return [
        {"id": rid, "method": method, "url": url, "status": status,
         "last_verified_at": verified, "last_verdict": verdict,
         "last_matched_at": matched.get(rid)}
        for rid, method, url, status, verified, verdict in rows
    ]


def latest_audit_summaries(s: Session) -> list[tuple[str, dict[str, Any], datetime | None]]:
    """(tape name, summary, finished at) of each tape's newest finished audit (/metrics)."""
    newest = (
        select(func.max(m.Audit.id)).where(m.Audit.status == "done")
        .group_by(m.Audit.tape_id).scalar_subquery()
    )
    return [
        (name, summary or {}, finished)
        for name, summary, finished in s.execute(
            select(m.Tape.name, m.Audit.summary, m.Audit.finished_at)
            .join(m.Tape, m.Tape.id == m.Audit.tape_id)
            .where(m.Audit.id.in_(newest)).order_by(m.Tape.name)
        )
    ]
