"""End to end through the real proxy: what recording stores, redacts and keeps."""

from __future__ import annotations

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from wiretape.storage import db
from wiretape.storage import models as m

from tests.helpers import Reply, Seen, stored_recordings


def recordings(url: str, tape: str = "default") -> list[m.Recording]:
    return stored_recordings(url, tape)


def test_record_then_replay_without_upstream(db_url, upstream, serve):
    upstream.route("GET /items", Reply(200, {"items": [1, 2]}, {"X-Origin": "real"}))
    upstream.route("POST /orders", lambda seen: Reply(201, {"echo": json.loads(seen.body)}))
    rec = serve(db_url)
    with rec.client() as c:
        r1 = c.get(f"{upstream.url}/items?page=1&size=10")
        r2 = c.post(f"{upstream.url}/orders", content=b'{"b": 2, "a": 1}',
                    headers={"Content-Type": "application/json"})
    assert r1.status_code == 200 and r1.json() == {"items": [1, 2]}
    assert r1.headers["x-origin"] == "real" and "wiretape-recording" not in r1.headers
    assert r2.status_code == 201 and r2.json() == {"echo": {"b": 2, "a": 1}}
    assert rec.stop() == 0
    rows = recordings(db_url)
    assert [(r.method, r.path, r.status, r.seq) for r in rows] == [
        ("GET", "/items", 200, 0), ("POST", "/orders", 201, 0)]
    assert rows[0].response_body == b'{"items": [1, 2]}'
    assert rows[0].duration_ms > 0 and rows[0].recorded_at is not None
    assert rows[0].match_key and rows[0].match_key != rows[1].match_key

    hits = len(upstream.seen)
    upstream.stop()
    rep = serve(db_url, "--mode", "replay")
    with rep.client() as c:
        # query order, JSON key order and whitespace do not matter
        a = c.get(f"{upstream.url}/items?size=10&page=1")
        b = c.post(f"{upstream.url}/orders", content=b'{ "a":1,\n "b":2 }',
                   headers={"Content-Type": "application/json"})
    assert a.status_code == 200 and a.content == b'{"items": [1, 2]}'
    assert a.headers["x-origin"] == "real"
    assert a.headers["wiretape-recording"] == str(rows[0].id)
    assert b.status_code == 201 and b.headers["wiretape-recording"] == str(rows[1].id)
    assert len(upstream.seen) == hits


def test_secrets_are_redacted_and_do_not_take_part_in_matching(db_url, upstream, serve):
    upstream.route("POST /login", Reply(200, {"access_token": "tok-SECRET-1", "user": "ann"},
                                        {"Set-Cookie": "session=COOKIE-SECRET"}))
    rec = serve(db_url, "--redact-header", "X-Tenant-Key", "--redact-json", "pin")
    with rec.client() as c:
        live = c.post(
            f"{upstream.url}/login?api_key=QUERY-SECRET&x=1",
            json={"user": "ann", "password": "PW-SECRET", "pin": "PIN-SECRET"},
            headers={"Authorization": "Bearer AUTH-SECRET", "X-Tenant-Key": "TENANT-SECRET",
                     "Cookie": "c=COOKIE2-SECRET"},
        )
    assert live.json()["access_token"] == "tok-SECRET-1"  # the client gets the real answer
    rec.stop()
    # nothing secret anywhere in the database
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        dump = []
        for table in m.Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                dump.append(repr(tuple(row)))
    engine.dispose()
    text = "\n".join(dump)
    assert "REDACTED" in text
    for secret in ("tok-SECRET-1", "COOKIE-SECRET", "QUERY-SECRET", "PW-SECRET", "PIN-SECRET",
                   "AUTH-SECRET", "TENANT-SECRET", "COOKIE2-SECRET"):
        assert secret not in text, secret
    upstream.stop()
    rep = serve(db_url, "--mode", "replay", "--redact-json", "pin")
    with rep.client() as c:
        # other secret values still match the recording
        r = c.post(f"{upstream.url}/login?x=1&api_key=OTHER",
                   json={"password": "other", "user": "ann", "pin": "0000"})
    assert r.status_code == 200 and r.json() == {"access_token": "REDACTED", "user": "ann"}


