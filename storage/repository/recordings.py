"""Recordings: stored, loaded in order, found, edited, deleted; `seq` kept in capture order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from .. import models as m
from ..errors import NotFound
from ..exchange import Exchange
from ..matching import MatchRules, match_key
from ..times import utcnow
from . import bodies
from .listing import RecordingFilter, filter_conditions
from .rows import RESPONSE_COLUMNS, exchange_row, row_exchange, row_request
from .sql import chunks
from .tapes import empty_tape, ensure_tape, get_tape, require_tape, set_matching, touch_tape

R = m.Recording
type Order = tuple[InstrumentedAttribute[Any], ...]


class RecordingNotFound(NotFound):
    """No recording has that id."""


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
    for chunk in chunks(sorted(set(keys))):
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
        s.execute(update(R).where(R.id == rid).values(seq=R.seq + by))
    ids = list(
        s.scalars(
            m.Recording.__table__.insert().returning(  # type: ignore[attr-defined]
                m.Recording.__table__.c.id, sort_by_parameter_order=True
            ),
            rows,
        )
    )
    for rid, ex in zip(ids, exchanges, strict=True):
        _store_big_body(s, rid, ex)
    return [(ids[i], keys[i], rows[i]["seq"]) for i in range(len(exchanges))]


def _store_big_body(s: Session, rid: int, ex: Exchange) -> None:
    """The parts of a big body that is being captured (one that came from the store keeps
    the parts it has)."""
    big = ex.response.big if ex.response is not None else None
    if big is not None and big.source is not None:
        bodies.delete_body_parts(s, rid)
        bodies.add_body_parts(s, rid, big.source.parts())


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
        set_matching(s, tape_name, MatchRules.from_dict(matching))
    return [rid for rid, _key, _seq in add_exchanges(s, tape_name, exchanges)]


def get_recording(s: Session, rid: int) -> m.Recording:
    row = s.get(m.Recording, rid)
    if row is None:
        raise RecordingNotFound(f"recording {rid} not found")
    return row


def count_recordings(s: Session, tape_name: str) -> int:
    return int(
        s.scalar(
            select(func.count(m.Recording.id))
            .join(m.Tape, m.Tape.id == m.Recording.tape_id)
            .where(m.Tape.name == tape_name)
        )
        or 0
    )


# -- loading a tape in order --------------------------------------------------------------

BY_CAPTURE: Order = (R.captured_ns, R.id)  # the order `seq` follows, and audits re-send in
BY_KEY: Order = (R.match_key, R.seq, R.captured_ns, R.id)  # each key's recordings in seq order


def recordings(s: Session, tape_id: int, *where: Any, order: Order = BY_CAPTURE,
               batch: int = 500) -> Iterator[m.Recording]:
    """The recordings of a tape (those matching `where`) in `order`, loaded a batch at a
    time, so a tape of any size streams. The session holds loaded rows weakly: a batch the
    caller has let go of is freed."""
    last: tuple[Any, ...] | None = None
    while True:
        stmt = select(R).where(R.tape_id == tape_id, *where)
        if last is not None:
            stmt = stmt.where(tuple_(*order) > tuple_(*last))
        rows = s.scalars(stmt.order_by(*order).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = tuple(getattr(rows[-1], col.key) for col in order)


def tape_recordings(s: Session, name: str, order: Order = BY_CAPTURE) -> Iterator[m.Recording]:
    """Every recording of a tape in `order` (raises TapeNotFound at once)."""
    return recordings(s, require_tape(s, name).id, order=order)


def tape_items(s: Session, tape_name: str) -> list[tuple[str, int, Exchange]]:
    """(match key, id, exchange) of every recording of a tape, each key's in `seq` order:
    what `drift.tapes.diff_tapes` pairs."""
    return [(r.match_key, r.id, row_exchange(r))
            for r in tape_recordings(s, tape_name, order=BY_KEY)]


def endpoint_recordings(s: Session, r: m.Recording) -> list[m.Recording]:
    """The recordings of `r`'s tape with the same method, host, port and path (its endpoint),
    each key's in `seq` order."""
    return list(recordings(s, r.tape_id, R.method == r.method, R.host == r.host,
                           R.port == r.port, R.path == r.path, order=BY_KEY))


# -- changing and deleting ----------------------------------------------------------------

def replace_response(s: Session, row: m.Recording, ex: Exchange, *, note: str | None = None,
                     rerecorded: bool = False) -> m.Recording:
    """Store a new response (or failure) for a recording: edited by hand, or `rerecorded`
    from a live answer (its duration and recording time then change too). The request, id,
    key, seq and capture time stay, so replay order and history hold."""
    touch_tape(s, row.tape_id)
    values = exchange_row(ex.with_(request=row_request(row)), row.tape_id, row.match_key,
                          row.seq)
    for name in RESPONSE_COLUMNS:
        setattr(row, name, values[name])
    if values["response_external"] is None:
        bodies.delete_body_parts(s, row.id)  # the body is inline now
    else:
        _store_big_body(s, row.id, ex)
    if rerecorded:
        row.duration_ms, row.recorded_at = values["duration_ms"], utcnow()
    if note is not None:
        row.note = note
    s.flush()
    return row


def _renumber(s: Session, tape_id: int, keys: Iterable[str]) -> None:
    """Give the recordings of these keys `seq` 0, 1, 2… again in capture order."""
    for chunk in chunks(sorted(set(keys))):
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
    conds = filter_conditions(s, f).conds
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
