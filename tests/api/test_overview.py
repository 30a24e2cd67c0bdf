"""GET /api/tapes/{name}/overview: a tape's count, rules, last audit and freshness, on both
backends, with a real audit against a live upstream that changed."""

from __future__ import annotations

import anyio
import pytest

from tests.api.conftest import make_exchange
from tests.drift.support import Payments, add, live_exchange

pytestmark = pytest.mark.anyio

NS = 1_700_000_000_000_000_000


async def test_a_fresh_tape(client, store):
    store.add("shop", make_exchange(ns=NS), make_exchange(url="http://api.test/2", ns=NS + 1))
    r = await client.get("/api/tapes/shop/overview")
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["name"] == "shop" and o["recordings"] == 2
    assert o["matching"] == {"ignore_query": [], "ignore_body_paths": [], "match_headers": [],
                             "ignore_host": False}
    assert o["last_audit"] is None
    assert o["freshness"] == {"verified": 0, "never_verified": 2, "oldest_verified_at": None,
                              "newest_verified_at": None, "verdicts": {}}


async def test_rules_follow_a_change(client, store):
    store.add("shop", make_exchange(ns=NS))
    rules = {"ignore_query": ["_ts"], "ignore_body_paths": ["$.at"], "match_headers": ["x-tenant"],
             "ignore_host": True}
    assert (await client.put("/api/tapes/shop/matching", json=rules)).status_code == 200
    assert (await client.get("/api/tapes/shop/overview")).json()["matching"] == rules


async def test_unknown_and_invalid_tapes(client):
    r = await client.get("/api/tapes/nope/overview")
    assert r.status_code == 404 and r.json() == {"detail": "tape 'nope' not found"}
    assert (await client.get("/api/tapes/..x/overview")).status_code == 422


async def test_after_an_audit_that_found_breaking_drift(client, db_url, upstream):
    pay = Payments(upstream)

    def recorded(target: str):  # slow when recorded: a loaded machine adds no latency drift
        return live_exchange(pay.url, target).with_(duration_ms=60_000.0)

    add(db_url, "pay", recorded("/payments/7"), recorded("/status"))
    add(db_url, "pay", recorded("/status?x=1"))
    pay.version = 2
    started = await client.post("/api/tapes/pay/audit", json={})
    assert started.status_code == 202, started.text
    audit_id = started.json()["id"]
    while (await client.get(f"/api/audits/{audit_id}")).json()["status"] == "running":
        await anyio.sleep(0.05)

    o = (await client.get("/api/tapes/pay/overview")).json()
    a = o["last_audit"]
    assert a["id"] == audit_id and a["status"] == "done" and a["passed"] is False
    assert a["recordings"] == 3 and a["drifted"] == 1 and a["fail_on"] == "breaking"
    assert a["verdicts"] == {"breaking": 1, "ok": 2}
    assert a["started_at"] <= a["finished_at"]
    f = o["freshness"]
    assert f["verified"] == 3 and f["never_verified"] == 0
    assert f["verdicts"] == {"breaking": 1, "ok": 2}
    assert f["oldest_verified_at"] is not None and f["oldest_verified_at"].endswith("Z")

    # a recording added afterwards has not been verified
    add(db_url, "pay", recorded("/status?x=2"))
    f = (await client.get("/api/tapes/pay/overview")).json()["freshness"]
    assert f["verified"] == 3 and f["never_verified"] == 1
