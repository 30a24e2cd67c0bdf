"""Prometheus metrics of drift: what each tape's newest finished audit found."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from wiretape.storage.times import as_utc

from .kinds import DriftClass

type AuditSummaries = Iterable[tuple[str, dict[str, Any], datetime | None]]


class DriftCollector(Collector):
    """Drift found by each tape's newest finished audit, read from the store on each scrape.

    `source` returns (tape, audit summary, finished at) per tape (repository's
    latest_audit_summaries); a failing source yields nothing rather than a broken scrape.
    """

    def __init__(self, source: Callable[[], AuditSummaries]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        classes = ", ".join(c.value for c in DriftClass)
        findings = GaugeMetricFamily(
            "wiretape_drift_findings",
            f"Drift findings by class ({classes}) in the tape's newest audit.",
            labels=["tape", "class"])
        recordings = GaugeMetricFamily(
            "wiretape_audit_recordings",
            "Recordings by verdict (ok or the worst drift class) in the tape's newest audit.",
            labels=["tape", "verdict"])
        finished = GaugeMetricFamily(
            "wiretape_audit_last_finished_timestamp_seconds",
            "When the tape's newest audit finished (Unix time).", labels=["tape"])
        try:
            rows = list(self._source())
        except Exception:
            rows = []
        for tape, summary, finished_at in rows:
            by_class = summary.get("by_class") or {}
            for cls in DriftClass:
                findings.add_metric([tape, cls.value], float(by_class.get(cls.value, 0)))
            for verdict, n in (summary.get("verdicts") or {}).items():
                recordings.add_metric([tape, str(verdict)], float(n))
            if finished_at is not None:
                finished.add_metric([tape], as_utc(finished_at).timestamp())
        return [findings, recordings, finished]
