"""Time in the store: aware UTC datetimes, with one normalisation for what comes back naive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_ns(ns: int) -> datetime:
    """A capture time (nanoseconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(ns / 1e9, UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC. A naive value is taken as UTC: the store writes UTC, and SQLite hands back
    the stored wall time without its zone (so do ISO 8601 inputs written without one)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)
