"""Fixtures of the entrypoint tests: the compose `postgres` service's database, serves to stop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import new_pg_database
from tests.docker.container import Wiretape


@pytest.fixture
def pg_database(pg_admin_url: str) -> str:
    """A new, empty PostgreSQL database: compose's `postgres` service, here."""
    return new_pg_database(pg_admin_url)


@pytest.fixture
def started() -> Iterator[list[Wiretape]]:
    running: list[Wiretape] = []
    yield running
    for w in running:
        w.stop()
