"""Fixtures for the drift tests: the payments upstream (tests/drift/support.py)."""

from __future__ import annotations

from tests.drift.support import payments

__all__ = ["payments"]
