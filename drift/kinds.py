"""Drift's vocabulary: the classes of drift and the formats of reports.

Enums only, quick to import: the CLI builds its flag choices from them at start-up.
"""

from __future__ import annotations

import enum

from wiretape.storage.errors import InvalidInput


class InvalidDriftClass(InvalidInput):
    """A fail-on value that names no drift class."""


class DriftClass(enum.StrEnum):
    BREAKING = "breaking"
    ADDITIVE = "additive"
    VALUE = "value"
    LATENCY = "latency"

    @property
    def rank(self) -> int:
        """Higher is more severe."""
        return _RANK[self]


DEFAULT_FAIL_ON = DriftClass.BREAKING

_RANK = {c: len(DriftClass) - 1 - i for i, c in enumerate(DriftClass)}  # declared most severe first


def parse_drift_class(value: str | DriftClass) -> DriftClass:
    try:
        return DriftClass(str(value).strip().lower())
    except ValueError as e:
        *first, last = (c.value for c in DriftClass)
        raise InvalidDriftClass(
            f"fail-on must be {', '.join(first)} or {last}, not {value!r}") from e


class ReportFormat(enum.StrEnum):
    """How a diff or an audit is reported."""

    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
