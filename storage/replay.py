"""The in-memory replay index: match key -> recordings in `seq` order, with sequence positions,
and the choice among the recordings of one key that fit a request best."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator

from .exchange import Request, SequencePolicy
from .matching import header_values, required_codings
from .negotiate import accept_quality, accepts_codings, media_type
from .repository import ReplayEntry, Variant
from .scrub import REDACTED

# What a sequence position belongs to: the key, and the ids of the recordings it runs over
Slot = tuple[str, tuple[int, ...]]


class Asked:
    """What a live request asks of the recordings of its key, read once per request."""

    __slots__ = ("accept", "accept_encoding", "_headers", "_request")

    def __init__(self, request: Request) -> None:
        self._request = request
        self.accept_encoding = header_values(request.headers, "accept-encoding")
        self.accept = header_values(request.headers, "accept")
        self._headers: frozenset[tuple[str, str]] | None = None

    @property
    def headers(self) -> frozenset[tuple[str, str]]:
        if self._headers is None:
            self._headers = header_set(self._request.headers)
        return self._headers


def header_set(headers: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Headers as (lower-case name, value) pairs; redacted values never take part."""
    return frozenset((k.lower(), v) for k, v in headers if v != REDACTED)


def _may_be_encoded(entry: ReplayEntry) -> bool:
    h = entry.raw_headers
    if isinstance(h, str):
        return "content-encoding" in h.lower()
    return any(str(k).lower() == "content-encoding" for k, _ in h)


def variant(entry: ReplayEntry, complete: bool) -> Variant:
    """What choosing reads of a recording, built on first use and kept on the entry. A key's
    only recording needs just its codings; its request headers are then let go."""
    v = entry.variant
    if v is not None and (v.complete or not complete):
        return v
    request_headers = entry.request_headers
    response_headers = entry.headers
    codings = required_codings(request_headers, response_headers)
    if complete:
        v = Variant(
            codings=codings,
            media_type=media_type(header_values(response_headers, "content-type")),
            accept=header_values(request_headers, "accept"),
            headers=header_set(request_headers),
            complete=True,
        )
    else:
        v = Variant(codings)
    entry.raw_request_headers = ()
    entry.variant = v
    return v


_PLAIN = Variant(frozenset())


def choose(entries: list[ReplayEntry], request: Request) -> list[ReplayEntry]:
    """The recordings of one key that fit the request best, in seq order (README, "Several
    recordings of one request"):

    1. a response compressed with a coding the recorded client offered is served only to
       requests that offer it too;
    2. when the responses left have different content types, a recording made with the
       same Accept header comes first, then those whose type the request's Accept ranks
       highest; a type it refuses is not served;
    3. then those whose request headers differ least from the request's (name and value,
       either side).
    """
    if len(entries) == 1:
        # the common case, kept cheap: most recordings are not compressed
        codings = variant(entries[0], False).codings
        if not codings:
            return entries
        ae = header_values(request.headers, "accept-encoding")
        return entries if accepts_codings(ae, codings) else []
    asked = Asked(request)
    fitting = [e for e in entries
               if accepts_codings(asked.accept_encoding, variant(e, True).codings)]
    if len(fitting) < 2:
        return fitting
    variants = [variant(e, True) for e in fitting]
    negotiated = len({v.media_type for v in variants}) > 1
    best: tuple[float, int] | None = None
    chosen: list[ReplayEntry] = []
    for e, v in zip(fitting, variants, strict=True):
        q = 1.0
        if negotiated:
            q = 2.0 if v.accept == asked.accept else accept_quality(asked.accept, v.media_type)
            if q <= 0:
                continue
        # fewest headers that differ: a recording with headers the request lacks is no
        # closer than one missing headers the request has
        score = (q, -len(v.headers ^ asked.headers))
        if best is None or score > best:
            best, chosen = score, [e]
        elif score == best:
            chosen.append(e)
    return chosen


class ReplayIndex:
    """Answers "what comes next for this request" without touching the database.

    Built off the event loop from `repository.replay_entries`, swapped in whole. Sequence
    positions live outside the entries so a rebuilt index keeps where each key had got to.
    """

    __slots__ = ("_by_key", "_carried", "_positions", "size")

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
            elif not _may_be_encoded(lst[0]):
                # a key's only recording, not compressed: nothing to choose, nothing to
                # check; its request headers need not stay in memory
                lst[0].raw_request_headers = ()
                lst[0].variant = _PLAIN
        self._by_key = by_key
        self._positions: dict[Slot, int] = {}
        self._carried: set[Slot] = set()  # positions taken over from a previous index
        self.size = n

    def keep_positions(self, previous: ReplayIndex) -> None:
        """Go on from where `previous` (the same tape, before a change) had got to."""
        self._positions = previous._positions
        self._carried = previous._carried | set(previous._positions)

    def _position(self, slot: Slot) -> int:
        pos = self._positions.get(slot)
        if pos is not None:
            return pos
        if self._carried:
            # the same recordings before one was added (--on-miss record): go on from there
            key, ids = slot
            for n in range(len(ids) - 1, 0, -1):
                before = (key, ids[:n])
                if before in self._carried:
                    self._carried.discard(before)
                    return self._positions.pop(before)
        return 0

    def next(self, key: str, policy: SequencePolicy, request: Request | None = None,
             fallback: str | None = None) -> ReplayEntry | None:
        """The recording to serve for a request with this key, or None (a miss).

        `fallback` is the key to try when `key` has no recording (matching.match_keys: the
        request without its conditional headers). With `request`, only the recordings of the
        key that fit it best take part (`choose`); the sequence runs over those.
        """
        entries = self._by_key.get(key)
        if entries is None and fallback is not None:
            key, entries = fallback, self._by_key.get(fallback)
        if not entries:
            return None
        lst = entries if request is None else choose(entries, request)
        if not lst:
            return None
        slot = (key, tuple(e.id for e in lst))
        pos = self._position(slot)
        self._positions[slot] = pos + 1
        if pos < len(lst):
            return lst[pos]
        if policy is SequencePolicy.REPEAT_LAST:
            return lst[-1]
        if policy is SequencePolicy.CYCLE:
            return lst[pos % len(lst)]
        return None

    def reset(self) -> None:
        self._positions.clear()
        self._carried.clear()


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
