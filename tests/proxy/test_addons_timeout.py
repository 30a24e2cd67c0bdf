"""The upstream timeout addon: what it arms, what disarms it, what expiry does."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHeadersHook
from mitmproxy.test import taddons, tflow, tutils
from wiretape.proxy.options import WiretapeOptions
from wiretape.proxy.timeout import TIMED_OUT, UpstreamTimeout


def armed_after_request(timeout: UpstreamTimeout, opts: WiretapeOptions, answered: bool = False,
                        **options: object) -> tuple[bool, float]:
    """Fire the request hook on a flow; whether a timer was armed, and in how many seconds."""
    async def go() -> tuple[bool, float]:
        with taddons.context(opts, timeout) as tctx:
            if options:
                tctx.configure(opts, **options)
            f = tflow.tflow(resp=answered)
            await tctx.master.addons.handle_lifecycle(HttpRequestHook(f))
            timer = timeout.deadlines.get(f.id)
            left = timer.when() - asyncio.get_running_loop().time() if timer else 0.0
            for t in timeout.deadlines.values():
                t.cancel()
            return timer is not None, left
    return asyncio.run(go())


def test_a_forwarded_request_is_armed_with_the_configured_seconds() -> None:
    opts = WiretapeOptions()
    armed, left = armed_after_request(UpstreamTimeout(opts), opts,
                                      wiretape_upstream_timeout=30.0)
    assert armed and 29 < left <= 30


def test_an_answered_request_is_not_armed() -> None:
    opts = WiretapeOptions()
    assert armed_after_request(UpstreamTimeout(opts), opts, answered=True) == (False, 0.0)


def test_timeout_0_waits_forever() -> None:
    opts = WiretapeOptions()
    armed, _ = armed_after_request(UpstreamTimeout(opts), opts, wiretape_upstream_timeout=0.0)
    assert not armed


def test_the_response_head_disarms() -> None:
    opts = WiretapeOptions()
    timeout = UpstreamTimeout(opts)

    async def go() -> bool:
        with taddons.context(opts, timeout) as tctx:
            f = tflow.tflow()
            await tctx.master.addons.handle_lifecycle(HttpRequestHook(f))
            timer = timeout.deadlines[f.id]
            f.response = tutils.tresp()
            await tctx.master.addons.handle_lifecycle(HttpResponseHeadersHook(f))
            return timer.cancelled() and f.id not in timeout.deadlines

    assert asyncio.run(go())


def test_expiry_leaves_an_answered_flow_alone(caplog) -> None:
    opts = WiretapeOptions()
    timeout = UpstreamTimeout(opts)
    f = tflow.tflow(resp=True)
    with taddons.context(opts, timeout), caplog.at_level(logging.INFO):
        timeout.expire(f, 1.0)
    assert TIMED_OUT not in f.metadata and caplog.records == []


def test_expiry_without_a_connection_to_abort_says_so(caplog) -> None:
    opts = WiretapeOptions()
    timeout = UpstreamTimeout(opts)
    f = tflow.tflow()
    with taddons.context(opts, timeout), caplog.at_level(logging.WARNING):
        timeout.expire(f, 1.0)
    assert TIMED_OUT not in f.metadata
    assert "no answer within 1 s, but its upstream connection was not found" in caplog.text
