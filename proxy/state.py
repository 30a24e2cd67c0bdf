"""Following the shared state: mode, tape, rules and the replay index, as the store has them.

Every process reads the state row and its tape's revision every poll interval (off the
event loop), and reloads the replay index when the tape changed. A commit in this process
(the writer, the admin API) nudges the follower through the Notifier so it reads sooner;
correctness never depends on the nudge.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Mode, OnMiss
from wiretape.storage.matching import MatchRules
from wiretape.storage.notify import Notifier
from wiretape.storage.replay import ReplayIndex, gc_paused

from .options import WiretapeOptions

log = logging.getLogger(__name__)

# (tape, match key, host, accept-encoding, accept) -> the closest recordings of that miss
ClosestMemo = dict[tuple[str, str, str, str | None, str | None], list[dict[str, Any]]]


def reload_pause(load_seconds: float) -> float:
    """Seconds the poller rests after a refresh before a nudge may wake it: long enough to
    coalesce a burst of nudges, and after loading a replay index twice what the load took
    (at most 1 s). A big tape that keeps growing (`--on-miss record` on 100,000 recordings:
    about 0.5 s a load) then spends at most a third of the proxy's core reloading; the
    state is still read every poll interval.
    """
    return max(0.05, min(2 * load_seconds, 1.0))


@dataclass(slots=True)
class Runtime:
    """What the request path reads: the shared state as last seen, and the replay index."""

    mode: Mode = Mode.RECORD
    tape: str = "default"
    on_miss: OnMiss = OnMiss.ERROR
    rules: MatchRules = field(default_factory=MatchRules)
    index: ReplayIndex = field(default_factory=ReplayIndex)
    generation: int = 0
    loaded: tuple[str, int] | None = None  # (tape, revision) the index was built from
    # the closest recordings of misses; replaced whenever the tape, its rules or its index
    # change, so a memo never outlives what it was computed from
    closest: ClosestMemo = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    mode: Mode
    tape: str
    on_miss: OnMiss
    generation: int
    rules: MatchRules
    revision: int
    index: ReplayIndex | None  # None: index unchanged
    load_seconds: float = 0.0  # what loading `index` took


class StateFollower:
    """Keeps `rt` in step with the shared state: at start (prepare), every poll interval,
    and when nudged after a commit."""

    def __init__(self, sessions: sessionmaker[Session], options: WiretapeOptions,
                 notifier: Notifier | None = None) -> None:
        self.sessions = sessions
        self.options = options
        self.rt = Runtime()
        self._nudge: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._poller: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Lock | None = None
        # refresh() calls so far, and how many of them the last applied read began after:
        # concurrent admin API writes share one read (and index load) instead of queueing
        self._asked = 0
        self._served = 0
        if notifier is not None:
            notifier.subscribe(self._on_change)

    # -- reading and applying ----------------------------------------------------------
    def _read(self, loaded: tuple[str, int] | None, force: bool) -> _Snapshot | None:
        with self.sessions() as s:
            state = repo.get_state(s)
            if state is None:
                return None
            tape = repo.get_tape(s, state.tape)
            revision = tape.revision if tape else -1
            mode = Mode(state.mode)
            index = None
            started = time.perf_counter()
            if mode is Mode.REPLAY and (force or loaded != (state.tape, revision)):
                # off the event loop, the collector paused: a big tape is 100,000s of
                # objects, and a collection pass per few hundred of them doubled the load
                with gc_paused():
                    index = ReplayIndex(repo.replay_entries(s, state.tape))
            return _Snapshot(
                mode=mode,
                tape=state.tape,
                on_miss=OnMiss(state.on_miss),
                generation=state.replay_generation,
                rules=MatchRules.from_dict(tape.matching if tape else None),
                revision=revision,
                index=index,
                load_seconds=time.perf_counter() - started if index is not None else 0.0,
            )

    def _apply(self, snap: _Snapshot) -> None:
        rt = self.rt
        if snap.index is not None:
            if rt.loaded is not None and rt.loaded[0] == snap.tape:
                snap.index.keep_positions(rt.index)  # sequences go on where they were
            rt.index = snap.index
            rt.loaded = (snap.tape, snap.revision)
            log.info("replay index: tape %s, %d recordings", snap.tape, rt.index.size)
        if snap.index is not None or (snap.tape, snap.rules) != (rt.tape, rt.rules):
            rt.closest = {}
        if snap.generation != rt.generation:
            rt.index.reset()
            rt.generation = snap.generation
        if (snap.mode, snap.tape, snap.on_miss) != (rt.mode, rt.tape, rt.on_miss):
            log.info("mode %s, tape %s, on-miss %s", snap.mode, snap.tape, snap.on_miss)
        rt.mode, rt.tape, rt.on_miss, rt.rules = snap.mode, snap.tape, snap.on_miss, snap.rules

    def prepare(self) -> None:
        """Load the shared state and the replay index before the proxy starts listening."""
        snap = self._read(None, force=True)
        if snap is not None:
            self._apply(snap)
        # what is alive now (modules, the index) lives as long as the process: keep it out
        # of the collector's passes (reference counting still frees a replaced index)
        gc.freeze()

    async def refresh(self, force: bool = False) -> float:
        """Take in the shared state; the seconds spent loading a new replay index, if any."""
        # one at a time: a slow read must not apply an older snapshot over a newer one
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        self._asked += 1
        ticket = self._asked
        async with self._refreshing:
            if not force and self._served >= ticket:
                return 0.0  # a read that began after this call has been applied meanwhile
            began = self._asked  # callers queued behind us are served by this read too
            snap = await asyncio.to_thread(self._read, self.rt.loaded, force)
            self._served = began
            if snap is None:
                return 0.0
            self._apply(snap)
            return snap.load_seconds

    async def _refresh_logged(self) -> float:
        try:
            return await self.refresh()
        except Exception:
            log.exception("reading the shared state failed; keeping the last one")
            return 0.0

    # -- nudges and the poll loop ------------------------------------------------------
    def _on_change(self, wait: bool) -> concurrent.futures.Future[object] | None:
        """Called from the writer thread or the admin API's threads after a commit.

        The writer's nudges are coalesced by the poller. A caller that waits (the admin API)
        gets a future that completes once the change is applied here, so it answers only
        after this process serves what it wrote.
        """
        loop, nudge = self._loop, self._nudge
        if loop is None or nudge is None or loop.is_closed():
            return None
        if not wait or threading.get_ident() == self._loop_thread:
            loop.call_soon_threadsafe(nudge.set)
            return None
        return asyncio.run_coroutine_threadsafe(self._refresh_logged(), loop)

    async def _poll(self) -> None:
        assert self._nudge is not None
        pause = 0.0
        while True:
            # the rest after a refresh counts towards the poll interval: unnudged, the
            # state is still read every poll interval; nudged, no sooner than `pause`
            await asyncio.sleep(pause)
            interval = self.options.config.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), timeout=max(0.0, interval - pause))
            self._nudge.clear()
            pause = reload_pause(await self._refresh_logged())

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._nudge = asyncio.Event()
        self._poller = self._loop.create_task(self._poll())

    def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
