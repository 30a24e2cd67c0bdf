"""The upstream timeout: a forwarded request whose upstream sends no response head in time fails.

mitmproxy has no upstream response timeout (only tcp_timeout, 600 s of client inactivity)
and cannot kill a flow in transit (mitmproxy issue #4711), so on expiry this cancels the
task of the flow's server connection: mitmproxy then fails the flow as it does for any
upstream that went away, and the client gets its usual 502.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import http

from .options import WiretapeOptions
from .workarounds import connection_handler

log = logging.getLogger(__name__)

TIMED_OUT = "wiretape.timed_out"  # flow.metadata key: we aborted it, the upstream was too slow


class UpstreamTimeout:
    """Starts the clock on each request that is about to be forwarded.

    It comes after record/replay in the chain: a request that addon answered has a
    response by then and is never armed.
    """

    def __init__(self, options: WiretapeOptions) -> None:
        self.options = options
        # flow.id -> the timer that aborts the forwarded request
        self.deadlines: dict[str, asyncio.TimerHandle] = {}

    def request(self, flow: http.HTTPFlow) -> None:
        seconds = self.options.config.upstream_timeout
        if flow.response is None and seconds > 0:
            loop = asyncio.get_running_loop()
            self.deadlines[flow.id] = loop.call_later(seconds, self.expire, flow, seconds)

    def _disarm(self, flow: http.HTTPFlow) -> None:
        timer = self.deadlines.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    # the upstream answered in time, or the flow ended some other way
    responseheaders = response = error = _disarm

    def expire(self, flow: http.HTTPFlow, seconds: float) -> None:
        """The timer went off: abort the flow unless it has been answered meanwhile."""
        self.deadlines.pop(flow.id, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        task = server_task(flow)
        if task is None:
            log.warning("%s %s: no answer within %g s, but its upstream connection was not "
                        "found to abort", flow.request.method, flow.request.pretty_url, seconds)
            return
        flow.metadata[TIMED_OUT] = True
        log.info("%s %s: no answer from the upstream within %g s; aborted",
                 flow.request.method, flow.request.pretty_url, seconds)
        task.cancel(f"upstream did not answer within {seconds:g} s")


def server_task(flow: http.HTTPFlow) -> asyncio.Task[Any] | None:
    """The asyncio task serving the flow's upstream connection."""
    handler = connection_handler(flow.client_conn)
    if handler is None:
        return None
    transports = handler.transports
    io = transports.get(flow.server_conn)
    if io is None:
        # still connecting: the flow's server_conn is set once connected, so look for the
        # connection being opened to the flow's destination
        address = (flow.request.host, flow.request.port)
        io = next((io for conn, io in transports.items()
                   if conn is not flow.client_conn and conn.address == address), None)
    return io.handler if io is not None else None
