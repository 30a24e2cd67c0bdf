"""Streamed responses with real clients (curl, httpx over HTTP/2 and HTTPS, Node's fetch):
server-sent events reach the client as they come while recording, replay with their recorded
pacing, an endless stream the client left (or still open at shutdown) is stored as far as it
went and replayed that way, an upstream that broke off mid-stream breaks off in replay too,
and big bodies go through byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wiretape.storage import models as m
from wiretape.storage.bodies import BIG_BODY, PART_SIZE

from tests.drift.support import generous_durations, run
from tests.helpers import Serve, stored_recordings, wait_for
from tests.proxy.upstreams import Handler, Origin, RawServer, read_request_head

SCRIPTS = Path(__file__).parent / "scripts"
EVENTS = [b'data: {"n": 0}\n\n', b'event: tick\ndata: {"n": 1}\n\n', b'data: {"n": 2}\n\n']
DATA = ['data: {"n": 0}', 'data: {"n": 1}', 'data: {"n": 2}']
GAP = 0.5  # seconds between the paced events


# -- an upstream that streams ---------------------------------------------------------------

def sse_head(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Cache-Control", "no-cache")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()


def send_chunk(h: Handler, data: bytes) -> None:
    h.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
    h.wfile.flush()


def end_chunks(h: Handler) -> None:
    h.wfile.write(b"0\r\n\r\n")
    h.wfile.flush()


class Streaming(Origin):
    """/gated sends the first event, then waits for the test (`gate`) before the others:
    the client can only have the first event by then if the proxy passed it on. /paced
    sends the events GAP apart, /endless one every 50 ms until the client leaves."""

    def __init__(self, tls_dir: Path | None = None) -> None:
        super().__init__(tls_dir)
        self.gate = threading.Event()
        self.released: list[bool] = []  # per /gated request: did the test open the gate?
        self.route("GET /gated", self.gated)
        self.route("GET /paced", self.paced)
        self.route("GET /endless", self.endless)
        self.start()

    def gated(self, h: Handler) -> None:
        sse_head(h)
        send_chunk(h, EVENTS[0])
        self.released.append(self.gate.wait(20))
        for event in EVENTS[1:]:
            send_chunk(h, event)
        end_chunks(h)

    def paced(self, h: Handler) -> None:
        sse_head(h)
        for i, event in enumerate(EVENTS):
            if i:
                time.sleep(GAP)
            send_chunk(h, event)
        end_chunks(h)

    def endless(self, h: Handler) -> None:
        sse_head(h)
        try:
            for n in range(2000):
                send_chunk(h, b'data: {"n": %d}\n\n' % n)
                time.sleep(0.05)
        except OSError:
            return  # the proxy hung up: the client left


# -- clients: each yields (arrival time, data line) as the client reads them ----------------

Events = Iterator[tuple[float, str]]


def lines_of(proc: subprocess.Popen[bytes]) -> Events:
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                yield time.monotonic(), line
        assert proc.wait(30) == 0, f"{proc.args} exited with {proc.returncode}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def no_proxy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def curl_events(s: Serve, url: str) -> Events:
    return lines_of(subprocess.Popen(["curl", "-sfN", "-x", s.proxy, url],
                                     stdout=subprocess.PIPE, env=no_proxy_env()))


def httpx_h2_events(s: Serve, url: str) -> Events:
    ca = s.confdir / "mitmproxy-ca-cert.pem"
    with httpx.Client(proxy=s.proxy, verify=str(ca), http2=True, trust_env=False,
                      timeout=30) as c, c.stream("GET", url) as r:
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        for line in r.iter_lines():
            if line.startswith("data:"):
                yield time.monotonic(), line


def node_events(s: Serve, url: str) -> Events:
    # Node's fetch does not read HTTP_PROXY: it talks to wiretape in reverse mode
    path = url.split("/", 3)[3]
    return lines_of(subprocess.Popen(["node", str(SCRIPTS / "sse_client.mjs"),
                                      f"{s.proxy}/{path}"],
                                     stdout=subprocess.PIPE, env=no_proxy_env()))


CLIENTS = {"curl": curl_events, "httpx-h2": httpx_h2_events, "node": node_events}


def rows(url: str) -> list[m.Recording]:
    return stored_recordings(url)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.parametrize("client", list(CLIENTS))
def test_events_arrive_live_and_replay_with_their_pacing(client, sqlite_url, serve, tmp_path):
    if client == "node" and shutil.which("node") is None:
        pytest.fail("node is not installed (apt-get install -y nodejs)")
    tls = client == "httpx-h2"
    origin = Streaming(tmp_path / "tls" if tls else None)
    args = ["--upstream-insecure"] if tls else []
    if client == "node":
        args = ["--upstream", origin.url]
    read = CLIENTS[client]
    rec = serve(sqlite_url, *args)

    events = read(rec, f"{origin.url}/gated")
    first = next(events)  # the upstream is still holding the rest back
    origin.gate.set()
    live = [first, *events]
    assert origin.released == [True], "the first event reached the client only at the end"
    assert [line for _, line in live] == DATA
    paced_live = list(read(rec, f"{origin.url}/paced"))
    assert rec.stop() == 0
    origin.stop()

    gated, paced = rows(sqlite_url)
    stream = gated.response_stream
    assert stream is not None and stream["truncated"] is None
    assert [n for _, n in stream["chunks"]] == [len(e) for e in EVENTS]
    assert gated.response_body == b"".join(EVENTS)
    offsets = [o for o, _ in paced.response_stream["chunks"]]
    assert offsets == sorted(offsets)
    recorded_gaps = [g / 1000 for g in gaps(offsets)]
    assert all(g >= GAP - 0.05 for g in recorded_gaps), recorded_gaps

    rep = serve(sqlite_url, "--mode", "replay", "--replay-latency", "recorded", *args)
    again = list(read(rep, f"{origin.url}/paced"))
    assert [line for _, line in again] == [line for _, line in paced_live] == DATA
    replayed_gaps = gaps([t for t, _ in again])
    # the replay spreads them as recorded: never sooner than recorded (a replay that sends
    # everything at once fails here), and late only by what a loaded machine adds (a stall
    # fails); lateness is bounded generously, earliness tightly
    for recorded, replayed in zip(recorded_gaps, replayed_gaps, strict=True):
        assert recorded - 0.1 < replayed < recorded + 1.5, (recorded_gaps, replayed_gaps)
    # without pacing, the same chunks at once
    fast = serve(sqlite_url, "--mode", "replay", *args)
    assert [line for _, line in read(fast, f"{origin.url}/gated")] == DATA


def read_events(lines: Iterator[str], n: int) -> list[str]:
    out = []
    for line in lines:
        if line.startswith("data:"):
            out.append(line)
            if len(out) == n:
                break
    return out


def test_an_endless_stream_the_client_left_replays_what_was_seen(db_url, serve):
    origin = Streaming()
    rec = serve(db_url)
    with rec.client() as c, c.stream("GET", f"{origin.url}/endless") as r:
        seen = read_events(r.iter_lines(), 3)
    assert seen == [f'data: {{"n": {n}}}' for n in range(3)]
    wait_for(lambda: len(rec.api("GET", "/api/recordings").json()["items"]) == 1,
             what="the stream to be stored once the client left")
    rid = rec.api("GET", "/api/recordings").json()["items"][0]["id"]
    detail = rec.api("GET", f"/api/recordings/{rid}").json()["response"]
    assert detail["truncated"] == "client"
    chunks = detail["chunks"]
    assert len(chunks) >= 3
    assert [c["content"] for c in chunks[:3]] == [f'data: {{"n": {n}}}\n\n' for n in range(3)]
    assert rec.stop() == 0
    origin.stop()
    assert "stream stored as far as it went" in rec.log()

    rep = serve(db_url, "--mode", "replay")
    timeout = httpx.Timeout(10, read=1.5)
    with httpx.Client(proxy=rep.proxy, trust_env=False, timeout=timeout) as c, \
            c.stream("GET", f"{origin.url}/endless") as r:
        assert r.headers["wiretape-recording"] == str(rid)
        lines = r.iter_lines()
        again = read_events(lines, len(chunks))
        assert again == [c["content"].strip() for c in chunks]
        # what was seen, and then the stream stays open as the live one did: no end
        with pytest.raises(httpx.ReadTimeout):
            for line in lines:  # the blank line ending the last event, then nothing
                assert not line, line


def test_a_stream_still_open_at_shutdown_is_stored_as_far_as_it_went(sqlite_url, serve):
    origin = Streaming()
    rec = serve(sqlite_url)
    got: list[str] = []
    reading = threading.Event()

    def listen() -> None:
        try:
            with rec.client() as c, c.stream("GET", f"{origin.url}/endless") as r:
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        got.append(line)
                        if len(got) == 2:
                            reading.set()
        except httpx.HTTPError:
            pass  # wiretape went away

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert reading.wait(20)
    assert rec.stop(signal.SIGTERM) == 0
    t.join(20)
    origin.stop()
    [row] = rows(sqlite_url)
    assert row.response_stream["truncated"] == "shutdown"
    assert len(row.response_stream["chunks"]) >= 2
    assert row.response_body.startswith(b'data: {"n": 0}\n\ndata: {"n": 1}\n\n')


def breaking_off(conn: socket.socket) -> None:
    """Two chunks of a chunked response, then a reset: an upstream that died mid-stream."""
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    for event in EVENTS[:2]:
        conn.sendall(b"%x\r\n%b\r\n" % (len(event), event))
        time.sleep(0.1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def raw_get(proxy_port: int, url: str) -> bytes:
    """A GET through the proxy, read until the connection ends; the raw bytes."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as s:
        host = url.split("/")[2]
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_a_stream_the_upstream_broke_off_breaks_off_in_replay(sqlite_url, serve):
    server = RawServer(breaking_off)
    url = f"{server.url}/events"
    rec = serve(sqlite_url)
    live = raw_get(rec.proxy_port, url)
    assert rec.stop() == 0
    server.close()
    assert live.endswith(b"".join(b"%x\r\n%b\r\n" % (len(e), e) for e in EVENTS[:2]))
    [row] = rows(sqlite_url)
    assert row.status == 200 and row.failure_kind is None
    assert row.response_stream["truncated"] == "upstream"

    rep = serve(sqlite_url, "--mode", "replay")
    again = raw_get(rep.proxy_port, url)
    head, body = again.split(b"\r\n\r\n", 1)
    assert body == live.split(b"\r\n\r\n", 1)[1]  # the same chunks, then the same end
    assert f"Wiretape-Recording: {row.id}".encode() in head
    with rep.client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(url)


