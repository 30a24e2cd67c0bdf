"""Tape against tape: recordings paired by match key and seq, latency and error rates.

Pure code, like changes.py: the items come from the store through drift/compare.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wiretape.storage.exchange import Exchange

from .changes import ExchangeDiff, diff_exchanges, endpoint, failure_of
from .noise import groups_noise, merge, sorted_noise
from .patterns import NoiseMatcher

type TapeItem = tuple[str, int, Exchange]  # (match key, recording id, exchange)


def status_class(ex: Exchange) -> str:
    """`2xx`, `5xx`… or `failure` when the upstream did not answer."""
    if failure_of(ex) is not None or ex.response is None:
        return "failure"
    return f"{ex.response.status // 100}xx"


def _is_error(ex: Exchange) -> bool:
    return ex.response is None or ex.failure is not None or ex.response.status >= 500


@dataclass(frozen=True, slots=True)
class TapeEntry:
    """A recording found in only one of the two tapes."""

    match_key: str
    seq: int
    id: int
    endpoint: str
    url: str
    status: int | None
    failure: str | None

    @classmethod
    def of(cls, key: str, seq: int, rid: int, ex: Exchange) -> TapeEntry:
        f = failure_of(ex)
        return cls(key, seq, rid, endpoint(ex), ex.request.url,
                   None if f or ex.response is None else ex.response.status,
                   f["kind"] if f else None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class PairDiff:
    """Recordings with the same match key and seq in both tapes, and what changed."""

    match_key: str
    seq: int
    endpoint: str
    url: str
    a_id: int
    b_id: int
    a_status: str  # status class: 2xx… or failure
    b_status: str
    diff: ExchangeDiff

    def to_dict(self) -> dict[str, Any]:
        return {"match_key": self.match_key, "seq": self.seq, "endpoint": self.endpoint,
                "url": self.url, "a_id": self.a_id, "b_id": self.b_id,
                "changes": [c.to_dict() for c in self.diff.changes],
                "ignored": len(self.diff.ignored)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 3)


@dataclass(frozen=True, slots=True)
class Latency:
    """duration_ms percentiles of one endpoint's answered exchanges in one tape."""

    count: int
    p50: float | None
    p95: float | None

    @classmethod
    def of(cls, durations: Sequence[float]) -> Latency:
        return cls(len(durations), percentile(durations, 0.5), percentile(durations, 0.95))


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """One endpoint's latency in tape A and in tape B."""

    endpoint: str
    a: Latency
    b: Latency

    @property
    def p50_change(self) -> float | None:
        return _delta(self.a.p50, self.b.p50)

    @property
    def p95_change(self) -> float | None:
        return _delta(self.a.p95, self.b.p95)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "a": dataclasses.asdict(self.a),
                "b": dataclasses.asdict(self.b), "p50_change": self.p50_change,
                "p95_change": self.p95_change}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


@dataclass(frozen=True, slots=True)
class ErrorRate:
    """Share of a tape's recordings that are 5xx answers or upstream failures."""

    total: int
    errors: int

    @classmethod
    def of(cls, items: Sequence[TapeItem]) -> ErrorRate:
        return cls(len(items), sum(1 for _, _, ex in items if _is_error(ex)))

    @property
    def rate(self) -> float:
        return round(self.errors / self.total, 4) if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "errors": self.errors, "rate": self.rate}


@dataclass(frozen=True, slots=True)
class TapeDiff:
    """Tape A (baseline) against tape B, paired by match key and seq."""

    added: tuple[TapeEntry, ...]
    removed: tuple[TapeEntry, ...]
    pairs: tuple[PairDiff, ...]  # every pair, identical ones included
    latency: tuple[LatencyStats, ...]
    error_rate_a: ErrorRate
    error_rate_b: ErrorRate
    noise_given: tuple[str, ...] = ()
    noise_detected: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (endpoint, patterns)

    @property
    def changed(self) -> tuple[PairDiff, ...]:
        return tuple(p for p in self.pairs if not p.diff.identical)

    @property
    def unchanged(self) -> int:
        return sum(1 for p in self.pairs if p.diff.identical)

    @property
    def status_class_changes(self) -> tuple[PairDiff, ...]:
        return tuple(p for p in self.pairs if p.a_status != p.b_status)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def with_endpoint_noise(self, per_endpoint: Mapping[str, Sequence[str]]) -> TapeDiff:
        """This diff with endpoint-scoped noise (learned by audits) also left out of its
        pairs: `diff_tapes` takes noise for the whole tape and finds the recordings' own;
        what audits learned belongs to one endpoint, so it is applied pair by pair."""
        if not any(per_endpoint.values()):
            return self
        matchers = {ep: NoiseMatcher.compile(ps) for ep, ps in per_endpoint.items() if ps}
        pairs = tuple(
            dataclasses.replace(p, diff=p.diff.without(matchers[p.endpoint]))
            if p.endpoint in matchers else p
            for p in self.pairs
        )
        shown = merge(dict(self.noise_detected), per_endpoint)
        return dataclasses.replace(self, pairs=pairs, noise_detected=_noise_tuples(shown))

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "changed": [p.to_dict() for p in self.changed],
            "unchanged": self.unchanged,
            "status_class_changes": [
                {"match_key": p.match_key, "seq": p.seq, "endpoint": p.endpoint,
                 "a_id": p.a_id, "b_id": p.b_id, "from": p.a_status, "to": p.b_status}
                for p in self.status_class_changes
            ],
            "latency": [s.to_dict() for s in self.latency],
            "error_rate": {
                "a": self.error_rate_a.to_dict(),
                "b": self.error_rate_b.to_dict(),
                "change": round(self.error_rate_b.rate - self.error_rate_a.rate, 4),
            },
            "noise": {
                "given": list(self.noise_given),
                "detected": {ep: list(ps) for ep, ps in self.noise_detected},
            },
        }


