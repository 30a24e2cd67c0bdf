"""End to end: record through the real proxy, stop the upstream, replay, miss."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests
from sqlalchemy import select
from wiretape.storage import db
from wiretape.storage import models as m

from tests.helpers import WIRETAPE_BIN, Reply, Seen, stored_recordings, wait_for


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


def test_miss_answers_502_with_closest_and_is_journaled(db_url, upstream, serve):
    upstream.route("GET /items", Reply(200, {"ok": True}))
    rec = serve(db_url)
    with rec.client() as c:
        c.get(f"{upstream.url}/items?page=1")
        c.get(f"{upstream.url}/other")
    rec.stop()
    rep = serve(db_url, "--mode", "replay")
    with rep.client() as c:
        r = c.get(f"{upstream.url}/items?page=3")
    assert r.status_code == 502
    assert r.headers["wiretape"] == "miss"
    body = r.json()
    assert body["error"] == "no recording matches"
    assert body["tape"] == "default"
    assert body["request"] == {"method": "GET", "url": f"{upstream.url}/items?page=3"}
    assert body["closest"][0]["url"] == f"{upstream.url}/items?page=1"
    assert body["closest"][0]["differences"] == ["query param 'page': '3' != '1'"]
    assert len(body["closest"]) == 2
    assert body["closest"][1]["differences"][0] == "path: '/items' != '/other'"

    def journaled() -> bool:
        return bool(rep.api("GET", "/api/misses").json())

    wait_for(journaled, 10, "the miss to be journaled")
    misses = rep.api("GET", "/api/misses").json()
    assert misses[0]["request"]["url"] == f"{upstream.url}/items?page=3"
    assert misses[0]["closest"][0]["differences"] == ["query param 'page': '3' != '1'"]


def test_a_repeated_miss_follows_the_tape_as_it_changes(db_url, upstream, serve):
    upstream.route("GET /items", Reply(200, {"ok": True}))
    rec = serve(db_url)
    with rec.client() as c:
        c.get(f"{upstream.url}/items?page=1")
    rec.stop()
    upstream.stop()
    rep = serve(db_url, "--mode", "replay")
    url = f"{upstream.url}/items?page=3&size=5"
    with rep.client() as c:
        first = c.get(url).json()["closest"]
        assert c.get(url).json()["closest"] == first  # the same miss, the same answer
        assert first[0]["url"] == f"{upstream.url}/items?page=1"
        # a closer recording appears: the next identical miss names it
        rep.api("POST", "/api/recordings", json={
            "request": {"method": "GET", "url": f"{upstream.url}/items?page=3"},
            "response": {"status": 200, "body": {"encoding": "text", "content": "p3"}},
        }).raise_for_status()
        again = c.get(url).json()["closest"]
    assert again[0]["url"] == f"{upstream.url}/items?page=3"
    assert again[0]["differences"] == ["query param 'size' not recorded (sent '5')"]


def test_replay_sends_nothing_upstream_even_on_a_miss(sqlite_url, serve):
    # a listening socket: replay must never connect to it
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.settimeout(10)
    port = lsock.getsockname()[1]
    try:
        rep = serve(sqlite_url, "--mode", "replay")
        with rep.client() as c:
            r = c.get(f"http://127.0.0.1:{port}/never-recorded")
        assert r.status_code == 502 and r.headers["wiretape"] == "miss"
        # the accept queue keeps arrival order: a connection from the proxy would be first
        with socket.create_connection(("127.0.0.1", port)) as mine:
            first, peer = lsock.accept()
            first.close()
            assert peer == mine.getsockname()
    finally:
        lsock.close()


def test_sequences_replay_in_seq_order_and_reset(db_url, upstream, serve):
    states = iter(["pending", "pending", "confirmed"])
    upstream.route("GET /payment/7", lambda _s: Reply(200, {"state": next(states)}))
    rec = serve(db_url, "--tape", "payments")
    with rec.client() as c:
        for _ in range(3):
            c.get(f"{upstream.url}/payment/7")
    rec.stop()
    assert [r.seq for r in recordings(db_url, "payments")] == [0, 1, 2]
    upstream.stop()

    def run(*args: str) -> list[str]:
        s = serve(db_url, "--mode", "replay", "--tape", "payments", *args)
        with s.client() as c:
            out = []
            for _ in range(5):
                r = c.get(f"{upstream.url}/payment/7")
                out.append(r.json()["state"] if r.status_code == 200 else str(r.status_code))
        return out

    # repeat-last (the default) and cycle are also covered by the ReplayIndex unit tests
    assert run("--sequence", "strict") == ["pending", "pending", "confirmed", "502", "502"]

    s = serve(db_url, "--mode", "replay", "--tape", "payments")
    with s.client() as c:
        got = [c.get(f"{upstream.url}/payment/7").json()["state"] for _ in range(5)]
        assert got == ["pending", "pending", "confirmed", "confirmed", "confirmed"]
        assert s.api("POST", "/api/replay/reset", json={}).status_code == 200
        wait_for(lambda: c.get(f"{upstream.url}/payment/7").json()["state"] == "pending",
                 5, "sequence reset")
        assert c.get(f"{upstream.url}/payment/7").json()["state"] == "pending"
        assert c.get(f"{upstream.url}/payment/7").json()["state"] == "confirmed"


def test_gzip_body_replayed_byte_for_byte(sqlite_url, upstream, serve):
    payload = gzip.compress(b'{"big": "' + b"x" * 5000 + b'"}', mtime=0)
    upstream.route("GET /gz", Reply(200, payload, {"Content-Encoding": "gzip",
                                                    "Content-Type": "application/json"}))
    rec = serve(sqlite_url)
    with rec.client() as c:
        live = c.get(f"{upstream.url}/gz", headers={"Accept-Encoding": "gzip"})
    rec.stop()
    upstream.stop()
    rep = serve(sqlite_url, "--mode", "replay")
    with rep.client() as c, c.stream("GET", f"{upstream.url}/gz") as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
    assert raw == payload
    assert live.json() == {"big": "x" * 5000}


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


def record_a(url: str, upstream, serve) -> None:  # type: ignore[no-untyped-def]
    """A tape holding GET /a; the upstream also answers GET /b."""
    upstream.route("GET /a", Reply(200, "A"))
    upstream.route("GET /b", Reply(200, "B"))
    rec = serve(url)
    with rec.client() as c:
        c.get(f"{upstream.url}/a")
    rec.stop()


def test_on_miss_forward_answers_misses_live_without_recording(sqlite_url, upstream, serve):
    record_a(sqlite_url, upstream, serve)
    spy = serve(sqlite_url, "--mode", "replay", "--on-miss", "forward")
    with spy.client() as c:
        assert c.get(f"{upstream.url}/a").headers.get("wiretape-recording")
        r = c.get(f"{upstream.url}/b")
        assert r.text == "B" and "wiretape-recording" not in r.headers
    spy.stop()
    assert [r.path for r in recordings(sqlite_url)] == ["/a"]


def test_on_miss_record_records_misses_for_the_next_replay(sqlite_url, upstream, serve):
    record_a(sqlite_url, upstream, serve)
    learn = serve(sqlite_url, "--mode", "replay", "--on-miss", "record")
    with learn.client() as c:
        assert c.get(f"{upstream.url}/b").text == "B"
    learn.stop()
    assert [r.path for r in recordings(sqlite_url)] == ["/a", "/b"]
    upstream.stop()
    again = serve(sqlite_url, "--mode", "replay")
    with again.client() as c:
        r = c.get(f"{upstream.url}/b")
    assert r.status_code == 200 and r.text == "B" and r.headers["wiretape-recording"]


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


def test_http_proxy_env_with_requests_and_curl(tmp_path, upstream, serve):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    upstream.route("GET /env", Reply(200, {"via": "env"}))
    rec = serve(url)
    env = {**os.environ, "HTTP_PROXY": rec.proxy, "http_proxy": rec.proxy, "NO_PROXY": ""}
    # requests honours HTTP_PROXY from the environment (its default trust_env)
    with requests.Session() as sess:
        sess.proxies = requests.utils.get_environ_proxies(upstream.url) or {}
        sess.trust_env = False
    out = subprocess.run(
        ["curl", "-s", f"{upstream.url}/env"], env={**env, "no_proxy": ""},
        capture_output=True, check=True,
    ).stdout
    assert json.loads(out) == {"via": "env"}
    rec.stop()
    upstream.stop()
    rep = serve(url, "--mode", "replay")
    r = requests.get(f"{upstream.url}/env", proxies={"http": rep.proxy}, timeout=10)
    assert r.status_code == 200 and r.json() == {"via": "env"}
    assert r.headers["Wiretape-Recording"]
    out = subprocess.run(
        ["curl", "-s", "-i", f"{upstream.url}/env"],
        env={**os.environ, "http_proxy": rep.proxy, "no_proxy": ""},
        capture_output=True, check=True,
    ).stdout.decode()
    assert out.startswith("HTTP/1.1 200") and "Wiretape-Recording:" in out
    miss = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{upstream.url}/nope"],
        env={**os.environ, "http_proxy": rep.proxy, "no_proxy": ""},
        capture_output=True, check=True,
    ).stdout.decode()
    assert miss == "502"


def test_mode_change_at_run_time_is_followed(db_url, upstream, serve):
    upstream.route("GET /m", Reply(200, "live"))
    s = serve(db_url)
    with s.client() as c:
        c.get(f"{upstream.url}/m")
        assert s.api("PUT", "/api/mode", json={"mode": "replay"}).json()["mode"] == "replay"
        wait_for(lambda: "wiretape-recording" in c.get(f"{upstream.url}/m").headers, 3,
                 "replay mode")
        assert s.api("GET", "/api/health").json()["mode"] == "replay"


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


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "replai"], "'replai' is not one of 'record', 'replay', 'passthrough'"),
        (["--on-miss", "explode"], "'explode' is not one of 'error', 'forward', 'record'"),
        (["--sequence", "loop"], "'loop' is not one of"),
        (["--listen", "localhost"], "--listen 'localhost' must be HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "must be between 0 (any free port) and 65535"),
        (["--db", "mysql://x/y"], "sqlite:/// or postgresql+psycopg:// URL"),
        (["--db", "not a url"], "is not a database URL"),
        (["--tape", "../etc"], "tape name '../etc' must be"),
        (["--admin", "0.0.0.0:9000"], "is not a loopback address: set --token"),
        (["--upstream", "orders:8080"], "must be a base URL"),
        (["--ignore-host", "(["], "is not a valid regular expression"),
        (["--replay-latency", "slow"], "must be none, recorded or a number of milliseconds"),
        (["--replay-latency", "700000"], "--replay-latency must be between 0 and 600000 ms"),
        (["--ignore-body-path", "timestamp"], "must start with '$'"),
        (["--match-header", "a b"], "header name 'a b' is not valid"),
        (["--bogus-flag"], "No such option '--bogus-flag'"),
    ],
)
def test_bad_flag_values_are_one_line_and_exit_2(tmp_path, args, message):
    proc = subprocess.run(
        [WIRETAPE_BIN, "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", *args]
        if "--db" not in args else [WIRETAPE_BIN, "serve", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert args[0] in lines[0]  # the line names the flag
    assert "Traceback" not in proc.stderr


def test_environment_variables_configure_serve_and_flags_win(tmp_path, upstream):
    from tests.helpers import Serve

    upstream.route("GET /e", Reply(200, "e"))
    url = f"sqlite:///{tmp_path / 'e.db'}"
    s = Serve(url, "--tape", "from-flag", workdir=tmp_path,
              env={"WIRETAPE_TAPE": "from-env", "WIRETAPE_MODE": "replay",
                   "WIRETAPE_ON_MISS": "forward"}).ready()
    try:
        health = s.api("GET", "/api/health").json()
        assert health["tape"] == "from-flag" and health["mode"] == "replay"
        assert s.api("GET", "/api/mode").json()["on_miss"] == "forward"
        with s.client() as c:
            assert c.get(f"{upstream.url}/e").text == "e"  # forwarded on miss
    finally:
        assert s.stop() == 0
    bad = subprocess.run([WIRETAPE_BIN, "serve", "--db", url], capture_output=True, text=True,
                         env={**os.environ, "WIRETAPE_MODE": "nope"}, cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and "WIRETAPE_MODE" in bad.stderr


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


def test_many_distinct_requests_replay_from_memory(sqlite_url, upstream, serve):
    upstream.route("GET /many", lambda seen: Reply(200, {"p": seen.path}))
    rec = serve(sqlite_url, "--tape", "many")
    with rec.client() as c:
        for i in range(60):
            c.get(f"{upstream.url}/many?i={i}")
    rec.stop()
    upstream.stop()
    rep = serve(sqlite_url, "--mode", "replay", "--tape", "many")
    with rep.client() as c:
        for i in (0, 59, 30):
            assert c.get(f"{upstream.url}/many?i={i}").json() == {"p": f"/many?i={i}"}
    assert "replay index: tape many, 60 recordings" in rep.log()


def test_httpx_through_proxy_keeps_connection_alive(sqlite_url, upstream, serve):
    upstream.route("GET /ka", Reply(200, "ka"))
    rec = serve(sqlite_url)
    with httpx.Client(proxy=rec.proxy, trust_env=False) as c:
        assert [c.get(f"{upstream.url}/ka").text for _ in range(5)] == ["ka"] * 5
