"""The audit's verdicts: each live answer classified against its recording, noise left out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wiretape.storage.exchange import Exchange
from wiretape.storage.models import VERDICT_OK

from .. import noise
from ..changes import diff_exchanges
from ..classify import DriftFinding, at_or_above, classify, worst
from ..kinds import DriftClass
from .options import AuditOptions, Target, answered


@dataclass(frozen=True, slots=True)
class Outcome:
    target: Target
    live: Exchange  # the first live answer (duration: the fastest answer's)
    findings: tuple[DriftFinding, ...]
    ignored: int

    @property
    def verdict(self) -> str:
        w = worst(self.findings)
        return str(w) if w else VERDICT_OK


def judge(
    targets: Sequence[Target],
    answers: Mapping[int, Sequence[Exchange]],
    options: AuditOptions,
    manual: Sequence[str] = (),
    detected: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[Outcome], noise.EndpointNoise]:
    """Classify each live answer against its recording; returns the outcomes and the noise
    learned from the live answers this time."""
    live_noise = noise.groups_noise(
        [ex for ex in answers[t.id] if answered(ex)] for t in targets)
    recorded_noise = noise.recordings_noise((t.match_key, t.exchange) for t in targets)
    per_endpoint = noise.merge(detected or {}, recorded_noise, live_noise)
    outcomes = []
    for t in targets:
        first = answers[t.id][0]
        if answered(first):
            fastest = min(ex.duration_ms for ex in answers[t.id] if answered(ex))
            first = first.with_(duration_ms=fastest)
        matcher = noise.matcher_for(manual, per_endpoint, t.endpoint)
        findings = [
            f for f in classify(t.exchange, first, matcher, options.strict)
            if f.drift_class is not DriftClass.LATENCY
            or f.new - f.old >= options.latency_floor_ms
        ]
        ignored = 0
        if matcher and not options.strict:
            ignored = len(diff_exchanges(t.exchange, first, matcher).ignored)
        outcomes.append(Outcome(t, first, tuple(findings), ignored))
    return outcomes, live_noise


def summarize(outcomes: Sequence[Outcome], options: AuditOptions, refreshed: int,
              live_noise: noise.EndpointNoise, seconds: float) -> dict[str, Any]:
    """The audit's summary as stored: counts by class and verdict, what failed it."""
    by_class = {str(c): 0 for c in DriftClass}
    verdicts: dict[str, int] = {}
    for o in outcomes:
        for f in o.findings:
            by_class[str(f.drift_class)] += 1
        verdicts[o.verdict] = verdicts.get(o.verdict, 0) + 1
    failing = sum(1 for o in outcomes if at_or_above(o.findings, options.fail_on))
    return {
        "recordings": len(outcomes),
        "drifted": sum(1 for o in outcomes if o.findings),
        "failing": failing,
        "passed": failing == 0,
        "by_class": by_class,
        "verdicts": dict(sorted(verdicts.items())),
        "refreshed": refreshed,
        "noise_learned": noise.sorted_noise(live_noise),
        "seconds": round(seconds, 3),
    }