def _noise_tuples(noise: Mapping[str, Iterable[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((ep, tuple(ps)) for ep, ps in sorted_noise(noise).items())


def _group(items: Sequence[TapeItem]) -> dict[str, list[tuple[int, Exchange]]]:
    groups: dict[str, list[tuple[int, Exchange]]] = {}
    for key, rid, ex in items:
        groups.setdefault(key, []).append((rid, ex))
    return groups


def _durations(items: Sequence[TapeItem]) -> dict[str, list[float]]:
    # Failures are left out: a timeout's duration is the timeout, not the endpoint's speed.
    out: dict[str, list[float]] = {}
    for _, _, ex in items:
        values = out.setdefault(endpoint(ex), [])
        if failure_of(ex) is None:
            values.append(ex.duration_ms)
    return out


def _latency(a: Sequence[TapeItem], b: Sequence[TapeItem]) -> tuple[LatencyStats, ...]:
    da, db = _durations(a), _durations(b)
    return tuple(
        LatencyStats(ep, Latency.of(da.get(ep, [])), Latency.of(db.get(ep, [])))
        for ep in sorted(set(da) | set(db))
    )


def diff_tapes(
    a: Sequence[TapeItem],
    b: Sequence[TapeItem],
    noise: Iterable[str] = (),
    strict: bool = False,
    *,
    auto_noise: bool = True,
) -> TapeDiff:
    """Tape A (baseline) against tape B.

    Items are (match key, recording id, exchange); within a key they are paired in the
    order given, so pass them in `seq` order. Both tapes must be keyed under the same
    matching rules. With `auto_noise`, what differs between recordings of one key (in
    either tape) is noise for that key's whole endpoint, on top of the `noise` given."""
    given = tuple(sorted({noise} if isinstance(noise, str) else set(noise)))
    NoiseMatcher.compile(given)  # fail early on a bad pattern
    ga, gb = _group(a), _group(b)
    detected = merge(*(
        groups_noise([ex for _, ex in entries] for entries in groups.values())
        for groups in (ga, gb)
    )) if auto_noise else {}
    matchers: dict[str, NoiseMatcher] = {}

    def matcher_for(ep: str) -> NoiseMatcher:
        if ep not in matchers:
            matchers[ep] = NoiseMatcher.compile([*given, *detected.get(ep, ())])
        return matchers[ep]

    added: list[TapeEntry] = []
    removed: list[TapeEntry] = []
    pairs: list[PairDiff] = []
    for key in sorted(set(ga) | set(gb)):
        la, lb = ga.get(key, []), gb.get(key, [])
        for seq in range(max(len(la), len(lb))):
            if seq < len(la) and seq < len(lb):
                (aid, ea), (bid, eb) = la[seq], lb[seq]
                ep = endpoint(ea)
                d = diff_exchanges(ea, eb, matcher_for(ep), strict)
                pairs.append(PairDiff(key, seq, ep, ea.request.url, aid, bid,
                                      status_class(ea), status_class(eb), d))
            elif seq < len(la):
                removed.append(TapeEntry.of(key, seq, *la[seq]))
            else:
                added.append(TapeEntry.of(key, seq, *lb[seq]))

    def order(x: TapeEntry | PairDiff) -> tuple[str, str, int]:
        return (x.endpoint, x.match_key, x.seq)

    return TapeDiff(
        added=tuple(sorted(added, key=order)),
        removed=tuple(sorted(removed, key=order)),
        pairs=tuple(sorted(pairs, key=order)),
        latency=_latency(a, b),
        error_rate_a=ErrorRate.of(a),
        error_rate_b=ErrorRate.of(b),
        noise_given=given,
        noise_detected=_noise_tuples(detected),
    )
