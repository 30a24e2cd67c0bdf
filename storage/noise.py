"""Noise per tape and endpoint: patterns given by hand, found among recordings, found live.

A tape's noise for one endpoint is the union of
- the patterns given by hand for the whole tape (`tapes.noise`, `PUT /api/tapes/{name}/noise`),
- what differs between recordings of one match key in the tape (found when needed),
- what differed between two live answers to one request during an audit (kept in
  `tapes.noise_detected`, so audits learn it once).
Noise is left out of diff and drift verdicts unless `strict` is asked (see diff.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from .diff import ExchangeDiff, NoiseMatcher, TapeDiff, detect_noise, endpoint, parse_path
from .exchange import Exchange

type EndpointNoise = dict[str, set[str]]


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, sorted and deduplicated; raises diff.InvalidPath for a bad one."""
    out = sorted({p.strip() for p in patterns})
    for p in out:
        parse_path(p)
    return out


def recordings_noise(items: Iterable[tuple[str, Exchange]]) -> EndpointNoise:
    """{endpoint: patterns} of what differs between recordings of one match key."""
    groups: dict[str, list[Exchange]] = {}
    for key, ex in items:
        groups.setdefault(key, []).append(ex)
    out: EndpointNoise = {}
    for exchanges in groups.values():
        if len(exchanges) > 1:
            found = detect_noise(exchanges)
            if found:
                out.setdefault(endpoint(exchanges[0]), set()).update(found)
    return out


def merge(*sources: Mapping[str, Iterable[str]]) -> EndpointNoise:
    out: EndpointNoise = {}
    for source in sources:
        for ep, patterns in source.items():
            out.setdefault(ep, set()).update(patterns)
    return {ep: ps for ep, ps in out.items() if ps}


def matcher_for(manual: Iterable[str], per_endpoint: Mapping[str, Iterable[str]],
                ep: str) -> NoiseMatcher:
    return NoiseMatcher.compile([*manual, *per_endpoint.get(ep, ())])


def _filter(d: ExchangeDiff, matcher: NoiseMatcher) -> ExchangeDiff:
    if not matcher:
        return d
    kept = tuple(c for c in d.changes if not matcher(c.tokens))
    moved = tuple(c for c in d.changes if matcher(c.tokens))
    return ExchangeDiff(kept, d.ignored + moved)


def apply_endpoint_noise(result: TapeDiff, per_endpoint: Mapping[str, Sequence[str]]) -> TapeDiff:
    """A tape diff with endpoint-scoped noise (from audits) also left out of its pairs.

    `diff_tapes` takes noise for the whole tape and finds the recordings' own; the noise
    audits learned belongs to one endpoint, so it is applied here, pair by pair."""
    if not any(per_endpoint.values()):
        return result
    matchers = {ep: NoiseMatcher.compile(ps) for ep, ps in per_endpoint.items() if ps}
    pairs = tuple(
        dataclasses.replace(p, diff=_filter(p.diff, matchers[p.endpoint]))
        if p.endpoint in matchers else p
        for p in result.pairs
    )
    shown = merge(dict(result.noise_detected), per_endpoint)
    detected = tuple((ep, tuple(sorted(ps))) for ep, ps in sorted(shown.items()))
    return dataclasses.replace(result, pairs=pairs, noise_detected=detected)
