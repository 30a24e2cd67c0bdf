"""A web page cannot use the admin API: other host names get 421 (DNS rebinding), and a
write must be JSON and not cross-site (CSRF), token or not, on every route of the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wiretape.api.app import ApiSettings, create_app
from wiretape.proxy.certs import ensure_ca
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Mode, OnMiss

from tests.api.conftest import JSON, Store, make_exchange, open_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """The app as `serve --admin 127.0.0.1:8081 --admin-host wiretape:8081` builds it."""
    store = Store(sqlite_url)
    store.add("default", make_exchange())
    with store.sessions.begin() as s:
        repo.init_state(s, Mode.RECORD, "default", OnMiss.ERROR)
    store.close()
    ensure_ca(str(tmp_path / "conf"))
    yield create_app(ApiSettings(db_url=sqlite_url, confdir=str(tmp_path / "conf"),
                                 admin_hosts=("127.0.0.1", "wiretape:8081")))


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(app):
        yield c


# every kind of route: reads of data, the docs, metrics, the UI, health, writes
READS = ["/api/recordings", "/api/tapes/default/export", "/api/misses", "/api/mode",
         "/metrics", "/docs", "/openapi.json", "/ui/", "/ui/static/api.js", "/api/health",
         "/api/ca.pem"]


@pytest.mark.parametrize("host", [
    "attacker.example", "attacker.example:8081", "wiretape.attacker.example",
    "localhost.attacker.example", "127.0.0.1.nip.io:8081", "WIRETAPE.example",
])
async def test_other_host_names_get_421(client, host):
    for path in READS:
        r = await client.get(path, headers={"Host": host})
        assert r.status_code == 421, (path, r.status_code)
        assert "--admin-host" in r.json()["detail"], path
    r = await client.put("/api/mode", json={"mode": "passthrough"}, headers={"Host": host})
    assert r.status_code == 421
    assert (await client.get("/api/mode")).json()["mode"] == "record"  # nothing changed


@pytest.mark.parametrize("host", [
    "localhost", "localhost:8081", "LOCALHOST.", "app.localhost:8081", "127.0.0.1:8081",
    "127.0.0.2", "[::1]:8081", "10.1.2.3:8081", "[fd00::5]", "wiretape", "wiretape:8081",
    "Wiretape:9999",
])
async def test_its_own_names_are_served(client, host):
    for path in READS:
        r = await client.get(path, headers={"Host": host})
        assert r.status_code == 200, (path, host, r.status_code)


async def test_a_write_must_be_json(client):
    """Body-less POSTs and forms are what a cross-site page can send without asking."""
    for method, path in [("POST", "/api/replay/reset"), ("POST", "/api/tapes/default/audit"),
                         ("DELETE", "/api/tapes/default"), ("DELETE", "/api/recordings/1")]:
        for headers, content in [({}, None),
                                 ({"Content-Type": "text/plain"}, b"{}"),
                                 ({"Content-Type": "application/x-www-form-urlencoded"},
                                  b"a=1"),
                                 ({"Content-Type": "multipart/form-data; boundary=x"},
                                  b"--x--\r\n")]:
            r = await client.request(method, path, headers=headers, content=content)
            assert r.status_code == 415, (method, path, headers)
            assert r.json() == {"detail": "a request that changes something must be JSON: "
                                          "send Content-Type: application/json"}
    assert (await client.get("/api/tapes/default")).json()["recordings"] == 1
    assert (await client.get("/api/tapes/default/audits")).json() == []
    # as JSON (what the UI and the README's curl lines send), with or without a body
    r = await client.post("/api/replay/reset", headers=JSON)
    assert r.status_code == 200
    r = await client.post("/api/replay/reset", json={})
    assert r.status_code == 200
    r = await client.request("DELETE", "/api/recordings/1",
                             headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 204


@pytest.mark.parametrize("headers", [
    {"Origin": "https://attacker.example"},
    {"Origin": "http://localhost:3000"},  # another local app is another origin
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://wiretape:8081", "Sec-Fetch-Site": "cross-site"},
])
async def test_cross_site_writes_are_refused(client, headers):
    r = await client.put("/api/mode", json={"mode": "passthrough"},
                         headers={"Host": "wiretape:8081", **headers})
    assert r.status_code == 403 and r.json() == {
        "detail": "a cross-site request cannot change anything here"}
    r = await client.post("/api/tapes/default/audit", json={},
                          headers={"Host": "wiretape:8081", **headers})
    assert r.status_code == 403
    assert (await client.get("/api/mode")).json()["mode"] == "record"
    # reading is not a write: what a page can read is decided by the Host check and CORS
    assert (await client.get("/api/mode", headers=headers)).status_code == 200


async def test_its_own_pages_may_write(client):
    for headers in ({"Origin": "http://wiretape:8081", "Sec-Fetch-Site": "same-origin"},
                    {"Origin": "http://wiretape:8081"}, {"Sec-Fetch-Site": "same-origin"},
                    {"Sec-Fetch-Site": "none"}, {}):
        r = await client.put("/api/mode", json={"mode": "replay"},
                             headers={"Host": "wiretape:8081", **headers})
        assert r.status_code == 200, headers


async def test_the_guard_holds_with_a_token_too(sqlite_url, tmp_path):
    (tmp_path / "conf").mkdir()
    app = create_app(ApiSettings(db_url=sqlite_url, token="t0ken", confdir=str(tmp_path / "conf"),
                                 admin_hosts=("wiretape",)))
    async for c in open_client(app):
        auth = {"Authorization": "Bearer t0ken"}
        r = await c.get("/api/recordings", headers={**auth, "Host": "attacker.example"})
        assert r.status_code == 421
        r = await c.post("/api/replay/reset", headers=auth)
        assert r.status_code == 415
        r = await c.post("/api/replay/reset", json={},
                         headers={**auth, "Origin": "https://attacker.example"})
        assert r.status_code == 403
        assert (await c.post("/api/replay/reset", json={}, headers=auth)).status_code == 200


async def test_a_wildcard_admin_host_widens_the_host_check_only(sqlite_url, tmp_path):
    (tmp_path / "conf").mkdir()
    app = create_app(ApiSettings(db_url=sqlite_url, confdir=str(tmp_path / "conf"),
                                 admin_hosts=("*",)))
    async for c in open_client(app):
        assert (await c.get("/api/tapes", headers={"Host": "any.example"})).status_code == 200
        r = await c.post("/api/replay/reset", json={},
                         headers={"Host": "any.example", "Origin": "https://attacker.example"})
        assert r.status_code == 403
