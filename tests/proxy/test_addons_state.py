"""How long the shared-state poller rests after a refresh."""

from __future__ import annotations

import pytest
from wiretape.proxy.addon import reload_pause


@pytest.mark.parametrize(("load", "pause"), [
    (0.0, 0.05),    # nothing loaded: just coalesce a burst of nudges
    (0.001, 0.05),  # a small tape
    (0.2, 0.4),     # twice the load: reloading takes at most a third of the core
    (0.45, 0.9),    # 100,000 recordings
    (3.0, 1.0),     # capped at the default poll interval
])
def test_reload_pause(load: float, pause: float) -> None:
    assert reload_pause(load) == pytest.approx(pause)


def test_concurrent_refreshes_share_one_read() -> None:
    """Admin API writes arriving while a read is under way are all served by one more
    read that begins after them, not one read each (each may reload a big index)."""
    import asyncio
    import threading

    from wiretape.proxy.addon import Wiretape

    addon = Wiretape(sessions=None, writer=None)  # type: ignore[arg-type]
    release = threading.Event()
    reads: list[int] = []

    def fake_read(loaded, force):
        reads.append(len(reads))
        if len(reads) == 1:
            release.wait(10)  # the first read is slow: the others queue behind it
        return None

    addon._read = fake_read  # type: ignore[method-assign]

    async def go() -> None:
        first = asyncio.create_task(addon.refresh())
        await asyncio.sleep(0.05)  # the first read is under way
        queued = [asyncio.create_task(addon.refresh()) for _ in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *queued)
        await addon.refresh()  # a call after all that reads again

    asyncio.run(go())
    assert len(reads) == 3
