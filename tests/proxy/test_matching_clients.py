"""Matching fits what real clients send (requests, httpx over HTTP/1.1 and HTTP/2, curl,
Node): multipart uploads with a new boundary replay, range and conditional requests replay
right in any order, Accept-Encoding and Accept choose among recordings of one URL, and ties
go to the recording whose headers agree most."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import requests

from tests.proxy.upstreams import Handler, Origin

SCRIPTS = Path(__file__).parent / "scripts"
CSV = b"id,amount\n1,10.00\n2,12.50\n"


def curl(proxy: str, url: str, *args: str, ca: Path | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body as curl hands it over)."""
    tls = ["--cacert", str(ca)] if ca else []
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--proxy", proxy, "--noproxy", "",
         "--max-time", "20", "--dump-header", "-", *tls, *args, url],
        capture_output=True, timeout=60, check=True)
    out = done.stdout
    head = b""
    while out.startswith(b"HTTP/"):  # a CONNECT's answer comes first over HTTPS
        head, _, out = out.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(status_line.split()[1]), headers, out


def node(*args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(["node", str(SCRIPTS / "client.mjs"), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["body"] = base64.b64decode(result["body"])
    return result


# -- multipart uploads --------------------------------------------------------------------

def upload_origin() -> Origin:
    o = Origin()
    count = itertools.count(1)

    def upload(h: Handler) -> None:
        body = h.body()
        h.reply(200, json.dumps({"upload": next(count), "bytes": len(body)}).encode(),
                [("Content-Type", "application/json")])

    o.route("POST /upload", upload)
    return o.start()


def uploads(proxy: str, url: str, csv: Path) -> dict[str, tuple[int, bytes]]:
    """One upload per client, each choosing its own random boundary."""
    out = {}
    r = requests.post(url, files={"file": ("report.csv", csv.read_bytes(), "text/csv")},
                      data={"note": "requests"}, proxies={"http": proxy}, timeout=20)
    out["requests"] = (r.status_code, r.content)
    with httpx.Client(proxy=proxy, trust_env=False, timeout=20) as c:
        h = c.post(url, files={"file": ("report.csv", csv.read_bytes(), "text/csv")},
                   data={"note": "httpx"})
    out["httpx"] = (h.status_code, h.content)
    status, _, body = curl(proxy, url, "--form", "note=curl",
                           "--form", f"file=@{csv};type=text/csv")
    out["curl"] = (status, body)
    n = node("upload", proxy, url, "node", str(csv))
    out["node"] = (n["status"], n["body"])
    return out


def test_multipart_uploads_replay_with_a_new_boundary(db_url, serve, tmp_path):
    origin = upload_origin()
    url = f"{origin.url}/upload"
    csv = tmp_path / "report.csv"
    csv.write_bytes(CSV)
    rec = serve(db_url)
    live = uploads(rec.proxy, url, csv)
    rec.stop()
    origin.stop()
    assert sorted(json.loads(b)["upload"] for _, b in live.values()) == [1, 2, 3, 4]

    rep = serve(db_url, "--mode", "replay")
    # every client picks a new boundary: each still gets what its own upload got
    assert uploads(rep.proxy, url, csv) == live
    # another file's content is a miss that says which part differs
    csv.write_bytes(CSV + b"3,1.00\n")
    status, _, body = curl(rep.proxy, url, "--form", "note=curl",
                           "--form", f"file=@{csv};type=text/csv")
    miss = json.loads(body)
    assert status == 502 and miss["error"] == "no recording matches"
    assert miss["closest"][0]["differences"] == [
        f"multipart part 'file' content differs ({len(CSV) + 7} bytes sent, "
        f"{len(CSV)} recorded)"]


def test_a_rule_ignores_a_multipart_part_by_name(sqlite_url, serve, tmp_path):
    origin = upload_origin()
    url = f"{origin.url}/upload"
    csv = tmp_path / "report.csv"
    csv.write_bytes(CSV)
    rec = serve(sqlite_url, "--ignore-body-path", "$.note")
    status, _, recorded = curl(rec.proxy, url, "--form", "note=first run",
                               "--form", f"file=@{csv};type=text/csv")
    rec.stop()
    origin.stop()
    rep = serve(sqlite_url, "--mode", "replay")
    n = node("upload", rep.proxy, url, "another note", str(csv))
    assert (status, n["status"], n["body"]) == (200, 200, recorded)


# -- range and conditional requests -------------------------------------------------------

DATA = bytes(range(256)) * 4
ETAG = '"v1"'


def file_origin(tls_dir: Path) -> Origin:
    o = Origin(tls_dir=tls_dir)

    def serve_file(h: Handler) -> None:
        if h.headers.get("If-None-Match") == ETAG:
            h.reply(304, b"", [("ETag", ETAG)])
            return
        rng = h.headers.get("Range")
        if rng:
            first, last = (int(x) for x in rng.removeprefix("bytes=").split("-"))
            h.reply(206, DATA[first:last + 1], [
                ("Content-Range", f"bytes {first}-{last}/{len(DATA)}"), ("ETag", ETAG),
                ("Content-Type", "application/octet-stream")])
            return
        h.reply(200, DATA, [("ETag", ETAG), ("Content-Type", "application/octet-stream")])

    o.route("GET /file", serve_file)
    return o.start()


def test_range_and_conditional_requests_replay_right_in_any_order(db_url, serve, tmp_path):
    origin = file_origin(tmp_path / "tls")
    url = f"{origin.url}/file"
    rec = serve(db_url, "--upstream-insecure")
    ca = rec.confdir / "mitmproxy-ca-cert.pem"
    trust = ssl.create_default_context(cafile=str(ca))
    asked = [{}, {"Range": "bytes=0-99"}, {"Range": "bytes=100-199"},
             {"If-None-Match": ETAG}]
    with httpx.Client(proxy=rec.proxy, verify=trust, http2=True, trust_env=False,
                      timeout=20) as c:
        live = [c.get(url, headers=h) for h in asked]
    curl_live = curl(rec.proxy, url, "--range", "100-199", ca=ca)
    rec.stop()
    origin.stop()
    assert [r.http_version for r in live] == ["HTTP/2"] * 4
    assert [r.status_code for r in live] == [200, 206, 206, 304]
    assert curl_live[0] == 206 and curl_live[2] == DATA[100:200]

    rep = serve(db_url, "--mode", "replay", confdir=rec.confdir)
    with httpx.Client(proxy=rep.proxy, verify=trust, http2=True, trust_env=False,
                      timeout=20) as c:
        # the opposite order: each gets what it got live, not the next in line
        for h, before in reversed(list(zip(asked, live, strict=True))):
            again = c.get(url, headers=h)
            assert (again.status_code, again.content) == (before.status_code, before.content), h
        # no recording of their own: served the plain request's 200, a valid answer
        for h in ({"Range": "bytes=200-299"}, {"If-None-Match": '"v0"'}):
            fallback = c.get(url, headers=h)
            assert (fallback.status_code, fallback.content) == (200, DATA), h
    status, headers, body = curl(rep.proxy, url, "--range", "0-99", ca=ca)
    assert (status, body) == (206, DATA[:100])
    assert headers["content-range"] == "bytes 0-99/1024"


# -- content negotiation and ties ---------------------------------------------------------

TEXT = b"the same words, compressed or not " * 20


def negotiating_origin() -> Origin:
    o = Origin()

    def text(h: Handler) -> None:
        if "gzip" in (h.headers.get("Accept-Encoding") or ""):
            h.reply(200, gzip.compress(TEXT, mtime=0), [
                ("Content-Type", "text/plain"), ("Content-Encoding", "gzip"),
                ("Vary", "Accept-Encoding")])
        else:
            h.reply(200, TEXT, [("Content-Type", "text/plain"), ("Vary", "Accept-Encoding")])

    def doc(h: Handler) -> None:
        if "json" in (h.headers.get("Accept") or ""):
            h.reply(200, b'{"doc": 1}', [("Content-Type", "application/json")])
        else:
            h.reply(200, b"<h1>doc 1</h1>", [("Content-Type", "text/html")])

    def whoami(h: Handler) -> None:
        h.reply(200, (h.headers.get("X-Client") or "nobody").encode(),
                [("Content-Type", "text/plain")])

    o.route("GET /text", text)
    o.route("GET /text2", text)
    o.route("GET /doc", doc)
    o.route("GET /whoami", whoami)
    return o.start()


def test_accept_encoding_accept_and_agreeing_headers_choose_the_recording(
        db_url, serve):
    origin = negotiating_origin()
    base = origin.url
    rec = serve(db_url)
    p = rec.proxy
    live = {
        "compressed": curl(p, f"{base}/text", "--compressed"),
        "plain": curl(p, f"{base}/text"),
        "json": curl(p, f"{base}/doc", "--header", "Accept: application/json"),
        "html": curl(p, f"{base}/doc", "--header", "Accept: text/html"),
        "node": node("get", p, f"{base}/whoami", "X-Client: node"),
        "curl": curl(p, f"{base}/whoami", "--header", "X-Client: curl"),
    }
    with httpx.Client(proxy=p, trust_env=False, timeout=20) as c:
        gz = c.get(f"{base}/text2", headers={"Accept-Encoding": "gzip, br"})
    rec.stop()
    origin.stop()
    assert live["compressed"][1]["content-encoding"] == "gzip"
    assert "content-encoding" not in live["plain"][1]
    assert live["compressed"][2] == live["plain"][2] == TEXT
    assert gz.headers["content-encoding"] == "gzip" and gz.content == TEXT

    rep = serve(db_url, "--mode", "replay")
    p = rep.proxy
    # in the opposite order, each client gets what it got live
    assert node("get", p, f"{base}/whoami", "X-Client: node")["body"] == b"node"
    assert curl(p, f"{base}/whoami", "--header", "X-Client: curl")[2] == b"curl"
    assert curl(p, f"{base}/doc", "--header", "Accept: text/html")[2] == b"<h1>doc 1</h1>"
    assert curl(p, f"{base}/doc", "--header", "Accept: application/json, */*;q=0.1"
                )[2] == b'{"doc": 1}'
    plain = curl(p, f"{base}/text")
    assert "content-encoding" not in plain[1] and plain[2] == TEXT
    compressed = curl(p, f"{base}/text", "--compressed")
    assert compressed[1]["content-encoding"] == "gzip" and compressed[2] == TEXT
    # recorded with `gzip, br` and a gzip answer: `gzip, deflate` takes it too
    r = requests.get(f"{base}/text2", proxies={"http": p}, timeout=20,
                     headers={"Accept-Encoding": "gzip, deflate"})
    assert r.headers["content-encoding"] == "gzip" and r.content == TEXT
    # a client that cannot read gzip never gets the gzip body: a miss that says why
    status, _, body = curl(p, f"{base}/text2")
    assert status == 502 and json.loads(body)["closest"][0]["differences"] == [
        "header 'accept-encoding' missing (recorded 'gzip, br') (the recorded response is "
        "gzip)"]
    status, _, body = curl(p, f"{base}/doc", "--header", "Accept: image/png")
    assert status == 502
    assert "header 'accept': 'image/png' != " in json.loads(body)["closest"][0]["differences"][0]
