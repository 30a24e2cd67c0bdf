"""Recording diffs, tape diffs and tape noise through the admin API, on SQLite and PostgreSQL."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.drift.support import Payments, add, live_exchange, seed_diff_tapes

pytestmark = pytest.mark.anyio


async def test_recording_diff(client, db_url) -> None:
    ids = seed_diff_tapes(db_url)
    b0, r0 = ids["base"][0], ids["branch"][0]
    body = (await client.get(f"/api/recordings/{b0}/diff/{r0}")).json()
    assert body["identical"] is False
    # Date, Content-Length and Connection are ignored; names compare case-insensitively;
    # the timestamp differs between recordings of one key, so it is noise
    assert body["changes"] == [
        {"path": "response.headers.content-type", "kind": "value_changed",
         "old": "application/json", "new": "application/json; charset=utf-8"},
        {"path": "response.body.count", "kind": "type_changed", "old": 2, "new": "2"},
        {"path": "response.body.items[0].price", "kind": "value_changed", "old": 10, "new": 12},
    ]
    assert body["ignored"] == 1
    strict = (await client.get(f"/api/recordings/{b0}/diff/{r0}", params={"strict": True})).json()
    assert {"path": "response.body.ts", "kind": "value_changed", "old": "10:00:01",
            "new": "11:00:00"} in strict["changes"]

    same = (await client.get(f"/api/recordings/{b0}/diff/{b0}")).json()
    assert same == {"identical": True, "changes": [], "ignored": 0}
    status = (await client.get(f"/api/recordings/{ids['base'][4]}/diff/{ids['branch'][4]}")).json()
    assert status["changes"][0] == {"path": "response.status", "kind": "value_changed",
                                    "old": 200, "new": 503}
    text = (await client.get(f"/api/recordings/{ids['base'][2]}/diff/{ids['branch'][2]}")).json()
    assert text["changes"] == [{"path": "response.body[2]", "kind": "value_changed",
                                "old": "two\n", "new": "2\n"}]
    binary = (await client.get(f"/api/recordings/{ids['base'][3]}/diff/{ids['branch'][3]}")).json()
    assert [(c["path"], c["kind"]) for c in binary["changes"]] == [("response.body",
                                                                   "value_changed")]
    assert binary["changes"][0]["old"].startswith("sha256:")
    added = (await client.get(f"/api/recordings/{ids['base'][4]}/diff/{ids['base'][5]}")).json()
    assert {"path": "response.body.bye", "kind": "added", "old": None,
            "new": True} in added["changes"]

    assert (await client.get(f"/api/recordings/{b0}/diff/999999")).status_code == 404
    assert (await client.get(f"/api/recordings/{b0}/diff/99999999999")).status_code == 422


async def test_tape_diff(client, db_url) -> None:
    ids = seed_diff_tapes(db_url)
    r = await client.get("/api/tapes/base/diff/branch")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["identical"] is False
    assert [(e["url"], e["id"]) for e in body["removed"]] == [("https://shop.test/gone",
                                                               ids["base"][5])]
    assert [(e["url"], e["id"]) for e in body["added"]] == [("https://shop.test/new",
                                                             ids["branch"][5])]
    changed = {(p["url"], p["seq"]): [c["path"] for c in p["changes"]] for p in body["changed"]}
    assert changed == {
        ("https://shop.test/health", 0): ["response.status", "response.body.ok"],
        ("https://shop.test/items", 0): ["response.headers.content-type", "response.body.count",
                                         "response.body.items[0].price"],
        ("https://shop.test/items", 1): ["response.headers.content-type", "response.body.count",
                                         "response.body.items[0].price"],
        ("https://shop.test/logo.png", 0): ["response.body"],
        ("https://shop.test/text", 0): ["response.body[2]"],
    }
    assert body["unchanged"] == 0
    assert [(c["endpoint"], c["from"], c["to"]) for c in body["status_class_changes"]] == [
        ("GET shop.test/health", "2xx", "5xx")]
    items = next(x for x in body["latency"] if x["endpoint"] == "GET shop.test/items")
    assert items["a"]["p50"] == 11.0 and items["b"]["p50"] == 35.0 and items["p50_change"] == 24.0
    assert body["error_rate"]["a"]["errors"] == 0 and body["error_rate"]["b"]["errors"] == 1
    assert body["noise"]["detected"]["GET shop.test/items"] == ["response.body.ts"]

    strict = (await client.get("/api/tapes/base/diff/branch", params={"strict": True})).json()
    assert "response.body.ts" in [c["path"] for p in strict["changed"] for c in p["changes"]]
    same = (await client.get("/api/tapes/base/diff/base")).json()
    assert same["identical"] is True and same["unchanged"] == 6 and same["changed"] == []

    text = (await client.get("/api/tapes/base/diff/branch", params={"format": "text"})).text
    assert text.startswith("5 changed, 1 added, 1 removed, 0 unchanged")
    junit = ET.fromstring((await client.get("/api/tapes/base/diff/branch",
                                         params={"format": "junit"})).text)
    assert junit.get("failures") == "6"  # 5 changed + 1 removed

    # noise given by hand for the tape is left out too
    await client.put("/api/tapes/base/noise", json={"manual": ["$.items[*].price"]})
    body = (await client.get("/api/tapes/base/diff/branch")).json()
    items0 = next(p for p in body["changed"] if p["url"].endswith("/items") and p["seq"] == 0)
    assert [c["path"] for c in items0["changes"]] == ["response.headers.content-type",
                                                      "response.body.count"]

    assert (await client.get("/api/tapes/base/diff/nope")).status_code == 404
    assert (await client.get("/api/tapes/base/diff/bad%20name")).status_code == 422


async def test_noise_by_hand(client, db_url, payments: Payments) -> None:
    add(db_url, "t", live_exchange(payments.url, "/status"))
    assert (await client.get("/api/tapes/t/noise")).json() == {"tape": "t", "manual": [],
                                                            "detected": {}}
    r = await client.put("/api/tapes/t/noise",
                      json={"manual": ["$.timestamp", "response.headers.X-Request-Id"]})
    assert r.status_code == 200, r.text
    assert r.json()["manual"] == ["$.timestamp", "response.headers.X-Request-Id"]
    bad = await client.put("/api/tapes/t/noise", json={"manual": ["response.body..x"]})
    assert bad.status_code == 422 and "response.body..x" in bad.json()["detail"]
    assert (await client.put("/api/tapes/nope/noise", json={"manual": []})).status_code == 404
    cleared = await client.put("/api/tapes/t/noise", json={"detected": {}})
    assert cleared.json()["manual"] == ["$.timestamp", "response.headers.X-Request-Id"]
