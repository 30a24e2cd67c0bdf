"""The caching hook dispatch calls what mitmproxy's own AddonManager would, in its order."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mitmproxy import exceptions, master, options
from mitmproxy.addons import core
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import tflow
from wiretape.proxy import dispatch


class Recorder:
    def __init__(self, name: str, calls: list[str], children: list[object] = ()) -> None:
        self.name = name
        self.calls = calls
        self.addons = list(children)

    def request(self, flow) -> None:
        self.calls.append(self.name)


class AsyncRecorder(Recorder):
    async def request(self, flow) -> None:
        await asyncio.sleep(0)
        self.calls.append(self.name)


class Halter(Recorder):
    def request(self, flow) -> None:
        self.calls.append(self.name)
        raise exceptions.AddonHalt()


class Broken(Recorder):
    def request(self, flow) -> None:
        self.calls.append(self.name)
        raise RuntimeError("boom")


class Updates:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def update(self, flows) -> None:
        self.seen.extend(flows)


def _master() -> master.Master:
    m = master.Master(options.Options())
    dispatch.install(m)
    m.addons.add(core.Core())
    return m


def test_order_children_async_and_halt() -> None:
    async def go() -> list[str]:
        m = _master()
        calls: list[str] = []
        m.addons.add(
            Recorder("a", calls, [Recorder("a.child", calls)]),
            AsyncRecorder("b", calls),
            Halter("halt", calls),
            Recorder("never", calls),
        )
        await m.addons.trigger_event(HttpRequestHook(tflow.tflow()))
        return calls

    assert asyncio.run(go()) == ["a", "a.child", "b", "halt"]


def test_an_addon_error_is_logged_and_the_chain_goes_on(caplog) -> None:
    async def go() -> list[str]:
        m = _master()
        calls: list[str] = []
        m.addons.add(Broken("broken", calls), Recorder("after", calls))
        await m.addons.trigger_event(HttpRequestHook(tflow.tflow()))
        return calls

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(go()) == ["broken", "after"]
    assert "Addon error: boom" in caplog.text


def test_adding_and_removing_addons_is_seen() -> None:
    async def go() -> list[str]:
        m = _master()
        calls: list[str] = []
        first = Recorder("first", calls)
        m.addons.add(first)
        await m.addons.trigger_event(HttpRequestHook(tflow.tflow()))  # fills the cache
        m.addons.add(Recorder("second", calls))
        await m.addons.trigger_event(HttpRequestHook(tflow.tflow()))
        m.addons.remove(first)
        await m.addons.trigger_event(HttpRequestHook(tflow.tflow()))
        return calls

    assert asyncio.run(go()) == ["first", "first", "second", "second"]


def test_update_hook_only_when_someone_listens() -> None:
    async def go() -> tuple[list[object], list[object]]:
        m = _master()
        f = tflow.tflow()
        await m.addons.handle_lifecycle(HttpRequestHook(f))  # nobody listens: no error
        u = Updates()
        m.addons.add(u)
        await m.addons.handle_lifecycle(HttpRequestHook(f))
        return u.seen, [f]

    seen, expected = asyncio.run(go())
    assert seen == expected


def test_install_refuses_a_master_with_addons() -> None:
    async def go() -> None:
        m = master.Master(options.Options())
        m.addons.add(core.Core())
        dispatch.install(m)

    with pytest.raises(AssertionError):
        asyncio.run(go())
