"""Shutting down without losing an answered exchange: refuse new requests, let the ones in
flight finish, then close every client connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from mitmproxy import http

log = logging.getLogger(__name__)

SHUTTING_DOWN = json.dumps({"error": "wiretape is shutting down"}).encode()


class Drain:
    """Counts the requests in flight and, once `shutdown` has begun, answers every new one
    503 without forwarding, replaying or recording it.

    Closing the listener is not enough: mitmproxy goes on serving keep-alive connections
    already open, and a capture queued after the writer's stop marker was answered but
    never stored. A flow is in flight from its request headers until its response hook (which
    queues the capture, before the response is sent) or its error hook. Load it before the
    record/replay addon, so that addon sees the 503 and leaves the flow alone.
    """

    def __init__(self) -> None:
        self.draining = False
        self._in_flight: set[str] = set()
        self._idle: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- hooks -----------------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._in_flight.add(flow.id)

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.draining or flow.response is not None:
            return
        headers = {"Content-Type": "application/json", "Wiretape": "shutting-down"}
        if flow.request.http_version.startswith("HTTP/1"):
            # HTTP/1: close the connection after this answer (HTTP/2 forbids the header;
            # its connection is closed once the streams in flight are done)
            headers["Connection"] = "close"
        flow.response = http.Response.make(503, SHUTTING_DOWN, headers)

    def _done(self, flow: http.HTTPFlow) -> None:
        self._in_flight.discard(flow.id)
        if self._idle is not None:
            # once the rest of this hook's addons have run (record/replay queues the
            # capture in the same hook, after this one)
            asyncio.get_running_loop().call_soon(self._idle.set)

    response = error = _done

    # -- shutdown ----------------------------------------------------------------------------
    async def shutdown(self, master: Any, timeout: float,
                       streaming: Callable[[], Collection[str]] = frozenset,
                       before_close: Callable[[], None] | None = None) -> int:
        """Stop listening, refuse new requests, wait up to `timeout` seconds for the ones in
        flight, then close every client connection. Returns how many requests were still in
        flight (cut off, unanswered) when the wait ended.

        `streaming()` names the flows whose response is streaming to its client: their
        client has its answer (the head and what came so far) and an endless stream would
        never end, so they are not waited for; `before_close` stores them as far as they
        went before their connections are closed."""
        self.draining = True
        proxyserver = master.addons.get("proxyserver")
        await proxyserver.servers.update([])  # no new connections
        self._idle = asyncio.Event()

        def waiting() -> set[str]:
            return self._in_flight - set(streaming())

        if waiting():
            log.info("shutting down: waiting for %d requests in flight", len(waiting()))
            deadline = time.monotonic() + timeout
            # the idle event covers the usual case; a poll covers a flow that turns into a
            # stream meanwhile (it stops counting without a hook of Drain's own)
            while waiting() and time.monotonic() < deadline:
                self._idle.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), 0.05)
        cut = len(waiting())
        if before_close is not None:
            before_close()
        if cut:
            log.warning("shutting down: %d requests still in flight after %gs are cut off "
                        "(their clients got no answer, so nothing is recorded)", cut, timeout)
        await close_connections(proxyserver)
        return cut


async def close_connections(proxyserver: Any, timeout: float = 5.0) -> None:
    """Close every client connection the way mitmproxy's own idle timeout does (cancelling
    its handler, which closes the socket and the upstream connections), and wait for their
    handlers to finish, so nothing is left for the event loop's teardown to cancel.

    mitmproxy internals: the proxyserver addon keeps one handler per client connection, with
    the transports of its connections (see proxy/workarounds.py).
    """
    for handler in list(proxyserver.connections.values()):
        io = handler.transports.get(handler.client)
        if io is not None and io.handler is not None:
            io.handler.cancel("wiretape is shutting down")
    deadline = time.monotonic() + timeout
    while proxyserver.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # handlers run their disconnect hooks, then deregister
    if proxyserver.connections:
        log.warning("shutting down: %d client connections did not close",
                    len(proxyserver.connections))
