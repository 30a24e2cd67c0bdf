"""The admin API inside a real `wiretape serve`: edits reach replay, processes sharing one
PostgreSQL follow a mode switch, --tape-file, the token, /metrics."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import new_pg_database
from tests.helpers import WIRETAPE_BIN, Reply


def _eventually(check, timeout: float = 2.0, step: float = 0.05):
    """Call `check` until it returns something truthy; the value and the seconds it took."""
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(step)


def test_an_edit_through_the_api_is_what_replay_serves(db_url, upstream, serve):
    body = gzip.compress(json.dumps({"price": 10, "currency": "EUR"}).encode())
    upstream.route("GET /price", Reply(200, body, {"Content-Type": "application/json",
                                                   "Content-Encoding": "gzip"}))
    wt = serve(db_url)
    with wt.client() as c:
        assert c.get(f"{upstream.url}/price").json()["price"] == 10
    # find it by a word in its body, as a user of /docs would
    _, _ = _eventually(lambda: wt.api("GET", "/api/recordings", params={"q": "eur"}
                                      ).json()["items"], timeout=5)
    (item,) = wt.api("GET", "/api/recordings", params={"q": "eur"}).json()["items"]
    assert wt.api("PUT", "/api/mode", json={"mode": "replay"}).status_code == 200
    upstream.stop()
    with wt.client() as c:
        r = c.get(f"{upstream.url}/price")
        assert r.headers["wiretape-recording"] == str(item["id"]) and r.json()["price"] == 10

        edit = wt.api("PATCH", f"/api/recordings/{item['id']}", json={
            "status": 202,
            "body": {"encoding": "json", "content": {"price": 0, "currency": "EUR"}},
        })
        assert edit.status_code == 200, edit.text
        # this process applies the edit before the API answers: the next request gets it
        r = c.get(f"{upstream.url}/price")
    assert r.status_code == 202
    assert r.json() == {"price": 0, "currency": "EUR"}
    assert r.headers["content-encoding"] == "gzip"  # still compressed, as recorded
    with wt.client() as c, c.stream("GET", f"{upstream.url}/price") as raw:
        data = b"".join(raw.iter_raw())
    assert int(raw.headers["content-length"]) == len(data)
    assert json.loads(gzip.decompress(data)) == {"price": 0, "currency": "EUR"}


def test_two_processes_on_one_postgresql_follow_a_mode_switch(pg_admin_url, upstream, serve):
    url = new_pg_database(pg_admin_url)
    upstream.route("GET /thing", lambda seen: Reply(200, {"n": len(upstream.seen)}))
    a = serve(url, "--tape", "shared")
    b = serve(url, "--tape", "shared")
    with a.client() as c:
        assert c.get(f"{upstream.url}/thing").status_code == 200
    _eventually(lambda: a.api("GET", "/api/recordings", params={"tape": "shared"}
                              ).json()["items"], timeout=5)

    r = a.api("PUT", "/api/mode", json={"mode": "replay", "tape": "shared", "on_miss": "error"})
    assert r.json() == {"mode": "replay", "tape": "shared", "on_miss": "error"}
    switched = time.monotonic()
    with b.client() as c:
        def b_replays():
            return "wiretape-recording" in c.get(f"{upstream.url}/thing").headers
        _eventually(b_replays, timeout=3.0)
    assert time.monotonic() - switched < 2.0
    assert b.api("GET", "/api/mode").json()["mode"] == "replay"

    # and the other way round: B changes the on-miss policy, A follows
    with a.client() as c:
        assert c.get(f"{upstream.url}/other").headers.get("wiretape") == "miss"
        b.api("PUT", "/api/mode", json={"on_miss": "forward"})
        switched = time.monotonic()

        def a_forwards():
            return c.get(f"{upstream.url}/other").headers.get("wiretape") != "miss"
        _eventually(a_forwards, timeout=3.0)
    assert time.monotonic() - switched < 2.0


def test_tape_file_loads_a_har_before_serving(db_url, new_db_url, upstream, serve, tmp_path):
    upstream.route("GET /catalog", Reply(200, {"items": ["a", "b"]}))
    rec = serve(db_url, "--tape", "src")
    with rec.client() as c:
        c.get(f"{upstream.url}/catalog?page=1")
    _eventually(lambda: rec.api("GET", "/api/tapes/src").json().get("recordings"), timeout=5)
    har = rec.api("GET", "/api/tapes/src/export")
    assert har.status_code == 200
    rec.stop()
    upstream.stop()
    path = tmp_path / "tape.har"
    path.write_bytes(har.content)

    store = new_db_url()
    for _ in range(2):  # a restart loads the same file again: the tape does not grow
        ci = serve(store, "--mode", "replay", "--tape", "ci", "--tape-file", str(path))
        with ci.client() as c:
            r = c.get(f"{upstream.url}/catalog?page=1")
        assert r.status_code == 200 and r.json() == {"items": ["a", "b"]}
        assert "wiretape-recording" in r.headers
        assert ci.api("GET", "/api/tapes/ci").json()["recordings"] == 1
        ci.stop()


def _run_serve(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    full_env.update(env or {})
    return subprocess.run(
        [WIRETAPE_BIN, "serve", "--listen", "127.0.0.1:0", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120,
    )


@pytest.mark.parametrize("content, message", [
    (None, "No such file"),
    ("{not json", "not a HAR file"),
    ('{"log": {"entries": [{"request": {"method": "GET", "url": "nope"}, "response": {}}]}}',
     "log.entries[0].request.url"),
])
def test_a_bad_tape_file_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.har"
    if content is not None:
        path.write_text(content)
    p = _run_serve("--db", f"sqlite:///{tmp_path / 'w.db'}", "--admin",
                   "127.0.0.1:0", "--confdir", str(tmp_path / "conf"),
                   "--tape-file", str(path), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_a_non_loopback_admin_needs_a_token(tmp_path):
    p = _run_serve("--db", f"sqlite:///{tmp_path / 'w.db'}", "--admin", "0.0.0.0:0",
                   "--confdir", str(tmp_path / "conf"), cwd=tmp_path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0], p.stderr


def test_token_through_the_real_server(db_url, serve):
    wt = serve(db_url, env={"WIRETAPE_TOKEN": "tok-123"})
    assert wt.api("GET", "/api/health").status_code == 200
    for path in ("/api/recordings", "/api/tapes", "/api/mode", "/metrics", "/api/ca.pem",
                 "/api/tapes/default/export"):
        assert wt.api("GET", path).status_code == 401, path
        assert wt.api("GET", path, headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = wt.api("GET", path, headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200, (path, ok.text)
    # the CA of this very proxy
    pem = wt.api("GET", "/api/ca.pem", headers={"Authorization": "Bearer tok-123"}).text
    assert pem.startswith("-----BEGIN CERTIFICATE-----")


def test_metrics_count_what_the_proxy_did(db_url, upstream, serve):
    upstream.route("GET /m", Reply(200, {"ok": True}))
    wt = serve(db_url)
    with wt.client() as c:
        for _ in range(3):
            c.get(f"{upstream.url}/m")
    wt.api("PUT", "/api/mode", json={"mode": "replay"})
    with wt.client() as c:
        # this process applies the switch before the API answers: no request slips through
        assert "wiretape-recording" in c.get(f"{upstream.url}/m").headers
        c.get(f"{upstream.url}/missing")

    def sample(name, **labels):
        text = wt.api("GET", "/metrics").text
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return None

    assert sample("wiretape_requests_total", mode="record", outcome="recorded") == 3
    assert sample("wiretape_requests_total", mode="replay", outcome="replayed") >= 1
    assert sample("wiretape_requests_total", mode="replay", outcome="miss") >= 1
    assert sample("wiretape_request_duration_seconds_count", mode="record") == 3
    _eventually(lambda: sample("wiretape_recordings_written_total") == 3, timeout=5)
    assert sample("wiretape_write_queue_depth") == 0


def _raw(port: int, request: bytes) -> bytes:
    """Bytes as a browser whose page rebound its name to 127.0.0.1 would send them."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_dns_rebinding_and_cross_site_writes_through_the_real_server(sqlite_url, serve):
    """The real uvicorn: a page on attacker.example rebound to 127.0.0.1 can read nothing
    (421 on every route: API, export, metrics, docs, UI), token or not; its writes and
    cross-site writes from anywhere change nothing."""
    for env in ({}, {"WIRETAPE_TOKEN": "tok-123"}):
        wt = serve(sqlite_url, "--admin-host", "wiretape:8081", env=env)
        auth = {"Authorization": "Bearer tok-123"} if env else {}
        for path in ("/api/recordings", "/api/tapes/default/export", "/api/mode", "/metrics",
                     "/docs", "/ui/", "/api/misses", "/api/health"):
            for host in ("attacker.example", f"attacker.example:{wt.admin_port}"):
                r = wt.api("GET", path, headers={"Host": host, **auth})
                assert r.status_code == 421, (path, host, r.status_code)
                assert r.json()["detail"].startswith("this admin API does not answer")
            for host in (f"localhost:{wt.admin_port}", f"127.0.0.1:{wt.admin_port}",
                         "wiretape:8081"):
                assert wt.api("GET", path, headers={"Host": host, **auth}).status_code == 200
        # a rebound page's own write, sent as a browser sends it
        body = b'{"mode": "passthrough"}'
        answer = _raw(wt.admin_port, b"PUT /api/mode HTTP/1.1\r\nHost: attacker.example\r\n"
                      b"Origin: http://attacker.example\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        assert answer.startswith(b"HTTP/1.1 421 "), answer
        # a cross-site form post and a body-less POST (the audit that re-sends recorded
        # requests to live upstreams)
        form = wt.api("POST", "/api/replay/reset", content=b"x=1", headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site", **auth})
        assert form.status_code == 403
        bare = wt.api("POST", "/api/tapes/default/audit", headers=auth)
        assert bare.status_code == 415
        assert wt.api("GET", "/api/tapes/default/audits", headers=auth).json() == []
        assert wt.api("GET", "/api/mode", headers=auth).json()["mode"] == "record"
        wt.stop()


def test_admin_hosts_from_the_flag_or_the_variable(sqlite_url, serve, tmp_path):
    wt = serve(sqlite_url, env={"WIRETAPE_ADMIN_HOSTS": "wiretape:8081 other,third.internal"})
    for host in ("wiretape", "other:1", "third.internal"):
        assert wt.api("GET", "/api/tapes", headers={"Host": host}).status_code == 200, host
    assert wt.api("GET", "/api/tapes", headers={"Host": "fourth"}).status_code == 421
    wt.stop()
    for bad in ("http://wiretape:8081", "wire tape", "a/b"):
        p = _run_serve("--db", sqlite_url, "--admin", "127.0.0.1:0",
                       "--confdir", str(tmp_path / "conf"), "--admin-host", bad, cwd=tmp_path)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().splitlines() == [
            f"wiretape: error: --admin-host {bad!r} must be a host name such as wiretape or "
            "wiretape:8081 (or * for any)"]


@pytest.mark.parametrize(("token", "why"), [
    ("   ", "is only whitespace"), ("\t", "is only whitespace"),
    (" tok-123", "begins or ends with whitespace"),
])
def test_a_blank_token_is_refused(tmp_path, token, why):
    for args, env in ((["--token", token], {}), ([], {"WIRETAPE_TOKEN": token})):
        p = _run_serve("--db", f"sqlite:///{tmp_path / 'w.db'}", "--admin", "0.0.0.0:0",
                       "--confdir", str(tmp_path / "conf"), *args, cwd=tmp_path, env=env)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and f"--token {why}" in lines[0], p.stderr
