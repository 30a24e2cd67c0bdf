"""The state follower: what it loads from the store, how it applies changes, how it polls."""

from __future__ import annotations

import asyncio
import threading

import pytest
from wiretape.proxy.options import WiretapeOptions
from wiretape.proxy.state import StateFollower, reload_pause
from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange, Mode, OnMiss, Request, Response
from wiretape.storage.matching import MatchRules


def sessions_of(url: str):  # type: ignore[no-untyped-def]
    return db.make_sessions(db.make_engine(url))


def store(url: str, mode: Mode, *paths: str, tape: str = "t") -> None:
    """The shared state (mode, tape) and one recording per path in the tape."""
    with sessions_of(url).begin() as s:
        repo.init_state(s, mode, tape, OnMiss.ERROR)
        repo.ensure_tape(s, tape)
        repo.add_exchanges(s, tape, [
            Exchange(Request("GET", "http", "api.test", 80, p), Response(200, body=b"x"))
            for p in paths])


@pytest.mark.parametrize(("load", "pause"), [
    (0.0, 0.05),    # nothing loaded: just coalesce a burst of nudges
    (0.001, 0.05),  # a small tape
    (0.2, 0.4),     # twice the load: reloading takes at most a third of the core
    (0.45, 0.9),    # 100,000 recordings
    (3.0, 1.0),     # capped at the default poll interval
])
def test_reload_pause(load: float, pause: float) -> None:
    assert reload_pause(load) == pytest.approx(pause)


def test_prepare_loads_the_mode_and_the_replay_index(sqlite_url) -> None:
    store(sqlite_url, Mode.REPLAY, "/a", "/b")
    follower = StateFollower(sessions_of(sqlite_url), WiretapeOptions())
    follower.prepare()
    assert (follower.rt.mode, follower.rt.tape) == (Mode.REPLAY, "t")
    assert follower.rt.index.size == 2


def test_record_mode_loads_no_index(sqlite_url) -> None:
    store(sqlite_url, Mode.RECORD, "/a")
    follower = StateFollower(sessions_of(sqlite_url), WiretapeOptions())
    follower.prepare()
    assert follower.rt.mode is Mode.RECORD and follower.rt.index.size == 0


def test_a_new_recording_reloads_the_index_and_forgets_closest_misses(sqlite_url) -> None:
    store(sqlite_url, Mode.REPLAY, "/a")
    follower = StateFollower(sessions_of(sqlite_url), WiretapeOptions())
    follower.prepare()
    follower.rt.closest[("t", "key", "api.test")] = []
    memo = follower.rt.closest
    store(sqlite_url, Mode.REPLAY, "/b")
    asyncio.run(follower.refresh())
    assert follower.rt.index.size == 2
    assert follower.rt.closest == {} and follower.rt.closest is not memo


def test_an_unchanged_tape_keeps_its_index_and_memo(sqlite_url) -> None:
    store(sqlite_url, Mode.REPLAY, "/a")
    follower = StateFollower(sessions_of(sqlite_url), WiretapeOptions())
    follower.prepare()
    index, memo = follower.rt.index, follower.rt.closest
    asyncio.run(follower.refresh())
    assert follower.rt.index is index and follower.rt.closest is memo


def test_new_matching_rules_are_followed(sqlite_url) -> None:
    store(sqlite_url, Mode.REPLAY, "/a")
    follower = StateFollower(sessions_of(sqlite_url), WiretapeOptions())
    follower.prepare()
    rules = MatchRules.create(ignore_query=["page"])
    with sessions_of(sqlite_url).begin() as s:
        repo.set_matching(s, "t", rules)
    asyncio.run(follower.refresh())
    assert follower.rt.rules == rules


def test_concurrent_refreshes_share_one_read() -> None:
    """Admin API writes arriving while a read is under way are all served by one more
    read that begins after them, not one read each (each may reload a big index)."""
    follower = StateFollower(sessions=None, options=WiretapeOptions())  # type: ignore[arg-type]
    reading, release = threading.Event(), threading.Event()
    reads: list[int] = []

    def slow_first_read(loaded, force):  # type: ignore[no-untyped-def]
        reads.append(len(reads))
        if len(reads) == 1:
            reading.set()
            release.wait(10)  # the first read is slow: the others queue behind it
        return None

    follower._read = slow_first_read  # type: ignore[method-assign]

    async def go() -> None:
        first = asyncio.create_task(follower.refresh())
        await asyncio.to_thread(reading.wait, 10)
        queued = [asyncio.create_task(follower.refresh()) for _ in range(5)]
        await asyncio.sleep(0)  # each queued call takes its ticket and waits for the lock
        release.set()
        await asyncio.gather(first, *queued)
        await follower.refresh()  # a call after all that reads again

    asyncio.run(go())
    assert len(reads) == 3


def test_a_nudge_before_the_loop_runs_is_ignored(sqlite_url) -> None:
    follower = StateFollower(sessions_of(sqlite_url), WiretapeOptions())
    assert follower._on_change(wait=True) is None
