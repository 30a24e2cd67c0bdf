"""The in-memory replay index: match key -> recordings in `seq` order, with sequence positions."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator

from .exchange import SequencePolicy
from .repository import ReplayEntry


class ReplayIndex:
    """Answers "what comes next for this key" without touching the database.

    Built off the event loop from `repository.replay_entries`, swapped in whole. Sequence
    positions live outside the entries so a rebuilt index keeps where each key had got to.
    """

    __slots__ = ("_by_key", "_positions", "size")

    def __init__(self, entries: Iterable[ReplayEntry] = ()) -> None:
        by_key: dict[str, list[ReplayEntry]] = {}
        n = 0
        for e in entries:
            lst = by_key.get(e.match_key)
            if lst is None:
                by_key[e.match_key] = [e]
            else:
                lst.append(e)
            n += 1
        for lst in by_key.values():
            if len(lst) > 1:
                lst.sort(key=_seq_order)
        self._by_key = by_key
        self._positions: dict[str, int] = {}
        self.size = n

    def keep_positions(self, previous: ReplayIndex) -> None:
        """Go on from where `previous` (the same tape, before a change) had got to."""
        self._positions = previous._positions

    def next(self, key: str, policy: SequencePolicy) -> ReplayEntry | None:
        lst = self._by_key.get(key)
        if not lst:
            return None
        pos = self._positions.get(key, 0)
        self._positions[key] = pos + 1
        if pos < len(lst):
            return lst[pos]
        if policy is SequencePolicy.REPEAT_LAST:
            return lst[-1]
        if policy is SequencePolicy.CYCLE:
            return lst[pos % len(lst)]
        return None

    def reset(self) -> None:
        self._positions.clear()


def _seq_order(e: ReplayEntry) -> tuple[int, int]:
    return (e.seq, e.id)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (for building large acyclic structures)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
