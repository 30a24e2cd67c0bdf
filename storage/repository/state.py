"""The shared runtime state (mode, tape, on-miss, sequence resets) and the misses journal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, load_only

from .. import models as m
from ..exchange import Request
from ..explain import explain
from ..matching import MatchRules, match_key
from ..times import utcnow
from .rows import response_headers, row_request
from .sql import insert_unless_present
from .tapes import get_tape

STATE_ID = 1


def get_state(s: Session) -> m.RuntimeState | None:
    return s.get(m.RuntimeState, STATE_ID)


def init_state(s: Session, mode: str, tape: str, on_miss: str) -> m.RuntimeState:
    """Set the shared mode at process start (the command line is what the user asked for)."""
    if get_state(s) is None:
        insert_unless_present(s, m.RuntimeState, {
            "id": STATE_ID, "mode": mode, "tape": tape, "on_miss": on_miss,
            "replay_generation": 0, "updated_at": utcnow(),
        }, key="id")
    return set_state(s, mode=mode, tape=tape, on_miss=on_miss)


def _update_state(s: Session, **values: Any) -> m.RuntimeState | None:
    s.execute(update(m.RuntimeState).where(m.RuntimeState.id == STATE_ID)
              .values(updated_at=utcnow(), **values))
    state = get_state(s)
    if state is not None:
        s.refresh(state)
    return state


def set_state(
    s: Session, mode: str | None = None, tape: str | None = None, on_miss: str | None = None
) -> m.RuntimeState:
    """Change what is given; what is None stays."""
    given = {"mode": mode, "tape": tape, "on_miss": on_miss}
    state = _update_state(s, **{k: v for k, v in given.items() if v is not None})
    assert state is not None
    return state


def reset_sequences(s: Session) -> int:
    """Every process starts its replay sequences over; returns the new generation."""
    state = _update_state(s, replay_generation=m.RuntimeState.replay_generation + 1)
    return state.replay_generation if state is not None else 0


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
        R.request_headers, R.request_body, R.http_version, R.response_headers,
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
    # a recording of the request's own key comes first: what kept it from being served
    # (content negotiation, a sequence run out) is the nearest miss there is
    own = match_key(req, rules)
    scored = []
    for r in candidates:
        diffs = explain(req, row_request(r), rules,
                        response_headers=response_headers(r.response_headers))
        rank = (r.match_key != own, len(diffs), r.id)
        scored.append((rank, {"id": r.id, "url": r.url, "differences": diffs}))
    scored.sort(key=lambda t: t[0])
    return [d for _, d in scored[:n]]
