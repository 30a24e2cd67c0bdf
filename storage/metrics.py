"""Prometheus metrics: the proxy counts into them, the admin API serves them at /metrics.

They live here, below both, because proxy/ and api/ never import each other. Counting is a
dict lookup and an add; the request path can afford it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "wiretape_requests",
    "Requests through the proxy, by mode and outcome "
    "(recorded, replayed, miss, forwarded, passthrough).",
    ["mode", "outcome"],
    registry=REGISTRY,
)

LATENCY = Histogram(
    "wiretape_request_duration_seconds",
    "Time from a request reaching the proxy to its response being complete, by mode.",
    ["mode"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
             10.0, 30.0),
    registry=REGISTRY,
)


def observe(mode: str, outcome: str, seconds: float) -> None:
    REQUESTS.labels(mode, outcome).inc()
    LATENCY.labels(mode).observe(max(0.0, seconds))


class WriterCollector(Collector):
    """Recordings written and write queue depth, read from the live writer on each scrape."""

    def __init__(self, source: Callable[[], dict[str, float]] | None) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        figures = self._source() if self._source is not None else {}
        written = CounterMetricFamily(
            "wiretape_recordings_written", "Exchanges written to the store by this process."
        )
        written.add_metric([], float(figures.get("recordings_written", 0)))
        depth = GaugeMetricFamily(
            "wiretape_write_queue_depth", "Captured exchanges waiting to be written."
        )
        depth.add_metric([], float(figures.get("write_queue_depth", 0)))
        return [written, depth]
