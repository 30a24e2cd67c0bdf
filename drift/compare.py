"""Diffs against the store: recording vs recording, tape vs tape, and a tape's noise.

What the admin API and `wiretape diff` call; the comparing itself is changes.py's and
tapes.py's, the SQL the repository's. Functions take a Session and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session
from wiretape.storage import repository as repo
from wiretape.storage.matching import MatchRules, match_key

from . import noise
from .changes import ExchangeDiff, diff_exchanges, endpoint
from .tapes import TapeDiff, TapeItem, diff_tapes


def recording_diff(s: Session, a: int, b: int, strict: bool = False) -> ExchangeDiff:
    """Recording `a` against recording `b`. Unless `strict`, the noise of both recordings'
    tapes for `a`'s endpoint is left out: patterns given by hand, patterns audits found,
    and what differs between recordings of one key at that endpoint."""
    ra, rb = repo.get_recording(s, a), repo.get_recording(s, b)
    ea, eb = repo.row_exchange(ra), repo.row_exchange(rb)
    if strict:
        return diff_exchanges(ea, eb, strict=True)
    ep = endpoint(ea)
    patterns: set[str] = set()
    for r in {ra.tape_id: ra, rb.tape_id: rb}.values():
        manual, detected = repo.tape_noise(s, r.tape.name)
        same = [(x.match_key, repo.row_exchange(x)) for x in repo.endpoint_recordings(s, r)]
        found = noise.merge(detected, noise.recordings_noise(same))
        patterns.update(manual, found.get(ep, ()))
    return diff_exchanges(ea, eb, sorted(patterns))


def _items(s: Session, tape: str, rules: MatchRules | None) -> list[TapeItem]:
    """A tape's (match key, id, exchange), keyed under `rules` when given (in capture order
    within a key, which is what `seq` follows)."""
    items = repo.tape_items(s, tape)
    if rules is None:
        return items
    rekeyed = [(match_key(ex.request, rules), rid, ex) for _key, rid, ex in items]
    return sorted(rekeyed, key=lambda it: (it[0], it[2].captured_ns, it[1]))


def tape_diff(s: Session, a: str, b: str, strict: bool = False) -> TapeDiff:
    """Tape `a` (baseline) against tape `b`, paired by match key and seq. Unless `strict`,
    both tapes' noise is left out (by hand for the whole tape, found per endpoint).

    When the tapes' matching rules differ, `b` is keyed under `a`'s rules, so "the same
    request" means the same thing on both sides."""
    rules_a, rules_b = repo.tape_rules(s, a), repo.tape_rules(s, b)
    items_a = _items(s, a, None)
    items_b = _items(s, b, None if rules_a == rules_b else rules_a)
    if strict:
        return diff_tapes(items_a, items_b, strict=True, auto_noise=False)
    manual_a, detected_a = repo.tape_noise(s, a)
    manual_b, detected_b = repo.tape_noise(s, b)
    result = diff_tapes(items_a, items_b, [*manual_a, *manual_b])
    return result.with_endpoint_noise(noise.sorted_noise(noise.merge(detected_a, detected_b)))


def noise_view(s: Session, tape_name: str) -> dict[str, Any]:
    """A tape's noise: `manual` (given by hand, for every endpoint) and `detected` per
    endpoint (learned by audits from live answers, and found among the tape's recordings)."""
    manual, detected = repo.tape_noise(s, tape_name)
    items = [(key, ex) for key, _rid, ex in repo.tape_items(s, tape_name)]
    found = noise.merge(detected, noise.recordings_noise(items))
    return {"tape": tape_name, "manual": manual, "detected": noise.sorted_noise(found)}


def set_noise(
    s: Session,
    tape_name: str,
    manual: Sequence[str] | None,
    detected: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Replace the hand-written patterns (and, when given, the detected ones: an empty dict
    forgets what audits learned). Raises storage.paths.InvalidPath for a bad pattern."""
    checked_manual = noise.check_patterns(manual) if manual is not None else None
    checked_detected = (
        {ep: noise.check_patterns(ps) for ep, ps in detected.items()}
        if detected is not None else None
    )
    repo.set_tape_noise(s, tape_name, checked_manual, checked_detected)
    return noise_view(s, tape_name)

