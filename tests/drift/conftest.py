"""Fixtures for the drift tests: the payments upstream, the admin app with drift routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from wiretape.storage.exchange import Exchange

from tests.drift.support import Payments, add, drift_app
from tests.helpers import Upstream


@pytest.fixture
def payments(upstream: Upstream) -> Payments:
    return Payments(upstream)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = drift_app(db_url, confdir=str(tmp_path / "conf"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wiretape") as c:
            yield c


@pytest.fixture
def add_to(db_url: str) -> Callable[..., list[int]]:
    def add_exchanges(tape: str, *exchanges: Exchange) -> list[int]:
        return add(db_url, tape, *exchanges)
    return add_exchanges
