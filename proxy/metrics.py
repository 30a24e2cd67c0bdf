"""Counting for /metrics: one count and one latency sample per finished request."""

from __future__ import annotations

import time
from enum import StrEnum

from mitmproxy import http
from wiretape.storage import metrics
from wiretape.storage.exchange import Mode

from .state import Runtime

OUTCOME = "wiretape.outcome"  # flow.metadata key: what record/replay did with the request
COUNTED = "wiretape.counted"  # flow.metadata key: already counted


class Outcome(StrEnum):
    RECORDED = "recorded"
    REPLAYED = "replayed"
    MISS = "miss"
    FORWARDED = "forwarded"  # in replay mode: not answered from the tape
    PASSTHROUGH = "passthrough"


class Metrics:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _count(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(COUNTED):
            return  # an error after the response (client gone) is the same request
        flow.metadata[COUNTED] = True
        mode = self.rt.mode
        outcome = flow.metadata.get(OUTCOME) or (
            Outcome.FORWARDED if mode is Mode.REPLAY else Outcome.PASSTHROUGH)
        metrics.observe(mode.value, outcome, time.time() - flow.request.timestamp_start)

    response = error = _count