# -- big bodies ------------------------------------------------------------------------------

BIG = random.Random(3).randbytes(64 * 1024 * 1024 + 5)


def big_origin() -> Origin:
    o = Origin()
    o.route("GET /big", lambda h: h.reply(200, BIG, [("Content-Type", "application/zip")]))

    def download(h: Handler) -> None:
        # chunked, no Content-Length: kept in memory until it passes BIG_BODY, then spooled
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(0, BIG_BODY + 3 * 65536, 65536):
            send_chunk(h, BIG[i:i + 65536])
        end_chunks(h)

    o.route("GET /download", download)
    return o.start()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def curl_download(proxy: str, url: str, out: Path) -> str:
    subprocess.run(["curl", "-sf", "-x", proxy, "-o", str(out), url], check=True, timeout=120,
                   env=no_proxy_env())
    return sha(out.read_bytes())


def test_big_bodies_are_stored_in_parts_and_replayed_byte_for_byte(sqlite_url, serve, tmp_path):
    origin = big_origin()
    download = BIG[:BIG_BODY + 3 * 65536]
    rec = serve(sqlite_url)
    assert curl_download(rec.proxy, f"{origin.url}/big", tmp_path / "live.bin") == sha(BIG)
    with httpx.Client(proxy=rec.proxy, timeout=60, trust_env=False) as c:
        assert sha(c.get(f"{origin.url}/download").content) == sha(download)
    assert rec.stop() == 0
    origin.stop()

    stored = {r.path: r for r in rows(sqlite_url)}
    for path, body in (("/big", BIG), ("/download", download)):
        r = stored[path]
        assert r.response_body == b"" and r.response_size == len(body), path
        assert r.response_external == {"sha256": sha(body)}, path
    from wiretape.storage import db
    from wiretape.storage import repository as repo

    engine = db.make_engine(sqlite_url)
    with db.make_sessions(engine)() as s:
        assert repo.body_part_count(s, stored["/big"].id) == -(-len(BIG) // PART_SIZE)
        assert sha(repo.read_body(s, stored["/download"].id)) == sha(download)
    engine.dispose()
    # the download's chunks as they came (a chunk longer than one read comes in pieces)
    chunks = stored["/download"].response_stream["chunks"]
    assert sum(n for _, n in chunks) == len(download)
    assert len(chunks) >= -(-len(download) // 65536)

    rep = serve(sqlite_url, "--mode", "replay")
    assert curl_download(rep.proxy, f"{origin.url}/big", tmp_path / "again.bin") == sha(BIG)
    with httpx.Client(proxy=rep.proxy, timeout=60, trust_env=False) as c:
        for _ in range(2):  # the second from the cache of bodies read from the store
            r = c.get(f"{origin.url}/download")
            assert r.headers["wiretape-recording"] == str(stored["/download"].id)
            assert sha(r.content) == sha(download)
    detail = rep.api("GET", f"/api/recordings/{stored['/big'].id}").json()["response"]
    assert detail["body_complete"] is False and detail["size"] == len(BIG)
    whole = rep.api("GET", f"/api/recordings/{stored['/big'].id}/body")
    assert whole.status_code == 200 and sha(whole.content) == sha(BIG)
    assert json.loads(json.dumps(detail["chunks"][0]))["offset_ms"] >= 0


def test_an_audit_of_an_endless_stream_reads_as_far_as_the_recording_went(sqlite_url, serve):
    origin = Streaming()
    rec = serve(sqlite_url)
    with rec.client() as c, c.stream("GET", f"{origin.url}/endless") as r:
        assert len(read_events(r.iter_lines(), 3)) == 3
    wait_for(lambda: len(rows(sqlite_url)) == 1, what="the stream to be stored")
    assert rec.stop() == 0
    generous_durations(sqlite_url)
    # the live stream never ends: the audit reads as much as was recorded and compares that
    done = run("audit", "--tape", "default", "--db", sqlite_url, "--format", "json",
               "--timeout", "5")
    origin.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["verdict"] == "ok" and result["live_status"] == 200
