"""Noise patterns, compiled: which diff paths a tape's noise covers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wiretape.storage.paths import Token, format_path, parse_path, path_matches


@dataclass(frozen=True, slots=True)
class NoiseMatcher:
    """Compiled noise patterns; call it with a path (or its tokens) to ask if it is noise.

    Patterns follow storage/paths.py; a pattern also covers everything below it
    (`response.body.meta` covers `response.body.meta.id`)."""

    patterns: tuple[tuple[Token, ...], ...] = ()

    @classmethod
    def compile(cls, patterns: Iterable[str] | NoiseMatcher) -> NoiseMatcher:
        """Raises storage.paths.InvalidPath for a bad pattern."""
        if isinstance(patterns, NoiseMatcher):
            return patterns
        if isinstance(patterns, str):  # a lone pattern, not an iterable of characters
            patterns = [patterns]
        parsed = {parse_path(p) for p in patterns}
        return cls(tuple(sorted(parsed, key=format_path)))

    def __call__(self, path: str | Sequence[Token]) -> bool:
        tokens = parse_path(path) if isinstance(path, str) else tuple(path)
        return any(path_matches(tokens, p) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)
