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
