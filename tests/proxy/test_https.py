"""HTTPS: the CA in --confdir, interception with curl, requests, httpx (HTTP/1.1 and HTTP/2)
and Node, replay with the upstream gone and never contacted, --upstream-insecure and
--ignore-host."""

from __future__ import annotations

import gzip
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID
from wiretape.storage import models as m

from tests.helpers import WIRETAPE_BIN, stored_recordings
from tests.proxy.upstreams import CountingListener, Origin

SCRIPTS = Path(__file__).parent / "scripts"
BINARY = bytes(range(256)) * 64
DOC = {"order": 17, "items": ["ä", "€"], "ok": True}


def rows(url: str) -> list[m.Recording]:
    return stored_recordings(url)


def tls_origin(folder: Path) -> Origin:
    origin = Origin(tls_dir=folder)
    origin.route("GET /json", lambda h: h.reply(
        200, json.dumps(DOC).encode(), [("Content-Type", "application/json")]))
    origin.route("GET /gzip", lambda h: h.reply(
        200, gzip.compress(b"squeezed " * 500, mtime=0),
        [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")]))
    origin.route("GET /binary", lambda h: h.reply(
        200, BINARY, [("Content-Type", "application/octet-stream")]))
    origin.route("POST /echo", lambda h: h.reply(
        201, b"echo:" + h.body(), [("Content-Type", "application/octet-stream")]))
    return origin.start()


def ca_of(serve_proc) -> Path:
    return serve_proc.confdir / "mitmproxy-ca-cert.pem"


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def python_clients(proxy: str, ca: Path, base: str) -> dict[str, object]:
    """httpx over HTTP/1.1 and HTTP/2 in process; requests in a subprocess configured the
    way users do it (HTTPS_PROXY + REQUESTS_CA_BUNDLE)."""
    out: dict[str, object] = {}
    for version, h2 in (("h1", False), ("h2", True)):
        with httpx.Client(proxy=proxy, verify=trusting(ca), http2=h2, trust_env=False,
                          timeout=20) as c:
            r = c.get(f"{base}/json")
            out[f"httpx-{version}-json"] = (r.http_version, r.status_code, r.content)
            with c.stream("GET", f"{base}/gzip") as r:
                raw = b"".join(r.iter_raw())
            out[f"httpx-{version}-gzip"] = (r.http_version, r.status_code, raw)
            r = c.post(f"{base}/echo", content=b"\x00\xff httpx " + version.encode())
            out[f"httpx-{version}-echo"] = (r.http_version, r.status_code, r.content)
    snippet = (
        "import json, sys, requests\n"
        "b = sys.argv[1]\n"
        "j = requests.get(b + '/json', timeout=20)\n"
        "g = requests.get(b + '/gzip', timeout=20, stream=True)\n"
        "graw = g.raw.read(decode_content=False)\n"
        "e = requests.post(b + '/echo', data=b'requests \\xff', timeout=20)\n"
        "print(json.dumps({'json': [j.status_code, j.content.hex()],\n"
        "                  'gzip': [g.status_code, graw.hex()],\n"
        "                  'echo': [e.status_code, e.content.hex()]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HTTPS_PROXY=proxy, REQUESTS_CA_BUNDLE=str(ca))
    done = subprocess.run([sys.executable, "-c", snippet, base], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out["requests"] = json.loads(done.stdout)
    return out


def curl(proxy: str, ca: Path, out: Path, base: str) -> dict[str, bytes]:
    subprocess.run(["sh", str(SCRIPTS / "https_client.sh"), proxy, str(ca), str(out), base],
                   check=True, timeout=60)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def node(proxy: str, ca: Path, out: Path, base: str) -> dict[str, bytes]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NODE_EXTRA_CA_CERTS"] = str(ca)
    done = subprocess.run(["node", str(SCRIPTS / "https_client.mjs"), proxy, str(out), base],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def without_recording_header(headers: bytes) -> bytes:
    # HTTP/1 and HTTP/2 (lower case) spellings
    return b"\r\n".join(ln for ln in headers.split(b"\r\n")
                        if not ln.lower().startswith(b"wiretape-recording:"))


def test_https_recorded_and_replayed_offline_byte_for_byte(db_url, serve, tmp_path):
    origin = tls_origin(tmp_path / "tls")
    rec = serve(db_url, "--upstream-insecure")
    ca = ca_of(rec)
    live_py = python_clients(rec.proxy, ca, origin.url)
    live_curl = curl(rec.proxy, ca, tmp_path / "curl-live", origin.url)
    live_node = node(rec.proxy, ca, tmp_path / "node-live", origin.url)
    assert rec.stop() == 0
    seen_live = origin.connections
    origin.stop()

    # what the clients got live is what the origin sent
    assert live_py["httpx-h1-json"] == ("HTTP/1.1", 200, json.dumps(DOC).encode())
    assert live_py["httpx-h2-json"] == ("HTTP/2", 200, json.dumps(DOC).encode())
    assert gzip.decompress(live_py["httpx-h2-gzip"][2]) == b"squeezed " * 500
    assert live_curl["binary.body"] == BINARY and live_node["binary.body"] == BINARY
    assert live_curl["echo.body"] == b"echo:curl says \xff\xfe hello"
    assert live_curl["json.status"] == b"200 HTTP/2" and live_node["h2json.status"] == b"200 h2"
    assert live_curl["h1json.status"] == b"200 HTTP/1.1"
    assert live_curl["h1json.body"] == live_node["h2json.body"] == json.dumps(DOC).encode()
    assert live_node["json.status"] == b"200 HTTP/1.1"
    assert live_node["echo.body"] == b"echo:node says \xff\xfe hello"
    assert live_py["requests"]["echo"] == [201, b"echo:requests \xff".hex()]
    recorded = rows(db_url)
    assert {r.scheme for r in recorded} == {"https"} and len(recorded) == 6 + 3 + 5 + 5
    assert seen_live > 0

    # replay: the origin is gone; anything connecting to its port would be counted
    listener = CountingListener(origin.port)
    try:
        rep = serve(db_url, "--mode", "replay")
        again_py = python_clients(rep.proxy, ca, origin.url)
        again_curl = curl(rep.proxy, ca, tmp_path / "curl-replay", origin.url)
        again_node = node(rep.proxy, ca, tmp_path / "node-replay", origin.url)
        assert listener.accepted == 0
    finally:
        listener.close()
    assert again_py == live_py
    for name, data in live_curl.items():
        if name.endswith(".headers"):
            assert without_recording_header(again_curl[name]) == data, name
            assert b"\r\nwiretape-recording: " in again_curl[name].lower()
        else:
            assert again_curl[name] == data, name
    for name, data in live_node.items():
        if name.endswith(".headers"):
            headers = json.loads(again_node[name])
            names = [h.lower() for h in headers]
            assert "wiretape-recording" in names[::2]
            i = names.index("wiretape-recording")
            assert headers[:i] + headers[i + 2:] == json.loads(data)
        else:
            assert again_node[name] == data, name


def test_ca_created_on_first_start_and_handed_out(sqlite_url, serve, tmp_path):
    confdir = tmp_path / "fresh" / "conf"
    assert not confdir.exists()
    s = serve(sqlite_url, confdir=confdir)
    cert = confdir / "mitmproxy-ca-cert.pem"
    assert cert.is_file()
    assert confdir.stat().st_mode & 0o777 == 0o700
    for key in ("mitmproxy-ca.pem", "mitmproxy-ca.p12"):
        assert (confdir / key).stat().st_mode & 0o777 == 0o600, key
    ca = x509.load_pem_x509_certificate(cert.read_bytes())
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "wiretape CA"

    printed = subprocess.run([WIRETAPE_BIN, "ca", "--confdir", str(confdir)],
                             capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == str(cert)
    served = s.api("GET", "/api/ca.pem")
    assert served.status_code == 200 and served.content == cert.read_bytes()
    assert s.stop() == 0

    # a key file left readable by others is made owner-only again on the next start
    os.chmod(confdir / "mitmproxy-ca.pem", 0o644)
    serve(sqlite_url, confdir=confdir)
    assert (confdir / "mitmproxy-ca.pem").stat().st_mode & 0o777 == 0o600
    assert x509.load_pem_x509_certificate(cert.read_bytes()) == ca  # the same CA, kept


def test_self_signed_upstream_needs_upstream_insecure(sqlite_url, serve, tmp_path):
    origin = tls_origin(tmp_path / "tls")
    strict = serve(sqlite_url)
    with httpx.Client(proxy=strict.proxy, verify=trusting(ca_of(strict)), trust_env=False,
                      timeout=20) as c:
        refused = c.get(f"{origin.url}/json")
    strict.stop()
    # the TLS failure is an exchange too: recorded, replayed as the same 502
    assert refused.status_code == 502 and b"Certificate verify failed" in refused.content
    [r] = rows(sqlite_url)
    assert r.failure_kind == "error" and "Certificate verify failed" in r.failure_message

    insecure = serve(sqlite_url, "--upstream-insecure", confdir=strict.confdir)
    with httpx.Client(proxy=insecure.proxy, verify=trusting(ca_of(strict)), trust_env=False,
                      timeout=20) as c:
        ok = c.get(f"{origin.url}/json")
    assert ok.status_code == 200 and ok.json() == DOC
    insecure.stop()
    origin.stop()

    rep = serve(sqlite_url, "--mode", "replay", "--sequence", "strict", confdir=strict.confdir)
    with httpx.Client(proxy=rep.proxy, verify=trusting(ca_of(strict)), trust_env=False,
                      timeout=20) as c:
        first, second = c.get(f"{origin.url}/json"), c.get(f"{origin.url}/json")
    assert first.status_code == 502 and first.content == refused.content
    assert second.status_code == 200 and second.content == ok.content


def test_ignore_host_is_tunnelled_untouched_and_not_recorded(sqlite_url, serve, tmp_path):
    ignored = tls_origin(tmp_path / "ignored")
    plain = Origin()
    plain.route("GET /plain", lambda h: h.reply(200, b"plain"))
    plain.start()
    other = tls_origin(tmp_path / "other")
    rec = serve(sqlite_url, "--upstream-insecure",
                "--ignore-host", rf"^127\.0\.0\.1:({ignored.port}|{plain.port})$")
    # trusting only the origin's own certificate works only if nothing intercepts
    with httpx.Client(proxy=rec.proxy, verify=trusting(ignored.cert), trust_env=False,
                      timeout=20) as c:
        assert c.get(f"{ignored.url}/json").json() == DOC
        assert c.get(f"{plain.url}/plain").content == b"plain"
    with httpx.Client(proxy=rec.proxy, verify=trusting(ca_of(rec)), trust_env=False,
                      timeout=20) as c:
        assert c.get(f"{other.url}/json").json() == DOC  # intercepted and recorded
    rec.stop()
    assert [r.port for r in rows(sqlite_url)] == [other.port]

    # in replay mode too, an ignored host is reached directly
    rep = serve(sqlite_url, "--mode", "replay",
                "--ignore-host", rf"^127\.0\.0\.1:({ignored.port}|{plain.port})$",
                confdir=rec.confdir)
    with httpx.Client(proxy=rep.proxy, verify=trusting(ignored.cert), trust_env=False,
                      timeout=20) as c:
        assert c.get(f"{ignored.url}/json").json() == DOC
        assert c.get(f"{plain.url}/plain").content == b"plain"
    for o in (ignored, plain, other):
        o.stop()


def test_failures_over_https_and_http2_replay_as_seen_live(sqlite_url, serve, refusing_port):
    port = refusing_port
    rec = serve(sqlite_url)
    live = {}
    for h2 in (False, True):
        with httpx.Client(proxy=rec.proxy, verify=trusting(ca_of(rec)), http2=h2,
                          trust_env=False, timeout=20) as c:
            live[h2] = c.get(f"https://127.0.0.1:{port}/down-{int(h2)}")
    rec.stop()
    assert live[False].http_version == "HTTP/1.1" and live[True].http_version == "HTTP/2"
    assert [r.failure_kind for r in rows(sqlite_url)] == ["refused", "refused"]

    rep = serve(sqlite_url, "--mode", "replay", confdir=rec.confdir)
    for h2 in (False, True):
        with httpx.Client(proxy=rep.proxy, verify=trusting(ca_of(rec)), http2=h2,
                          trust_env=False, timeout=20) as c:
            again = c.get(f"https://127.0.0.1:{port}/down-{int(h2)}")
        before = live[h2]
        assert again.http_version == before.http_version
        assert (again.status_code, again.content) == (502, before.content)
        assert b"Connect call failed" in again.content
        replayed_headers = [(k, v) for k, v in again.headers.multi_items()
                            if k != "wiretape-recording"]
        assert replayed_headers == before.headers.multi_items()
