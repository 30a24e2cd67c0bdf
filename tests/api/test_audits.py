"""Audits and freshness through the admin API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from tests.api.conftest import JSON
from tests.drift.support import (
    Payments,
    add,
    generous_durations,
    live_exchange,
)

pytestmark = pytest.mark.anyio


async def finished(client: httpx.AsyncClient, audit_id: int,
                   timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await client.get(f"/api/audits/{audit_id}")).json()
        if body["status"] != "running":
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"audit {audit_id} still running")
        await asyncio.sleep(0.1)


async def test_audit_through_the_api(client, db_url, payments: Payments,
                                     monkeypatch) -> None:
    # audits connect directly: a proxy in the environment (often wiretape itself) is not used
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    pay, status = add(db_url, "payments", live_exchange(payments.url, "/payments/7"),
                         live_exchange(payments.url, "/status"))
    payments.version = 2

    started = await client.post("/api/tapes/payments/audit",
                             json={"headers": {"Authorization": "Bearer s3cret"}})
    assert started.status_code == 202, started.text
    audit_id = started.json()["id"]
    assert started.headers["location"] == f"/api/audits/{audit_id}"
    body = await finished(client, audit_id)

    assert body["status"] == "done" and body["tape"] == "payments" and body["trigger"] == "api"
    assert body["options"]["headers"] == ["Authorization"]  # the name, never the value
    assert "s3cret" not in str(body)
    assert payments.upstream.seen[-1].headers["Authorization"] == "Bearer s3cret"
    by_id = {r["recording_id"]: r for r in body["results"]}
    assert [(f["class"], f["path"]) for f in by_id[pay]["findings"]] == [
        ("breaking", "response.body.amount"),
        ("breaking", "response.body.customer"),
        ("additive", "response.body.currency"),
    ]
    assert by_id[pay]["verdict"] == "breaking" and by_id[pay]["live_status"] == 200
    assert by_id[status]["verdict"] == "ok" and by_id[status]["findings"] == []
    assert by_id[status]["ignored"] >= 2  # the timestamp and request id, left out as noise
    assert body["summary"]["by_class"] == {"breaking": 2, "additive": 1, "value": 0,
                                           "latency": 0}
    assert body["summary"]["passed"] is False and body["summary"]["failing"] == 1

    text = (await client.get(f"/api/audits/{audit_id}", params={"format": "text"})).text
    assert text.startswith(f"audit {audit_id} of tape payments: FAIL")
    junit = ET.fromstring((await client.get(f"/api/audits/{audit_id}",
                                         params={"format": "junit"})).text)
    assert junit.get("tests") == "2" and junit.get("failures") == "1"

    # freshness: when each recording was last verified and how it went
    fresh = (await client.get("/api/tapes/payments/freshness")).json()["recordings"]
    verdicts = {r["id"]: (r["last_verdict"], r["last_matched_at"] is not None) for r in fresh}
    assert verdicts == {pay: ("breaking", False), status: ("ok", True)}
    assert all(r["last_verified_at"] for r in fresh)
    history = (await client.get(f"/api/recordings/{pay}/audits")).json()
    assert [(h["audit_id"], h["verdict"]) for h in history] == [(audit_id, "breaking")]
    audits = (await client.get("/api/tapes/payments/audits")).json()
    assert [(a["id"], a["status"]) for a in audits] == [(audit_id, "done")]

    # the noise learned from two live answers is kept per tape and endpoint
    noise = (await client.get("/api/tapes/payments/noise")).json()
    endpoint = f"GET 127.0.0.1:{payments.upstream.port}/payments/7"
    assert {"response.body.timestamp", "response.body.request_id",
            "response.headers.x-request-id"} <= set(noise["detected"][endpoint])

    # drift counts by class for Prometheus
    metrics = (await client.get("/metrics")).text
    assert 'wiretape_drift_findings{class="breaking",tape="payments"} 2.0' in metrics
    assert 'wiretape_audit_recordings{tape="payments",verdict="ok"} 1.0' in metrics

    # strict keeps the noise in: the timestamp and request id show as value drift
    strict = await finished(client, (await client.post("/api/tapes/payments/audit",
                                                 json={"strict": True})).json()["id"])
    assert strict["strict"] is True
    status_paths = {f["path"]: f["class"] for f in strict["results"][1]["findings"]}
    assert status_paths["response.body.timestamp"] == "value"
    assert status_paths["response.body.request_id"] == "value"
    assert strict["results"][1]["ignored"] == 0

    # refresh re-records what drifted; the next audit finds nothing
    refreshed = await finished(client, (await client.post("/api/tapes/payments/audit",
                                                    json={"refresh": True})).json()["id"])
    assert [r["refreshed"] for r in refreshed["results"]] == [True, False]
    generous_durations(db_url)
    again = await finished(
        client, (await client.post("/api/tapes/payments/audit", headers=JSON)).json()["id"])
    assert again["summary"]["drifted"] == 0 and again["summary"]["passed"] is True
    recording = await client.get(f"/api/audits/{again['id']}")
    assert recording.status_code == 200


async def test_audit_api_errors(client, db_url, payments: Payments) -> None:
    assert (await client.post("/api/tapes/nope/audit", headers=JSON)).status_code == 404
    assert (await client.get("/api/audits/999")).status_code == 404
    assert (await client.get("/api/audits/99999999999")).status_code == 422
    assert (await client.get("/api/audits/0")).status_code == 422
    add(db_url, "t", live_exchange(payments.url, "/status"))
    for bad in ({"concurrency": 0}, {"timeout": -1}, {"fail_on": "everything"},
                {"headers": ["x"]}, {"headers": {"Bad Name": "x"}},
                {"headers": {"X-Evil": "a\r\nInjected: 1"}}, {"headers": {"X-Euro": "€"}},
                {"surprise": 1}):
        r = await client.post("/api/tapes/t/audit", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert (await client.get("/api/tapes/nope/freshness")).status_code == 404
    assert (await client.get("/api/recordings/424242/audits")).status_code == 404
