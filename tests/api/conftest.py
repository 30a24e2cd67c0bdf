"""The admin app on a fresh database of each backend, through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session
from wiretape.api.app import ApiSettings, create_app
from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange, Request, Response

from tests.drift.support import payments  # noqa: F401 - a fixture, for the drift routes

# what every state-changing request must send (the admin app refuses anything else: CSRF)
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_exchange(
    *,
    method: str = "GET",
    url: str = "http://api.test/items",
    status: int = 200,
    body: bytes | str | None = None,
    headers: tuple[tuple[str, str], ...] | None = None,
    req_headers: tuple[tuple[str, str], ...] = (),
    req_body: bytes = b"",
    ns: int = 1_700_000_000_000_000_000,
    **overrides: Any,
) -> Exchange:
    """A recorded exchange; keyword overrides for what a test cares about."""
    scheme, rest = url.split("://", 1)
    authority, _, target = rest.partition("/")
    host, _, port = authority.partition(":")
    if body is None:
        body = b'{"ok":true}'
    data = body.encode() if isinstance(body, str) else body
    if headers is None:
        headers = (("Content-Type", "application/json"), ("Content-Length", str(len(data))))
    ex = Exchange(
        Request(method, scheme, host, int(port) if port else (443 if scheme == "https" else 80),
                "/" + target, req_headers, req_body),
        Response(status, headers, data, "OK"),
        captured_ns=ns, duration_ms=12.5,
    )
    return ex.with_(**overrides) if overrides else ex


class Store:
    """Direct access to the test database, for seeding and for checking what was stored."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = db.make_engine(url)
        self.sessions = db.make_sessions(self.engine)

    def add(self, tape: str, *exchanges: Exchange) -> list[int]:
        with self.sessions.begin() as s:
            return [rid for rid, _k, _s in repo.add_exchanges(s, tape, list(exchanges))]

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = Store(db_url)
    yield st
    st.close()


@pytest.fixture
def app_factory(db_url: str, tmp_path: Path) -> Callable[..., Any]:
    def make(**kw: Any) -> Any:
        kw.setdefault("confdir", str(tmp_path / "conf"))
        kw.setdefault("admin_hosts", ("wiretape",))  # the clients' base_url, as in compose
        return create_app(ApiSettings(db_url=kw.pop("db_url", db_url), **kw))
    return make


async def open_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wiretape") as c:
            yield c


@pytest.fixture
async def client(app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(app_factory()):
        yield c
