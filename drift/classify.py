"""Drift classification: how much a live answer's differences from its recording matter.

Classes, most severe first: `breaking` (a field, header or body removed, a type changed,
the status class changed, the live request failed where the recording has an answer),
`additive` (a new field, header or body), `value` (same shape, other value: also list items
coming and going, text lines, binary digests, same-class status codes), `latency` (live
slower than twice the recorded duration). Latency is the lowest: a slow answer is still a
right answer, so fail-on `value` also fails on value drift but fail-on `latency` is
needed to fail on slowness alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wiretape.storage.exchange import Exchange

from .changes import Change, ChangeKind, Compared, diff_exchanges, short_value
from .kinds import DriftClass, parse_drift_class
from .patterns import NoiseMatcher


@dataclass(frozen=True, slots=True)
class DriftFinding:
    drift_class: DriftClass
    path: str
    old: Any
    new: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"class": str(self.drift_class), "path": self.path, "old": self.old,
                "new": self.new, "message": self.message}


def json_type(value: Any) -> str:
    """The JSON name of a value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _media_type(value: Any) -> str:
    return str(value or "").split(";", 1)[0].strip().lower()


def _body_kind(value: Any) -> str:
    if isinstance(value, str) and value.startswith("sha256:"):
        return "binary"
    return "text" if isinstance(value, str) else "JSON"


def _finding(cls: DriftClass, c: Change, message: str) -> DriftFinding:
    return DriftFinding(cls, c.path, c.old, c.new, message)


def _classify_change(c: Change, recorded: Exchange, live: Exchange) -> DriftFinding | None:
    B, A, V = DriftClass.BREAKING, DriftClass.ADDITIVE, DriftClass.VALUE
    what = c.compared_as
    if what is Compared.STATUS:
        if c.kind is not ChangeKind.VALUE_CHANGED:
            return None  # the other half of a failure change, reported with it
        if c.old // 100 != c.new // 100:
            return _finding(B, c, f"status class changed: {c.old} -> {c.new}")
        return _finding(V, c, f"status changed: {c.old} -> {c.new}")
    if what is Compared.FAILURE:
        if c.kind is ChangeKind.ADDED:
            status = recorded.response.status if recorded.response else "?"
            return _finding(B, c, f"live request failed ({c.new['kind']}: {c.new['message']}) "
                                  f"where the recording has status {status}")
        if c.kind is ChangeKind.REMOVED:
            status = live.response.status if live.response else "?"
            return _finding(V, c, f"live answered {status} where the recording has a failure "
                                  f"({c.old['kind']})")
        return _finding(V, c, f"failure {c.tokens[-1]} changed: "
                              f"{short_value(c.old)} -> {short_value(c.new)}")
    if what is Compared.HEADER:
        name = c.tokens[-1]
        if c.kind is ChangeKind.ADDED:
            return _finding(A, c, f"header {name} added: {short_value(c.new)}")
        if c.kind is ChangeKind.REMOVED:
            return _finding(B, c, f"header {name} removed (was {short_value(c.old)})")
        if name == "content-type" and _media_type(c.old) != _media_type(c.new):
            return _finding(B, c, f"content type changed: {c.old} -> {c.new}")
        return _finding(V, c, f"header {name} changed: "
                              f"{short_value(c.old)} -> {short_value(c.new)}")
    if what is Compared.JSON:
        item = isinstance(c.tokens[-1], int)  # a list item, not a field
        if c.kind is ChangeKind.ADDED:
            if item:
                return _finding(V, c, f"list item {c.path} added")
            return _finding(A, c, f"field {c.path} added ({json_type(c.new)})")
        if c.kind is ChangeKind.REMOVED:
            if item:
                return _finding(V, c, f"list item {c.path} removed")
            return _finding(B, c, f"field {c.path} removed (was {short_value(c.old)})")
        if c.kind is ChangeKind.TYPE_CHANGED:
            types = f"{json_type(c.old)} -> {json_type(c.new)}"
            # A recording with null taught its consumers to expect null, so a value there
            # is a value change; a value turning into null can break a consumer.
            if c.old is None:
                return _finding(V, c, f"{c.path} is no longer null ({types})")
            return _finding(B, c, f"type of {c.path} changed: {types}")
        return _finding(V, c, f"{c.path} changed: {short_value(c.old)} -> {short_value(c.new)}")
    if what is Compared.BODY:
        if c.kind is ChangeKind.ADDED:
            return _finding(A, c, "body added where the recording has none")
        if c.kind is ChangeKind.REMOVED:
            return _finding(B, c, "body removed: live answer is empty")
        return _finding(B, c, f"body changed from {_body_kind(c.old)} to {_body_kind(c.new)}")
    if what is Compared.TEXT:
        return _finding(V, c, f"line {c.tokens[-1]} {c.kind.replace('_', ' ')}")
    if what is Compared.DIGEST:
        return _finding(V, c, "binary body changed")
    return _finding(V, c, f"{c.path} {c.kind.replace('_', ' ')}")


def classify(
    recorded: Exchange,
    live: Exchange,
    noise: Iterable[str] | NoiseMatcher = (),
    strict: bool = False,
    *,
    latency_factor: float = 2.0,
) -> list[DriftFinding]:
    """Each difference of the live answer from the recording, classified; most severe
    first, then by path. Noise is left out unless `strict`."""
    diff = diff_exchanges(recorded, live, noise, strict)
    found = [f for c in diff.changes if (f := _classify_change(c, recorded, live)) is not None]
    answered = live.response is not None and live.failure is None
    if answered and 0 < recorded.duration_ms and live.duration_ms > latency_factor * (
        recorded.duration_ms
    ):
        ratio = live.duration_ms / recorded.duration_ms
        found.append(DriftFinding(
            DriftClass.LATENCY, "duration_ms", recorded.duration_ms, live.duration_ms,
            f"live took {live.duration_ms:.0f} ms, {ratio:.1f}x the recorded "
            f"{recorded.duration_ms:.0f} ms",
        ))
    # stable sort: within a class the diff's path order stays
    return sorted(found, key=lambda f: -f.drift_class.rank)


def worst(findings: Iterable[DriftFinding]) -> DriftClass | None:
    """The most severe class found, or None when there is no finding."""
    return max((f.drift_class for f in findings), key=lambda c: c.rank, default=None)


def at_or_above(findings: Iterable[DriftFinding], fail_on: str | DriftClass) -> bool:
    """Whether any finding is at least as severe as `fail_on` (the audit's exit 1)."""
    threshold = parse_drift_class(fail_on).rank
    return any(f.drift_class.rank >= threshold for f in findings)
