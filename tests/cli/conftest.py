"""Fixtures for the command tests: the payments upstream that `wiretape audit` audits."""

from __future__ import annotations

from tests.drift.support import payments

__all__ = ["payments"]
