"""GET /api/tapes/{name}/export and POST /api/tapes/{name}/import on both backends."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Failure, FailureKind

from tests.api.conftest import Store, make_exchange, open_client

pytestmark = pytest.mark.anyio

NS = 1_700_000_000_000_000_000


def rows(store: Store, tape: str) -> list:
    with store.session() as s:
        return [(r.method, r.url, r.status, r.seq, r.match_key, r.request_body, r.response_body,
                 r.response_headers, r.failure_kind, r.note, r.captured_ns)
                for r in repo.tape_recordings(s, tape)]


async def test_export_then_import_elsewhere_is_exact(client, store, app_factory, new_db_url):
    body = gzip.compress(b'{"price": 10, "pad": "' + b"z" * 300 + b'"}')
    store.add("shop",
              make_exchange(body=body, headers=(("Content-Type", "application/json"),
                                                ("Content-Encoding", "gzip")), ns=NS),
              make_exchange(ns=NS + 1),  # same key: seq 1
              make_exchange(url="http://api.test/down", response=None,
                            failure=Failure(FailureKind.TIMEOUT, "timed out"), ns=NS + 2))
    await client.put("/api/tapes/shop/matching", json={"ignore_query": ["ts"]})
    r = await client.get("/api/tapes/shop/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == 'attachment; filename="shop.har"'
    doc = r.json()
    assert doc["log"]["version"] == "1.2" and len(doc["log"]["entries"]) == 3
    assert [e["_wiretape"]["seq"] for e in doc["log"]["entries"]] == [0, 1, 0]

    other_url = new_db_url()
    from wiretape.storage import db

    db.upgrade(other_url)
    other = Store(other_url)
    try:
        async for c2 in open_client(app_factory(db_url=other_url)):
            r = await c2.post("/api/tapes/copy/import", json=doc)
            assert r.status_code == 200, r.text
            assert r.json() == {"tape": "copy", "imported": 3, "replaced": False}
            assert (await c2.get("/api/tapes/copy/matching")).json()["ignore_query"] == ["ts"]
        assert rows(other, "copy") == rows(store, "shop")
    finally:
        other.close()


async def test_export_without_ids_differs_only_there(client, store):
    """?ids=false (the pytest plugin's tapes in git): no store ids, the rest identical, and
    it imports the same."""
    store.add("shop", make_exchange(ns=NS), make_exchange(url="http://api.test/b", ns=NS + 1))
    with_ids = (await client.get("/api/tapes/shop/export")).json()
    r = await client.get("/api/tapes/shop/export?ids=false")
    assert r.status_code == 200
    without = r.json()
    assert [e["_wiretape"].get("id") for e in without["log"]["entries"]] == [None, None]
    assert all(isinstance(e["_wiretape"]["id"], int) for e in with_ids["log"]["entries"])
    for e in with_ids["log"]["entries"]:
        del e["_wiretape"]["id"]
    assert without == with_ids
    r = await client.post("/api/tapes/again/import", json=without)
    assert r.json()["imported"] == 2
    assert (await client.get("/api/tapes/again/export?ids=false")).json()["log"]["entries"] \
        == without["log"]["entries"]


async def test_export_of_an_empty_or_unknown_tape(client):
    await client.post("/api/tapes", json={"name": "empty"})
    r = await client.get("/api/tapes/empty/export")
    assert r.status_code == 200 and r.json()["log"]["entries"] == []
    r = await client.get("/api/tapes/nope/export")
    assert r.status_code == 404 and r.json() == {"detail": "tape 'nope' not found"}


async def test_import_is_all_or_nothing(client, store):
    good = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
            "request": {"method": "GET", "url": "http://a.test/x", "headers": []},
            "response": {"status": 200, "headers": [], "content": {"text": "ok"}}}
    bad = json.loads(json.dumps(good))
    bad["response"]["status"] = "teapot"
    r = await client.post("/api/tapes/fresh/import",
                          json={"log": {"entries": [good, good, bad, good]}})
    assert r.status_code == 422
    assert r.json()["detail"] == "log.entries[2].response.status must be an integer"
    assert (await client.get("/api/tapes/fresh")).status_code == 404  # not even the tape

    store.add("kept", make_exchange())
    r = await client.post("/api/tapes/kept/import", params={"replace": "true"},
                          json={"log": {"entries": [good, bad]}})
    assert r.status_code == 422
    assert (await client.get("/api/tapes/kept")).json()["recordings"] == 1  # untouched

    for not_har in ([], {"log": 1}, {"entries": []}, "text"):
        r = await client.post("/api/tapes/x/import", json=not_har)
        assert r.status_code == 422, not_har
    r = await client.post("/api/tapes/x/import", content=b"{nope",
                          headers={"content-type": "application/json"})
    assert r.status_code == 422


async def test_import_appends_or_replaces_and_redacts(client, store):
    store.add("t", make_exchange())
    entry = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
             "request": {"method": "POST", "url": "http://a.test/login?token=t0k",
                         "headers": [{"name": "Authorization", "value": "Bearer s3cret"},
                                     {"name": "Content-Type", "value": "application/json"}],
                         "postData": {"mimeType": "application/json",
                                      "text": '{"user": "me", "password": "hunter2"}'}},
             "response": {"status": 200, "headers": [
                 {"name": "Set-Cookie", "value": "sid=abc"},
                 {"name": "Content-Type", "value": "application/json"}],
                 "content": {"text": '{"access_token": "xyz"}'}}}
    r = await client.post("/api/tapes/t/import", json={"log": {"entries": [entry]}})
    assert r.json() == {"tape": "t", "imported": 1, "replaced": False}
    assert (await client.get("/api/tapes/t")).json()["recordings"] == 2
    r = await client.post("/api/tapes/t/import", params={"replace": True},
                          json={"log": {"entries": [entry, entry]}})
    assert r.json() == {"tape": "t", "imported": 2, "replaced": True}
    items = (await client.get("/api/recordings", params={"tape": "t"})).json()["items"]
    assert sorted(i["seq"] for i in items) == [0, 1]
    blob = json.dumps(rows(store, "t"), default=lambda b: b.decode("latin-1"))
    for secret in ("s3cret", "hunter2", "t0k", "abc", "xyz"):
        assert secret not in blob, secret
    # and the export carries no secret either
    text = (await client.get("/api/tapes/t/export")).text
    assert "hunter2" not in text and "s3cret" not in text


async def test_import_the_docker_example_tape(client):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docker" / "tapes" / "app.har"
    doc = json.loads(path.read_text())
    r = await client.post("/api/tapes/app/import", json=doc)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == len(doc["log"]["entries"])


def _deep(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def _entry(body: str) -> dict[str, Any]:
    return {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
            "request": {"method": "POST", "url": "http://a.test/deep",
                        "headers": [{"name": "Content-Type", "value": "application/json"}],
                        "postData": {"mimeType": "application/json", "text": body}},
            "response": {"status": 200, "headers": [], "content": {"text": body}}}


@pytest.mark.parametrize("depth", [1_200, 100_000])
async def test_a_deeply_nested_json_body_imports_as_opaque_bytes(client, store, depth):
    """Bodies nested beyond what is walked as JSON (the proxy records them byte for byte)
    import the same way: an export of such a recording must import again."""
    store.add("kept", make_exchange())
    body = _deep(depth, '{"password": "hunter22", "n": 1}')
    r = await client.post("/api/tapes/kept/import", json={"log": {"entries": [_entry(body)]}})
    assert r.status_code == 200, r.text
    rid = (await client.get("/api/recordings", params={"tape": "kept", "path": "/deep"})
           ).json()["items"][0]["id"]
    one = (await client.get(f"/api/recordings/{rid}")).json()
    assert one["request"]["body"]["encoding"] == "text"  # not shown as a JSON tree
    assert "hunter22" not in json.dumps(one)
    assert one["request"]["body"]["content"] == body.replace("hunter22", "REDACTED")
    assert (await client.get("/api/tapes/kept")).json()["recordings"] == 2


async def test_a_har_document_nested_too_deep_is_refused(client, store):
    """A document json.loads cannot read for its depth is a 422 naming the problem, never a
    500; what the tape held stays."""
    store.add("kept", make_exchange())
    doc = '{"log": {"entries": [], "_other": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    r = await client.post("/api/tapes/kept/import", content=doc,
                          headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": "the JSON body is nested too deeply"}
    assert (await client.get("/api/tapes/kept")).json()["recordings"] == 1
