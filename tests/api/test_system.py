"""Health, mode, replay reset, misses, the CA, /metrics and the bearer token."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from wiretape.storage import metrics
from wiretape.storage import repository as repo

from tests.api.conftest import JSON, open_client

pytestmark = pytest.mark.anyio


async def test_health_and_mode(client, store):
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["mode"] == "record"
    assert (await client.get("/api/mode")).status_code == 404  # no process has set one
    r = await client.put("/api/mode", json={"mode": "replay", "tape": "ci", "on_miss": "forward"})
    assert r.status_code == 200
    assert r.json() == {"mode": "replay", "tape": "ci", "on_miss": "forward"}
    r = await client.put("/api/mode", json={"on_miss": "record"})  # the rest stays
    assert r.json() == {"mode": "replay", "tape": "ci", "on_miss": "record"}
    assert (await client.get("/api/mode")).json() == r.json()
    health = (await client.get("/api/health")).json()
    assert health["mode"] == "replay" and health["tape"] == "ci"
    assert (await client.get("/api/tapes/ci")).status_code == 200  # the tape exists now
    for bad in ({"mode": "mock"}, {"on_miss": "ignore"}, {"tape": "../x"}, {"tapes": "x"},
                {"tape": ""}):
        r = await client.put("/api/mode", json=bad)
        assert r.status_code == 422, bad
        assert "mode" in r.json()["detail"] or "tape" in r.json()["detail"] or r.json()["detail"]


async def test_replay_reset_bumps_the_generation(client, store):
    await client.put("/api/mode", json={"mode": "replay"})
    a = (await client.post("/api/replay/reset", headers=JSON)).json()
    b = (await client.post("/api/replay/reset", headers=JSON)).json()
    assert a["reset"] is True and b["generation"] == a["generation"] + 1


async def test_misses_newest_first(client, store):
    with store.sessions.begin() as s:
        repo.add_miss(s, "t", "GET", "http://a.test/1", [{"id": 1, "url": "http://a.test/2",
                                                          "differences": ["path: x"]}])
        repo.add_miss(s, "u", "POST", "http://a.test/3", [])
    doc = (await client.get("/api/misses")).json()
    assert [m["request"] for m in doc] == [{"method": "POST", "url": "http://a.test/3"},
                                           {"method": "GET", "url": "http://a.test/1"}]
    assert doc[1]["closest"][0]["differences"] == ["path: x"]
    assert len((await client.get("/api/misses", params={"tape": "t"})).json()) == 1
    assert len((await client.get("/api/misses", params={"limit": 1})).json()) == 1
    assert (await client.get("/api/misses", params={"limit": 0})).status_code == 422


async def test_ca_pem(app_factory, tmp_path):
    async for c in open_client(app_factory(confdir=str(tmp_path / "none"))):
        r = await c.get("/api/ca.pem")
        assert r.status_code == 404 and "CA" in r.json()["detail"]
    conf = tmp_path / "conf"
    conf.mkdir()
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (conf / "mitmproxy-ca-cert.pem").write_text(pem)
    async for c in open_client(app_factory(confdir=str(conf))):
        r = await c.get("/api/ca.pem")
        assert r.status_code == 200 and r.text == pem
        assert r.headers["content-type"].startswith("application/x-pem-file")


async def test_metrics_in_prometheus_text(app_factory):
    metrics.observe("replay", "replayed", 0.003)
    app = app_factory(metrics_source=lambda: {"write_queue_depth": 4, "recordings_written": 9})
    async for c in open_client(app):
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"wiretape_requests", "wiretape_request_duration_seconds",
            "wiretape_recordings_written", "wiretape_write_queue_depth"} <= set(families)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("wiretape_requests_total",
                    (("mode", "replay"), ("outcome", "replayed")))] >= 1
    assert samples[("wiretape_write_queue_depth", ())] == 4
    assert samples[("wiretape_recordings_written_total", ())] == 9


async def test_openapi_and_docs(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ("/api/recordings", "/api/recordings/{rid}", "/api/tapes", "/api/tapes/{name}/copy",
              "/api/tapes/{name}/matching", "/api/tapes/{name}/export",
              "/api/tapes/{name}/import", "/api/mode", "/api/misses", "/api/replay/reset",
              "/api/ca.pem", "/metrics", "/api/health"):
        assert p in paths, p
    assert (await client.get("/docs")).status_code == 200


def _every_guarded_call(openapi: dict) -> list[tuple[str, str]]:
    calls = []
    for path, ops in openapi["paths"].items():
        if path == "/api/health":
            continue
        concrete = (path.replace("{rid}", "1").replace("{name}", "t").replace("{a}", "1")
                    .replace("{b}", "2").replace("{audit_id}", "1"))
        for method in ops:
            calls.append((method.upper(), concrete))
    return calls


async def test_token_guards_everything_but_health(app_factory):
    app = app_factory(token="s3cret-token")
    async for c in open_client(app):
        openapi = (await c.get("/openapi.json")).json()
        calls = _every_guarded_call(openapi)
        assert len(calls) >= 20
        for method, path in calls:
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": "Basic s3cret-token"},
                            {"Authorization": "Bearer s3cret-token-and-more"}):
                r = await c.request(method, path, headers={**JSON, **headers})
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer"
                assert "token" in r.json()["detail"]
        assert (await c.get("/api/health")).status_code == 200
        ok = {"Authorization": "Bearer s3cret-token"}
        assert (await c.get("/api/tapes", headers=ok)).status_code == 200
        assert (await c.get("/metrics", headers=ok)).status_code == 200
        assert (await c.get("/api/recordings", headers={"authorization": "bearer s3cret-token"})
                ).status_code == 200
