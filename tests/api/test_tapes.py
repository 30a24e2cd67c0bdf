"""Tapes: list with counts, create, delete, copy and matching rules, on both backends."""

from __future__ import annotations

import pytest
from wiretape.storage import repository as repo

from tests.api.conftest import JSON, make_exchange

pytestmark = pytest.mark.anyio

NS = 1_700_000_000_000_000_000


async def test_list_create_get_delete(client, store):
    store.add("alpha", make_exchange(ns=NS), make_exchange(url="http://api.test/2", ns=NS + 1))
    r = await client.post("/api/tapes", json={"name": "beta"})
    assert r.status_code == 201
    assert r.json()["name"] == "beta" and r.json()["recordings"] == 0
    tapes = (await client.get("/api/tapes")).json()
    assert [(t["name"], t["recordings"]) for t in tapes] == [("alpha", 2), ("beta", 0)]
    assert set(tapes[0]) == {"name", "recordings", "created_at", "updated_at"}
    assert (await client.get("/api/tapes/alpha")).json()["recordings"] == 2

    r = await client.post("/api/tapes", json={"name": "beta"})
    assert r.status_code == 409 and r.json() == {"detail": "tape 'beta' already exists"}

    r = await client.delete("/api/tapes/alpha", headers=JSON)
    assert r.status_code == 204
    assert (await client.get("/api/tapes/alpha")).status_code == 404
    assert (await client.delete("/api/tapes/alpha", headers=JSON)).status_code == 404
    assert (await client.get("/api/recordings")).json()["items"] == []
    assert [t["name"] for t in (await client.get("/api/tapes")).json()] == ["beta"]


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", "a..b", ".hidden", "-x", "", "x" * 201,
                                  "a b", "tape%00"])
async def test_tape_names_are_validated(client, name):
    r = await client.post("/api/tapes", json={"name": name})
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str)


async def test_path_tricks_in_tape_urls_are_rejected(client, store):
    store.add("t", make_exchange())
    for path in ("/api/tapes/..%2Ft", "/api/tapes/a..b/export", "/api/tapes/.x/matching"):
        r = await client.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert r.status_code != 200


async def test_create_with_matching_rules(client):
    rules = {"ignore_query": ["ts"], "ignore_body_paths": ["$.nonce"],
             "match_headers": ["X-Tenant"], "ignore_host": True}
    r = await client.post("/api/tapes", json={"name": "m", "matching": rules})
    assert r.status_code == 201
    got = (await client.get("/api/tapes/m/matching")).json()
    assert got == {"ignore_query": ["ts"], "ignore_body_paths": ["$.nonce"],
                   "match_headers": ["x-tenant"], "ignore_host": True}
    r = await client.post("/api/tapes", json={"name": "n",
                                              "matching": {"ignore_body_paths": ["nonce"]}})
    assert r.status_code == 422 and "must start with '$'" in r.json()["detail"]


async def test_copy(client, store):
    ids = store.add("src", make_exchange(ns=NS), make_exchange(ns=NS + 1))
    await client.put("/api/tapes/src/matching", json={"ignore_query": ["x"]})
    r = await client.post("/api/tapes/src/copy", json={"to": "dst"})
    assert r.status_code == 201 and r.json()["name"] == "dst" and r.json()["recordings"] == 2
    src = (await client.get("/api/recordings", params={"tape": "src"})).json()["items"]
    dst = (await client.get("/api/recordings", params={"tape": "dst"})).json()["items"]
    assert sorted(i["id"] for i in src) == sorted(ids)
    assert not set(i["id"] for i in dst) & set(ids)
    strip = [{k: v for k, v in i.items() if k not in ("id", "tape")} for i in src]
    assert strip == [{k: v for k, v in i.items() if k not in ("id", "tape")} for i in dst]
    assert (await client.get("/api/tapes/dst/matching")).json()["ignore_query"] == ["x"]
    a = (await client.get(f"/api/recordings/{src[0]['id']}")).json()
    b = (await client.get(f"/api/recordings/{dst[0]['id']}")).json()
    assert a["match_key"] == b["match_key"] and a["response"] == b["response"]

    r = await client.post("/api/tapes/src/copy", json={"to": "dst"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = await client.post("/api/tapes/nope/copy", json={"to": "other"})
    assert r.status_code == 404
    r = await client.post("/api/tapes/src/copy", json={"to": "../x"})
    assert r.status_code == 422


async def test_changing_rules_rekeys_stored_recordings(client, store):
    a, b = store.add("t", make_exchange(url="http://api.test/feed?ts=1", body='{"n":1}', ns=NS),
                     make_exchange(url="http://api.test/feed?ts=2", body='{"n":2}', ns=NS + 1))

    async def key_seq(rid):
        doc = (await client.get(f"/api/recordings/{rid}")).json()
        return doc["match_key"], doc["seq"]

    (ka, sa), (kb, sb) = await key_seq(a), await key_seq(b)
    assert ka != kb and sa == sb == 0
    with store.session() as s:
        rev = repo.require_tape(s, "t").revision
    r = await client.put("/api/tapes/t/matching", json={"ignore_query": ["ts"]})
    assert r.status_code == 200
    assert r.json() == {"ignore_query": ["ts"], "ignore_body_paths": [], "match_headers": [],
                        "ignore_host": False}
    (ka, sa), (kb, sb) = await key_seq(a), await key_seq(b)
    assert ka == kb and (sa, sb) == (0, 1)  # one key now, in capture order
    with store.session() as s:
        assert repo.require_tape(s, "t").revision > rev
    # and back
    await client.put("/api/tapes/t/matching", json={})
    (ka, _), (kb, sb) = await key_seq(a), await key_seq(b)
    assert ka != kb and sb == 0


async def test_matching_errors(client, store):
    store.add("t", make_exchange())
    assert (await client.get("/api/tapes/nope/matching")).status_code == 404
    assert (await client.put("/api/tapes/nope/matching", json={})).status_code == 404
    for bad in ({"ignore_body_paths": ["$.a[x"]}, {"match_headers": ["bad header"]},
                {"ignore_host": "maybe"}, {"extra": 1}, {"ignore_query": ["x"] * 101}):
        r = await client.put("/api/tapes/t/matching", json=bad)
        assert r.status_code == 422, (bad, r.text)
