"""Noise per tape and endpoint: patterns given by hand, found among recordings, found live.

A tape's noise for one endpoint is the union of
- the patterns given by hand for the whole tape (`tapes.noise`, `PUT /api/tapes/{name}/noise`),
- what differs between recordings of one match key in the tape (found when needed),
- what differed between two live answers to one request during an audit (kept in
  `tapes.noise_detected`, so audits learn it once).
Noise is left out of diff and drift verdicts unless `strict` is asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from wiretape.storage.exchange import Exchange
from wiretape.storage.paths import parse_path

from .changes import Compared, diff_exchanges, endpoint
from .patterns import NoiseMatcher

type EndpointNoise = dict[str, set[str]]


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, sorted and deduplicated; raises storage.paths.InvalidPath for a bad one."""
    out = sorted({p.strip() for p in patterns})
    for p in out:
        parse_path(p)
    return out


def detect_noise(exchanges: Sequence[Exchange], *, include_request: bool = False) -> set[str]:
    """Patterns for what differs between exchanges of the same match key (several
    recordings of one key, or two live answers to one request), list indexes as `[*]`.

    Status codes and failures are outcomes, not noise: a key that answered 200 once and 503
    once must still show a status class change, so they are never returned here (pass
    `response.status` as noise yourself to hide them)."""
    if len(exchanges) < 2:
        return set()
    base, out = exchanges[0], set()
    # A value that differs between any two exchanges differs between one of them and the
    # first, so comparing each with the first finds everything.
    for other in exchanges[1:]:
        for c in diff_exchanges(base, other, strict=True, include_request=include_request).changes:
            if c.compared_as not in (Compared.STATUS, Compared.FAILURE):
                out.add(c.pattern)
    return out


def groups_noise(groups: Iterable[Sequence[Exchange]]) -> EndpointNoise:
    """{endpoint: patterns} of what differs within each group of one request's exchanges."""
    out: EndpointNoise = {}
    for exchanges in groups:
        found = detect_noise(exchanges)
        if found:
            out.setdefault(endpoint(exchanges[0]), set()).update(found)
    return out


def recordings_noise(items: Iterable[tuple[str, Exchange]]) -> EndpointNoise:
    """{endpoint: patterns} of what differs between recordings of one match key."""
    by_key: dict[str, list[Exchange]] = {}
    for key, ex in items:
        by_key.setdefault(key, []).append(ex)
    return groups_noise(by_key.values())


def merge(*sources: Mapping[str, Iterable[str]]) -> EndpointNoise:
    out: EndpointNoise = {}
    for source in sources:
        for ep, patterns in source.items():
            out.setdefault(ep, set()).update(patterns)
    return {ep: ps for ep, ps in out.items() if ps}


def matcher_for(manual: Iterable[str], per_endpoint: Mapping[str, Iterable[str]],
                ep: str) -> NoiseMatcher:
    """What is noise at endpoint `ep`: the patterns for the whole tape and that endpoint's."""
    return NoiseMatcher.compile([*manual, *per_endpoint.get(ep, ())])


def sorted_noise(noise: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """{endpoint: sorted patterns}, endpoints in order, empty ones left out (JSON shapes)."""
    return {ep: sorted(ps) for ep, ps in sorted(noise.items()) if ps}
