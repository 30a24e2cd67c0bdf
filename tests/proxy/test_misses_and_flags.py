"""End to end through the real proxy: replay misses and --on-miss; serve's flags and environment."""

from __future__ import annotations

import os
import subprocess

import pytest
from wiretape.storage import models as m

from tests.helpers import WIRETAPE_BIN, Reply, stored_recordings, wait_for


def recordings(url: str, tape: str = "default") -> list[m.Recording]:
    return stored_recordings(url, tape)


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
