"""End to end through the real proxy: replay with the upstream stopped, by real clients."""

from __future__ import annotations

import gzip
import json
import os
import subprocess

import httpx
import requests
from wiretape.storage import models as m

from tests.helpers import Reply, stored_recordings, wait_for


def recordings(url: str, tape: str = "default") -> list[m.Recording]:
    return stored_recordings(url, tape)


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
