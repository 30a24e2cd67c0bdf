"""The list filters give the same answers whichever index serves them.

The repository picks, per filter, between walking ids newest-first and an index on the filter
(trigram text search, path prefix, time range), by counting matches up to a threshold. Here
the threshold is set very low and very high so both ways run on the same data, and both
must match a plain Python filter, page after page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from wiretape.storage import repository as repo
from wiretape.storage.repository import listing

from tests.api.conftest import JSON, make_exchange

pytestmark = pytest.mark.anyio

NS = 1_700_000_000_000_000_000
WORDS = ["alpha", "beta", "gamma", "delta", "Épée", "100%", "snake_case"]


def seed(store) -> list[dict]:
    rows = []
    exchanges = []
    for i in range(60):
        word = WORDS[i % len(WORDS)]
        path = ["/api/items", "/api/orders", "/health", "/api/items/special"][i % 4]
        ex = make_exchange(
            method="POST" if i % 5 == 0 else "GET",
            url=f"http://{'a' if i % 3 else 'b'}.test{path}/{i}",
            status=404 if i % 7 == 0 else 200,
            body=json.dumps({"n": i, "word": word}, ensure_ascii=False),
            ns=NS + i * 10**9,
        )
        exchanges.append(ex)
        rows.append({"path": f"{path}/{i}", "word": word.lower(), "at": NS + i * 10**9,
                     "method": ex.request.method, "host": ex.request.host,
                     "status": ex.response.status})
    ids = store.add("t", *exchanges)
    store.add("other", *exchanges[:10])
    for rid, row in zip(ids, rows, strict=True):
        row["id"] = rid
    return rows


def at(i: int) -> str:
    return datetime.fromtimestamp((NS + i * 10**9) / 1e9, UTC).isoformat()


CASES = [
    ({"q": "gamma"}, lambda r: r["word"] == "gamma"),
    ({"q": "GAMMA"}, lambda r: r["word"] == "gamma"),
    ({"q": "épée"}, lambda r: r["word"] == "épée"),
    ({"q": "100%"}, lambda r: r["word"] == "100%"),
    ({"q": "snake_case"}, lambda r: r["word"] == "snake_case"),
    ({"q": "ta"}, lambda r: "ta" in r["word"]),  # short: no trigram
    ({"q": '"word"'}, lambda r: True),  # every body
    ({"q": "nothing-like-it"}, lambda r: False),
    ({"path": "/api/items/special"}, lambda r: r["path"].startswith("/api/items/special")),
    ({"path": "/api/items"}, lambda r: r["path"].startswith("/api/items")),
    ({"path": "/API"}, lambda r: False),
    ({"path": "/api/orders/1"}, lambda r: r["path"].startswith("/api/orders/1")),
    ({"since": at(50)}, lambda r: r["at"] >= NS + 50 * 10**9),
    ({"since": at(3)}, lambda r: r["at"] >= NS + 3 * 10**9),
    ({"until": at(4)}, lambda r: r["at"] < NS + 4 * 10**9),
    ({"since": at(10), "until": at(20)}, lambda r: NS + 10 * 10**9 <= r["at"] < NS + 20 * 10**9),
    ({"q": "alpha", "path": "/api", "method": "GET"},
     lambda r: r["word"] == "alpha" and r["path"].startswith("/api") and r["method"] == "GET"),
    ({"q": "beta", "since": at(30), "status": 200},
     lambda r: r["word"] == "beta" and r["at"] >= NS + 30 * 10**9 and r["status"] == 200),
]


@pytest.mark.parametrize("few", [3, 1_000_000], ids=["index", "walk"])
async def test_filters_agree_with_python_page_by_page(client, store, monkeypatch, few):
    monkeypatch.setattr(listing, "_FEW", few)
    rows = seed(store)
    for params, keep in CASES:
        expected = sorted((r["id"] for r in rows if keep(r)), reverse=True)
        got, cursor = [], None
        while True:
            query = {"tape": "t", "limit": 4, **params, **({"cursor": cursor} if cursor else {})}
            page = await client.get("/api/recordings", params=query)
            assert page.status_code == 200, (params, page.text)
            got += [i["id"] for i in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert got == expected, params


async def test_sqlite_has_a_trigram_index_and_uses_it(client, store, db_url):
    if not db_url.startswith("sqlite"):
        with store.session() as s:
            names = s.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'recordings'")).scalars()
            assert "ix_recordings_search_trgm" in set(names)
        return
    seed(store)
    with store.session() as s:
        assert listing._has_fts(s)
        w = listing.filter_conditions(s, repo.RecordingFilter(tape="t", q="gamma"))
        assert w.narrow  # the FTS5 table answered
        plan = " ".join(str(r) for r in s.execute(text(
            "EXPLAIN QUERY PLAN SELECT rowid FROM recordings_fts "
            "WHERE search_text LIKE '%gamma%'")))
        assert "VIRTUAL TABLE INDEX" in plan


async def test_the_text_index_follows_edits_deletes_and_copies(client, store):
    (rid,) = store.add("t", make_exchange(body='{"colour": "vermilion"}'))
    assert [i["id"] for i in (await client.get(
        "/api/recordings", params={"q": "vermilion"})).json()["items"]] == [rid]
    await client.patch(f"/api/recordings/{rid}",
                       json={"body": {"encoding": "json", "content": {"colour": "teal"}}})
    assert (await client.get("/api/recordings", params={"q": "vermilion"})).json()["items"] == []
    assert len((await client.get("/api/recordings", params={"q": "teal"})).json()["items"]) == 1
    await client.post("/api/tapes/t/copy", json={"to": "u"})
    found = (await client.get("/api/recordings", params={"q": "teal"})).json()["items"]
    assert sorted(i["tape"] for i in found) == ["t", "u"]
    await client.delete(f"/api/recordings/{rid}", headers=JSON)
    await client.delete("/api/tapes/u", headers=JSON)
    assert (await client.get("/api/recordings", params={"q": "teal"})).json()["items"] == []
