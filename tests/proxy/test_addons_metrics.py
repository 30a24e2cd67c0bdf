"""The metrics addon: one count per finished request, by the mode and what was done with it."""

from __future__ import annotations

import asyncio

import pytest
from mitmproxy import flow as mflow
from mitmproxy.proxy.layers.http import HttpErrorHook, HttpResponseHook
from mitmproxy.test import taddons, tflow
from wiretape.proxy.metrics import OUTCOME, Metrics, Outcome
from wiretape.proxy.state import Runtime
from wiretape.storage.exchange import Mode
from wiretape.storage.metrics import REGISTRY


def count(mode: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("wiretape_requests_total",
                                     {"mode": mode, "outcome": outcome}) or 0.0


def finish(mode: Mode, outcome: Outcome | None, error_after: bool = False) -> None:
    """A request that ends with a response (and, if asked, a client leaving after it)."""
    metrics = Metrics(Runtime(mode=mode))
    f = tflow.tflow(resp=True)
    if outcome is not None:
        f.metadata[OUTCOME] = outcome

    async def go() -> None:
        with taddons.context(metrics) as tctx:
            await tctx.master.addons.handle_lifecycle(HttpResponseHook(f))
            if error_after:
                f.error = mflow.Error("Client disconnected.")
                await tctx.master.addons.handle_lifecycle(HttpErrorHook(f))

    asyncio.run(go())


@pytest.mark.parametrize(("mode", "outcome", "counted"), [
    (Mode.REPLAY, Outcome.REPLAYED, "replayed"),
    (Mode.REPLAY, Outcome.MISS, "miss"),
    (Mode.REPLAY, None, "forwarded"),  # on-miss forward, ignored hosts, upgrades
    (Mode.RECORD, Outcome.RECORDED, "recorded"),
    (Mode.PASSTHROUGH, None, "passthrough"),
])
def test_a_finished_request_is_counted_by_its_outcome(mode, outcome, counted) -> None:
    before = count(mode.value, counted)
    finish(mode, outcome)
    assert count(mode.value, counted) == before + 1


def test_a_client_leaving_after_its_response_is_not_counted_twice() -> None:
    before = count("replay", "replayed")
    finish(Mode.REPLAY, Outcome.REPLAYED, error_after=True)
    assert count("replay", "replayed") == before + 1
