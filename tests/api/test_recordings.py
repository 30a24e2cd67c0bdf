"""GET/PATCH/DELETE/POST /api/recordings on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import brotli
import pytest
from wiretape.storage import models as m
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Failure, FailureKind

from tests.api.conftest import JSON, make_exchange

pytestmark = pytest.mark.anyio

NS = 1_700_000_000_000_000_000
ITEM_FIELDS = {"id", "tape", "seq", "method", "url", "status", "duration_ms", "recorded_at",
               "request_size", "response_size", "content_type",
               "last_verified_at", "last_verdict"}  # freshness: set by drift audits


async def test_list_items_have_the_spec_fields_newest_first(client, store):
    a, b = store.add("t", make_exchange(ns=NS), make_exchange(url="http://api.test/b", ns=NS + 1))
    r = await client.get("/api/recordings", params={"tape": "t"})
    assert r.status_code == 200
    doc = r.json()
    assert set(doc) == {"items", "next_cursor"} and doc["next_cursor"] is None
    assert [i["id"] for i in doc["items"]] == [b, a]
    item = doc["items"][1]
    assert ITEM_FIELDS <= set(item)
    assert {k: item[k] for k in ITEM_FIELDS} == {
        "id": a, "tape": "t", "seq": 0, "method": "GET", "url": "http://api.test/items",
        "status": 200, "duration_ms": 12.5, "recorded_at": "2023-11-14T22:13:20Z",
        "request_size": 0, "response_size": 11, "content_type": "application/json",
        "last_verified_at": None, "last_verdict": None,
    }


async def test_every_filter(client, store):
    ids = store.add(
        "t",
        make_exchange(method="GET", url="http://a.test/api/items/1", status=200,
                      body='{"name": "Blue Widget"}', ns=NS),
        make_exchange(method="POST", url="http://a.test/api/orders", status=201,
                      body='{"order": 7}', req_body=b'{"sku": "RED-1"}', ns=NS + 10**9),
        make_exchange(method="GET", url="http://b.test/api/items/2", status=404,
                      body="not found", headers=(("Content-Type", "text/plain"),),
                      ns=NS + 2 * 10**9),
        make_exchange(method="GET", url="http://a.test/other", status=200, ns=NS + 3 * 10**9),
    )
    other = store.add("u", make_exchange(url="http://a.test/api/items/1", ns=NS))

    async def ids_for(**params):
        r = await client.get("/api/recordings", params=params)
        assert r.status_code == 200, r.text
        return sorted(i["id"] for i in r.json()["items"])

    assert await ids_for(tape="t") == sorted(ids)
    assert await ids_for() == sorted(ids + other)
    assert await ids_for(tape="t", method="post") == [ids[1]]
    assert await ids_for(tape="t", host="b.test") == [ids[2]]
    assert await ids_for(tape="t", host="A.TEST") == [ids[0], ids[1], ids[3]]
    assert await ids_for(tape="t", path="/api/items") == [ids[0], ids[2]]
    assert await ids_for(tape="t", path="/API") == []  # a prefix is case-sensitive
    assert await ids_for(tape="t", path="/api") == ids[:3]
    assert await ids_for(tape="t", status=404) == [ids[2]]
    assert await ids_for(tape="t", q="blue widget") == [ids[0]]  # response body, any case
    assert await ids_for(tape="t", q="RED-1") == [ids[1]]  # request body
    assert await ids_for(tape="t", q="50%") == []  # LIKE wildcards are plain text
    assert await ids_for(tape="t", since="2023-11-14T22:13:21Z") == ids[1:]
    assert await ids_for(tape="t", until="2023-11-14T22:13:22+00:00") == ids[:2]
    # a zone-less time is UTC; another zone is converted
    assert await ids_for(tape="t", since="2023-11-14T22:13:22") == ids[2:]
    assert await ids_for(tape="t", since="2023-11-14T23:13:22+01:00") == ids[2:]
    assert await ids_for(tape="t", method="GET", host="a.test", path="/api", status=200,
                         q="widget") == [ids[0]]


async def test_q_finds_text_inside_compressed_bodies(client, store):
    doc = b'{"message": "the quick brown fox"}'
    ids = store.add("t", *[
        make_exchange(body=data, headers=(("Content-Type", "application/json"),
                                          ("Content-Encoding", enc)), ns=NS + i)
        for i, (enc, data) in enumerate([("gzip", gzip.compress(doc)), ("br", brotli.compress(doc)),
                                         ("deflate", zlib.compress(doc))])
    ])
    r = await client.get("/api/recordings", params={"q": "Brown Fox"})
    assert sorted(i["id"] for i in r.json()["items"]) == sorted(ids)


async def test_unknown_tape_is_404_and_bad_filters_422(client, store):
    r = await client.get("/api/recordings", params={"tape": "nope"})
    assert r.status_code == 404 and r.json() == {"detail": "tape 'nope' not found"}
    for params in ({"limit": 0}, {"limit": 1001}, {"status": 99}, {"tape": "../etc"},
                   {"tape": "a..b"}, {"since": "yesterday"}, {"cursor": "bogus"},
                   {"method": "GET POST"}, {"q": ""}):
        r = await client.get("/api/recordings", params=params)
        assert r.status_code == 422, (params, r.text)
        assert isinstance(r.json()["detail"], str) and r.json()["detail"], params


async def test_limit_defaults_to_50_and_cursor_walks_every_page(client, store):
    ids = store.add("t", *[make_exchange(url=f"http://api.test/i/{i}", ns=NS + i)
                           for i in range(120)])
    r = await client.get("/api/recordings", params={"tape": "t"})
    assert len(r.json()["items"]) == 50 and r.json()["next_cursor"]
    seen, cursor = [], None
    while True:
        params = {"tape": "t", "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/recordings", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_cursor_never_skips_or_repeats_while_recordings_are_added(client, store):
    first = store.add("t", *[make_exchange(url=f"http://api.test/i/{i}", ns=NS + i)
                             for i in range(30)])
    seen, cursor, added = [], None, []
    while True:
        params = {"tape": "t", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/recordings", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        # new recordings land while the client is paging, in this tape and another
        added += store.add("t", make_exchange(url=f"http://api.test/new/{len(added)}",
                                              ns=NS + 1000 + len(added)))
        store.add("other", make_exchange(ns=NS))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(first, reverse=True)  # every one, once, in order
    assert len(set(seen)) == len(seen)


async def test_detail_shows_the_whole_exchange_decoded(client, store):
    payload = {"items": [{"id": 1, "price": 9.5}], "name": "Zoë"}
    raw = json.dumps(payload).encode()
    rid, text_id, bin_id, br_id = store.add(
        "t",
        make_exchange(
            method="POST", url="http://api.test/orders?page=2",
            req_headers=(("Content-Type", "application/json"), ("X-Trace", "abc")),
            req_body=b'{"sku": "A"}',
            headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
            body=gzip.compress(raw), ns=NS,
        ),
        make_exchange(body="plain text ✓", headers=(("Content-Type", "text/plain"),), ns=NS + 1),
        make_exchange(body=b"\x89PNG\x00\xff", headers=(("Content-Type", "image/png"),),
                      ns=NS + 2),
        make_exchange(body=brotli.compress(b"hello br"),
                      headers=(("Content-Encoding", "br"),), ns=NS + 3),
    )
    r = await client.get(f"/api/recordings/{rid}")
    assert r.status_code == 200
    doc = r.json()
    assert doc["id"] == rid and doc["tape"] == "t" and doc["seq"] == 0 and doc["match_key"]
    assert doc["request"] == {
        "method": "POST", "url": "http://api.test/orders?page=2", "http_version": "HTTP/1.1",
        "headers": [["Content-Type", "application/json"], ["X-Trace", "abc"]],
        "body": {"encoding": "json", "content": {"sku": "A"}},
    }
    assert doc["response"]["status"] == 200
    assert doc["response"]["headers"] == [["Content-Type", "application/json"],
                                          ["Content-Encoding", "gzip"]]
    assert doc["response"]["body"] == {"encoding": "json", "content": payload}
    assert doc["failure"] is None
    body = (await client.get(f"/api/recordings/{text_id}")).json()["response"]["body"]
    assert body == {"encoding": "text", "content": "plain text ✓"}
    body = (await client.get(f"/api/recordings/{bin_id}")).json()["response"]["body"]
    assert body == {"encoding": "base64",
                    "content": base64.b64encode(b"\x89PNG\x00\xff").decode()}
    body = (await client.get(f"/api/recordings/{br_id}")).json()["response"]["body"]
    assert body == {"encoding": "text", "content": "hello br"}


async def test_detail_of_a_failure_and_unknown_ids(client, store):
    (rid,) = store.add("t", make_exchange(response=None,
                                          failure=Failure(FailureKind.REFUSED, "refused")))
    doc = (await client.get(f"/api/recordings/{rid}")).json()
    assert doc["response"] is None
    assert doc["failure"] == {"kind": "refused", "message": "refused"}
    r = await client.get("/api/recordings/999999")
    assert r.status_code == 404 and r.json() == {"detail": "recording 999999 not found"}
    for bad in ("0", "-1", "abc", str(2**40)):
        assert (await client.get(f"/api/recordings/{bad}")).status_code == 422, bad


def stored(store, rid):
    with store.session() as s:
        return repo.row_exchange(repo.get_recording(s, rid))


def revision(store, tape):
    with store.session() as s:
        return repo.require_tape(s, tape).revision


async def test_patch_status_body_and_note_keeps_encoding_and_length(client, store):
    raw = b'{"price": 10}'
    (rid,) = store.add("t", make_exchange(
        body=gzip.compress(raw),
        headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
                 ("Content-Length", str(len(gzip.compress(raw))))),
    ))
    rev = revision(store, "t")
    r = await client.patch(f"/api/recordings/{rid}", json={
        "status": 503, "body": {"encoding": "json", "content": {"price": 0, "free": True}},
        "note": "sale",
    })
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["response"]["status"] == 503 and doc["response"]["reason"] == "Service Unavailable"
    assert doc["response"]["body"] == {"encoding": "json",
                                       "content": {"price": 0, "free": True}}
    assert doc["note"] == "sale"
    resp = stored(store, rid).response
    assert resp.header("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(resp.body)) == {"price": 0, "free": True}
    assert resp.header("content-length") == str(len(resp.body))
    assert revision(store, "t") > rev  # replay indexes reload
    # the list and the q filter follow the edit
    item = (await client.get("/api/recordings", params={"q": "free"})).json()["items"][0]
    assert item["id"] == rid and item["status"] == 503
    assert item["response_size"] == len(resp.body)


async def test_patch_headers_without_content_encoding_stores_plain(client, store):
    raw = b"hello world"
    (rid,) = store.add("t", make_exchange(
        body=gzip.compress(raw),
        headers=(("Content-Type", "text/plain"), ("Content-Encoding", "gzip"),
                 ("Content-Length", "31")),
    ))
    r = await client.patch(f"/api/recordings/{rid}", json={
        "headers": [["Content-Type", "text/plain"], ["Content-Length", "0"], ["X-New", "1"]],
    })
    assert r.status_code == 200, r.text
    resp = stored(store, rid).response
    assert resp.body == raw
    assert resp.headers == (("Content-Type", "text/plain"), ("Content-Length", "11"),
                            ("X-New", "1"))
    # and the other way: ask for br, the body is compressed to match
    r = await client.patch(f"/api/recordings/{rid}", json={
        "headers": [["Content-Type", "text/plain"], ["Content-Encoding", "br"],
                    ["Content-Length", "11"]],
    })
    resp = stored(store, rid).response
    assert brotli.decompress(resp.body) == raw
    assert resp.header("content-length") == str(len(resp.body))
    assert r.json()["response"]["body"] == {"encoding": "text", "content": "hello world"}


async def test_patch_a_failure_into_a_response_and_bad_edits(client, store):
    (rid,) = store.add("t", make_exchange(response=None,
                                          failure=Failure(FailureKind.TIMEOUT, "slow")))
    r = await client.patch(f"/api/recordings/{rid}", json={"body": {"encoding": "text",
                                                                     "content": "x"}})
    assert r.status_code == 422 and "give a status" in r.json()["detail"]
    r = await client.patch(f"/api/recordings/{rid}", json={
        "status": 200, "body": {"encoding": "text", "content": "ok"}})
    assert r.status_code == 200, r.text
    assert r.json()["failure"] is None and r.json()["response"]["status"] == 200
    resp = stored(store, rid).response
    assert resp.body == b"ok" and resp.header("content-length") == "2"

    for bad in (
        {"status": 42},
        {"body": {"encoding": "base64", "content": "***"}},
        {"body": {"encoding": "text", "content": 5}},
        {"body": {"encoding": "utf-16", "content": "x"}},
        {"headers": [["Bad Name", "x"]]},
        {"headers": [["X-Ok", "line\r\nbreak"]]},
        {"headers": [["Content-Encoding", "zstd"]], "body": {"encoding": "text", "content": "x"}},
        {"unknown": 1},
    ):
        r = await client.patch(f"/api/recordings/{rid}", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert isinstance(r.json()["detail"], str)
    r = await client.patch("/api/recordings/999999", json={"note": "x"})
    assert r.status_code == 404


async def test_patch_is_redacted_like_recorded_traffic(client, store):
    (rid,) = store.add("t", make_exchange())
    r = await client.patch(f"/api/recordings/{rid}", json={
        "headers": [["Content-Type", "application/json"], ["Set-Cookie", "sid=secret"]],
        "body": {"encoding": "json", "content": {"access_token": "abc", "ok": True}},
    })
    assert r.status_code == 200
    resp = stored(store, rid).response
    assert b"abc" not in resp.body and b"secret" not in json.dumps(resp.headers).encode()


async def test_delete_one_renumbers_its_key(client, store):
    ids = store.add("t", *[make_exchange(body=f'{{"n": {i}}}', ns=NS + i) for i in range(3)])
    r = await client.delete(f"/api/recordings/{ids[0]}", headers=JSON)
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/api/recordings/{ids[0]}")).status_code == 404
    assert (await client.delete(f"/api/recordings/{ids[0]}", headers=JSON)).status_code == 404
    items = (await client.get("/api/recordings", params={"tape": "t"})).json()["items"]
    assert [(i["id"], i["seq"]) for i in items] == [(ids[2], 1), (ids[1], 0)]


async def test_delete_by_filter(client, store):
    ids = store.add("t", make_exchange(status=500, ns=NS), make_exchange(status=200, ns=NS + 1),
                    make_exchange(status=500, url="http://api.test/x", ns=NS + 2))
    keep = store.add("u", make_exchange(status=500))
    r = await client.delete("/api/recordings", params={"tape": "t", "status": 500}, headers=JSON)
    assert r.status_code == 200 and r.json() == {"deleted": 2}
    left = (await client.get("/api/recordings")).json()["items"]
    assert sorted(i["id"] for i in left) == sorted([ids[1], *keep])
    assert [i["seq"] for i in left if i["id"] == ids[1]] == [0]
    r = await client.delete("/api/recordings", headers=JSON)
    assert r.status_code == 422 and "at least one filter" in r.json()["detail"]
    r = await client.delete("/api/recordings", params={"tape": "missing"}, headers=JSON)
    assert r.status_code == 404
    r = await client.delete("/api/recordings", params={"tape": "t", "q": "nothing-like-it"},
                            headers=JSON)
    assert r.json() == {"deleted": 0}


async def test_post_a_hand_written_recording(client, store):
    r = await client.post("/api/recordings", json={
        "tape": "hand",
        "request": {"method": "post", "url": "https://pay.test/charge?api_key=k1&x=1",
                    "headers": [["Content-Type", "application/json"],
                                ["Authorization", "Bearer live-secret"]],
                    "body": {"encoding": "json", "content": {"amount": 5, "password": "pw"}}},
        "response": {"status": 201,
                     "headers": [["Content-Type", "application/json"],
                                 ["Content-Encoding", "gzip"]],
                     "body": {"encoding": "json", "content": {"id": "ch_1"}}},
        "duration_ms": 20, "note": "written by hand",
    })
    assert r.status_code == 201, r.text
    doc = r.json()
    assert r.headers["location"] == f"/api/recordings/{doc['id']}"
    assert doc["tape"] == "hand" and doc["seq"] == 0 and doc["note"] == "written by hand"
    assert doc["request"]["method"] == "POST"
    assert doc["request"]["url"] == "https://pay.test/charge?api_key=REDACTED&x=1"
    assert ["Authorization", "REDACTED"] in doc["request"]["headers"]
    assert doc["request"]["body"]["content"] == {"amount": 5, "password": "REDACTED"}
    assert doc["response"]["reason"] == "Created"
    assert doc["response"]["body"] == {"encoding": "json", "content": {"id": "ch_1"}}
    ex = stored(store, doc["id"])
    assert gzip.decompress(ex.response.body) == b'{"id":"ch_1"}'
    assert ex.response.header("content-length") == str(len(ex.response.body))
    assert ex.request.port == 443 and ex.request.target == "/charge?api_key=REDACTED&x=1"
    with store.session() as s:
        blob = json.dumps([str(v) for v in s.get(m.Recording, doc["id"]).__dict__.values()])
    assert "live-secret" not in blob and '"pw"' not in blob and "k1" not in blob

    r = await client.post("/api/recordings", json={
        "request": {"url": "http://x.test/down"}, "failure": {"kind": "refused"}})
    assert r.status_code == 201 and r.json()["tape"] == "default"
    assert r.json()["failure"] == {"kind": "refused", "message": ""}

    for bad in (
        {"request": {"url": "http://x.test/"}},  # neither response nor failure
        {"request": {"url": "http://x.test/"}, "response": {}, "failure": {"kind": "reset"}},
        {"request": {"url": "ftp://x.test/"}, "response": {}},
        {"request": {"url": "http://x.test:99999/"}, "response": {}},
        {"request": {"url": "http://:80/"}, "response": {}},
        {"tape": "../up", "request": {"url": "http://x.test/"}, "response": {}},
        {"request": {"url": "http://x.test/", "method": "G T"}, "response": {}},
    ):
        r = await client.post("/api/recordings", json=bad)
        assert r.status_code == 422, (bad, r.text)