def test_sigterm_and_sigint_write_every_captured_exchange(db_url, upstream, serve):
    upstream.route("GET /n", Reply(200, "ok"))
    for sig in (signal.SIGTERM, signal.SIGINT):
        tape = f"t{int(sig)}"
        rec = serve(db_url, "--tape", tape)
        with rec.client() as c:
            for i in range(40):
                assert c.get(f"{upstream.url}/n?i={i}").status_code == 200
        assert rec.stop(sig) == 0
        assert sorted(int(r.target.split("=")[1]) for r in recordings(db_url, tape)) == list(
            range(40))


def test_32_concurrent_clients_lose_and_duplicate_nothing(db_url, upstream, serve):
    upstream.route("GET /c", lambda seen: Reply(200, {"q": seen.path}))
    rec = serve(db_url, "--tape", "conc")
    per_client = 15

    def client(n: int) -> list[int]:
        with rec.client() as c:
            return [c.get(f"{upstream.url}/c?client={n}&i={i}").status_code
                    for i in range(per_client)]

    with ThreadPoolExecutor(32) as pool:
        statuses = [s for lst in pool.map(client, range(32)) for s in lst]
    assert statuses == [200] * 32 * per_client
    assert rec.stop() == 0
    targets = [r.target for r in recordings(db_url, "conc")]
    assert len(targets) == 32 * per_client
    assert len(set(targets)) == 32 * per_client


def test_same_key_from_concurrent_clients_gets_seq_in_capture_order(db_url, upstream, serve):
    counter = iter(range(10_000))
    lock = threading.Lock()

    def numbered(_seen: Seen) -> Reply:
        with lock:
            return Reply(200, {"n": next(counter)})

    upstream.route("GET /same", numbered)
    rec = serve(db_url, "--tape", "same")
    with ThreadPoolExecutor(16) as pool:
        def hit(_i: int) -> None:
            with rec.client() as c:
                for _ in range(5):
                    c.get(f"{upstream.url}/same")
        list(pool.map(hit, range(16)))
    rec.stop()
    rows = recordings(db_url, "same")
    assert len(rows) == 80
    by_seq = sorted(rows, key=lambda r: r.seq)
    assert [r.seq for r in by_seq] == list(range(80))
    # seq follows capture order
    assert [r.captured_ns for r in by_seq] == sorted(r.captured_ns for r in rows)


def test_two_processes_on_one_database_keep_seq_in_capture_order(db_url, upstream, serve):
    n = iter(range(1000))
    upstream.route("GET /k", lambda _s: Reply(200, {"n": next(n)}))
    a = serve(db_url, "--tape", "shared")
    b = serve(db_url, "--tape", "shared")
    with a.client() as ca, b.client() as cb:
        for i in range(10):
            (ca if i % 2 == 0 else cb).get(f"{upstream.url}/k")
    a.stop()
    b.stop()
    rows = sorted(recordings(db_url, "shared"), key=lambda r: r.seq)
    assert [r.seq for r in rows] == list(range(10))
    assert [json.loads(r.response_body)["n"] for r in rows] == list(range(10))


def test_overwrite_empties_the_tape_first(sqlite_url, upstream, serve):
    upstream.route("GET /x", Reply(200, "x"))
    for args in ((), ("--overwrite",)):
        s = serve(sqlite_url, *args)
        with s.client() as c:
            c.get(f"{upstream.url}/x")
        s.stop()
    assert len(recordings(sqlite_url)) == 1


def test_passthrough_stores_nothing(sqlite_url, upstream, serve):
    upstream.route("GET /p", Reply(200, "p"))
    s = serve(sqlite_url, "--mode", "passthrough")
    with s.client() as c:
        assert c.get(f"{upstream.url}/p").text == "p"
    s.stop()
    assert recordings(sqlite_url) == []


def test_upstream_unreachable_in_record_mode_is_recorded_not_lost(sqlite_url, serve,
                                                                  refusing_port):
    port = refusing_port
    rec = serve(sqlite_url)
    with rec.client() as c:
        live = c.get(f"http://127.0.0.1:{port}/down")
    assert live.status_code == 502
    rec.stop()
    rows = recordings(sqlite_url)
    assert len(rows) == 1 and rows[0].failure_kind == "refused" and rows[0].status is None
    rep = serve(sqlite_url, "--mode", "replay")
    with rep.client() as c:
        again = c.get(f"http://127.0.0.1:{port}/down")
    assert again.status_code == 502 and again.headers.get("wiretape") != "miss"
