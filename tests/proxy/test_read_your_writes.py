"""Read-your-writes in one `serve` process: once a response has gone out, the exchange (or
the miss) is in what the admin API lists, although a batching writer stores it."""

from __future__ import annotations

from tests.helpers import Reply, Upstream

ROUNDS = 15  # the writer lingers ~20 ms per batch: without the flush most rounds would fail


def test_a_recorded_exchange_is_listed_as_soon_as_it_was_answered(sqlite_url, serve,
                                                                   upstream: Upstream):
    upstream.route("GET /n", lambda seen: Reply(200, seen.path))
    rec = serve(sqlite_url)
    with rec.client() as c:
        for i in range(ROUNDS):
            assert c.get(f"{upstream.url}/n?i={i}").status_code == 200
            page = rec.api("GET", "/api/recordings", params={"tape": "default"}).json()
            assert len(page["items"]) == i + 1
            assert page["items"][0]["url"] == f"{upstream.url}/n?i={i}"
            one = rec.api("GET", f"/api/recordings/{page['items'][0]['id']}")
            assert one.status_code == 200


def test_a_miss_is_journaled_as_soon_as_it_was_answered(sqlite_url, serve, upstream: Upstream):
    rep = serve(sqlite_url, "--mode", "replay")
    with rep.client() as c:
        for i in range(ROUNDS):
            assert c.get(f"{upstream.url}/missing?i={i}").status_code == 502
            misses = rep.api("GET", "/api/misses").json()
            assert len(misses) == i + 1
            assert misses[0]["request"]["url"] == f"{upstream.url}/missing?i={i}"
