"""Recording diffs and tape diffs: the admin API and `wiretape diff`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from wiretape.storage.exchange import Exchange, Request, Response

from tests.drift.support import add, run

JSON_CT = ("Content-Type", "application/json")


def ex(target: str, body: Any = None, *, status: int = 200, headers: tuple[tuple[str, str], ...]
       = (JSON_CT,), raw: bytes | None = None, ms: float = 10.0) -> Exchange:
    data = raw if raw is not None else json.dumps(body).encode()
    return Exchange(Request("GET", "https", "shop.test", 443, target),
                    Response(status, headers, data, "OK"), duration_ms=ms)


def seed(url: str) -> dict[str, list[int]]:
    """A baseline and a branch tape with every kind of difference in them."""
    items = {"items": [{"id": 1, "price": 10}, {"id": 2, "price": 5}], "count": 2}
    base = add(url, "base",
               ex("/items", {**items, "ts": "10:00:01"}, ms=10),
               ex("/items", {**items, "ts": "10:00:02"}, ms=12),  # same key: ts is noise
               ex("/text", raw=b"one\ntwo\nthree\n", headers=(("Content-Type", "text/plain"),)),
               ex("/logo.png", raw=b"\x89PNG\x00\x01", headers=(("Content-Type", "image/png"),)),
               ex("/health", {"ok": True}),
               ex("/gone", {"bye": True}))
    changed = {"items": [{"id": 1, "price": 12}, {"id": 2, "price": 5}], "count": "2"}
    utf8 = (("content-type", "application/json; charset=utf-8"),
            ("Date", "Mon, 23 Nov 2026 10:00:00 GMT"), ("Content-Length", "9"),
            ("Connection", "close"))
    branch = add(url, "branch",
                 ex("/items", {**changed, "ts": "11:00:00"}, headers=utf8, ms=30),
                 ex("/items", {**changed, "ts": "11:00:01"}, headers=utf8, ms=40),
                 ex("/text", raw=b"one\n2\nthree\n", headers=(("Content-Type", "text/plain"),)),
                 ex("/logo.png", raw=b"\x89PNG\x00\x02", headers=(("Content-Type", "image/png"),)),
                 ex("/health", {"ok": False}, status=503),
                 ex("/new", {"hello": 1}))
    return {"base": base, "branch": branch}


pytestmark = pytest.mark.anyio


async def test_recording_diff(api, db_url) -> None:
    ids = seed(db_url)
    b0, r0 = ids["base"][0], ids["branch"][0]
    body = (await api.get(f"/api/recordings/{b0}/diff/{r0}")).json()
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
    strict = (await api.get(f"/api/recordings/{b0}/diff/{r0}", params={"strict": True})).json()
    assert {"path": "response.body.ts", "kind": "value_changed", "old": "10:00:01",
            "new": "11:00:00"} in strict["changes"]

    same = (await api.get(f"/api/recordings/{b0}/diff/{b0}")).json()
    assert same == {"identical": True, "changes": [], "ignored": 0}
    status = (await api.get(f"/api/recordings/{ids['base'][4]}/diff/{ids['branch'][4]}")).json()
    assert status["changes"][0] == {"path": "response.status", "kind": "value_changed",
                                    "old": 200, "new": 503}
    text = (await api.get(f"/api/recordings/{ids['base'][2]}/diff/{ids['branch'][2]}")).json()
    assert text["changes"] == [{"path": "response.body[2]", "kind": "value_changed",
                                "old": "two\n", "new": "2\n"}]
    binary = (await api.get(f"/api/recordings/{ids['base'][3]}/diff/{ids['branch'][3]}")).json()
    assert [(c["path"], c["kind"]) for c in binary["changes"]] == [("response.body",
                                                                   "value_changed")]
    assert binary["changes"][0]["old"].startswith("sha256:")
    added = (await api.get(f"/api/recordings/{ids['base'][4]}/diff/{ids['base'][5]}")).json()
    assert {"path": "response.body.bye", "kind": "added", "old": None,
            "new": True} in added["changes"]

    assert (await api.get(f"/api/recordings/{b0}/diff/999999")).status_code == 404
    assert (await api.get(f"/api/recordings/{b0}/diff/99999999999")).status_code == 422


async def test_tape_diff(api, db_url) -> None:
    ids = seed(db_url)
    r = await api.get("/api/tapes/base/diff/branch")
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

    strict = (await api.get("/api/tapes/base/diff/branch", params={"strict": True})).json()
    assert "response.body.ts" in [c["path"] for p in strict["changed"] for c in p["changes"]]
    same = (await api.get("/api/tapes/base/diff/base")).json()
    assert same["identical"] is True and same["unchanged"] == 6 and same["changed"] == []

    text = (await api.get("/api/tapes/base/diff/branch", params={"format": "text"})).text
    assert text.startswith("5 changed, 1 added, 1 removed, 0 unchanged")
    junit = ET.fromstring((await api.get("/api/tapes/base/diff/branch",
                                         params={"format": "junit"})).text)
    assert junit.get("failures") == "6"  # 5 changed + 1 removed

    # noise given by hand for the tape is left out too
    await api.put("/api/tapes/base/noise", json={"manual": ["$.items[*].price"]})
    body = (await api.get("/api/tapes/base/diff/branch")).json()
    items0 = next(p for p in body["changed"] if p["url"].endswith("/items") and p["seq"] == 0)
    assert [c["path"] for c in items0["changes"]] == ["response.headers.content-type",
                                                      "response.body.count"]

    assert (await api.get("/api/tapes/base/diff/nope")).status_code == 404
    assert (await api.get("/api/tapes/base/diff/bad%20name")).status_code == 422


def test_wiretape_diff_command(db_url, tmp_path) -> None:
    seed(db_url)
    out = run("diff", "base", "branch", "--db", db_url)
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("5 changed, 1 added, 1 removed, 0 unchanged")
    assert "~ response.body.items[0].price: 10 -> 12" in out.stdout

    out = run("diff", "base", "branch", "--format", "json", "--strict", "--db", db_url)
    assert out.returncode == 1
    body = json.loads(out.stdout)
    assert len(body["changed"]) == 5 and body["noise"]["detected"] == {}

    report = tmp_path / "diff.xml"
    out = run("diff", "base", "branch", "--format", "junit", "-o", str(report), "--db", db_url)
    assert out.returncode == 1
    assert ET.parse(report).getroot().get("failures") == "6"
    assert out.stdout.startswith("5 changed")  # the glance, next to the file for CI

    same = run("diff", "base", "base", "--db", db_url)
    assert same.returncode == 0 and same.stdout.startswith("0 changed, 0 added, 0 removed")

    for args in (["base", "nope"], ["base", "branch", "--format", "xml"]):
        bad = run("diff", *args, "--db", db_url)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
