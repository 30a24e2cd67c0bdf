"""Smaller differences a real client would notice: upstreams behind a private CA
(--upstream-ca, SSL_CERT_FILE) for recording and for audits, `Expect: 100-continue`
forwarded as sent, reason phrases, and --replay-date."""

from __future__ import annotations

import email.utils
import json
import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import WIRETAPE_BIN, stored_recordings, wait_for
from tests.proxy.upstreams import Handler, Origin, private_ca

DOC = {"service": "behind a private CA"}


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def get_json_over_h2(proxy: str, wiretape_ca: Path, url: str) -> httpx.Response:
    with httpx.Client(proxy=proxy, verify=trusting(wiretape_ca), http2=True, trust_env=False,
                      timeout=20) as c:
        return c.get(url)


def private_origin(folder: Path) -> tuple[Origin, Path]:
    ca, cert, key = private_ca(folder)
    origin = Origin(cert=(cert, key))
    origin.route("GET /doc", lambda h: h.reply(200, json.dumps(DOC).encode(), [
        ("Content-Type", "application/json")]))
    return origin.start(), ca


# -- upstreams behind a private CA --------------------------------------------------------

def test_upstream_ca_records_from_a_private_ca_upstream(db_url, serve, tmp_path):
    origin, ca = private_origin(tmp_path / "pki")
    url = f"{origin.url}/doc"
    refused = serve(db_url, "--tape", "strict")
    wiretape_ca = refused.confdir / "mitmproxy-ca-cert.pem"
    failed = get_json_over_h2(refused.proxy, wiretape_ca, url)
    refused.stop()
    # verified against the system's store (or SSL_CERT_FILE, or certifi), which does not
    # know the private CA: a TLS failure, recorded as one
    assert failed.status_code == 502 and b"Certificate verify failed" in failed.content
    [r] = stored_recordings(db_url, "strict")
    assert r.failure_kind == "error" and "Certificate verify failed" in r.failure_message

    rec = serve(db_url, "--tape", "private", "--upstream-ca", str(ca), confdir=refused.confdir)
    ok = get_json_over_h2(rec.proxy, wiretape_ca, url)
    assert ok.http_version == "HTTP/2" and ok.status_code == 200 and ok.json() == DOC
    assert f"upstream TLS verified with {ca} (--upstream-ca)" in rec.log()
    # the admin API's audits verify the live answers with the same CA
    started = rec.api("POST", "/api/tapes/private/audit", json={})
    assert started.status_code == 202, started.text
    audit_url = started.headers["location"]
    wait_for(lambda: rec.api("GET", audit_url).json()["status"] != "running", 60,
             "the audit to finish")
    audit = rec.api("GET", audit_url).json()
    assert audit["status"] == "done" and audit["summary"]["by_class"]["breaking"] == 0, audit
    rec.stop()
    [r] = stored_recordings(db_url, "private")
    assert r.status == 200 and r.failure_kind is None

    # `wiretape audit` too: with the CA the live answer is verified; without, it fails
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    base = [WIRETAPE_BIN, "audit", "--tape", "private", "--db", db_url, "--format", "json"]
    trusted = subprocess.run([*base, "--upstream-ca", str(ca)], capture_output=True, text=True,
                             env=env, timeout=120)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    untrusted = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)
    assert untrusted.returncode == 1 and "certificate verify failed" in untrusted.stdout.lower()
    origin.stop()


def test_ssl_cert_file_is_honoured_but_never_wiretapes_own_ca(sqlite_url, serve, tmp_path):
    origin, ca = private_origin(tmp_path / "pki")
    url = f"{origin.url}/doc"
    # SSL_CERT_DIR (which the machine may set for its own store) is left empty: not set
    rec = serve(sqlite_url, env={"SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": ""})
    wiretape_ca = rec.confdir / "mitmproxy-ca-cert.pem"
    assert get_json_over_h2(rec.proxy, wiretape_ca, url).json() == DOC
    assert "(SSL_CERT_FILE)" in rec.log()
    rec.stop()
    # a shell that exported SSL_CERT_FILE for its clients (wiretape's CA) still records
    # from public upstreams: that file is passed over, with a warning
    own = serve(sqlite_url, env={"SSL_CERT_FILE": str(wiretape_ca), "SSL_CERT_DIR": ""},
                confdir=rec.confdir)
    assert "holds only wiretape's own CA" in own.log()
    verified_with = own.log().split("upstream TLS verified with ", 1)[1].splitlines()[0]
    assert str(wiretape_ca) not in verified_with
    assert verified_with.endswith(("(system store)", "(certifi)"))
    own.stop()
    origin.stop()


@pytest.mark.parametrize(("value", "message"), [
    ("missing.pem", "--upstream-ca missing.pem: No such file or directory"),
    ("not-pem.txt", "--upstream-ca not-pem.txt: no PEM certificate in it"),
])
def test_a_bad_upstream_ca_is_one_line_and_exit_2(tmp_path, value, message):
    (tmp_path / "not-pem.txt").write_text("hello")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    env["WIRETAPE_UPSTREAM_CA"] = value  # the variable, as the flag would be
    done = subprocess.run([WIRETAPE_BIN, "serve", "--db", f"sqlite:///{tmp_path}/w.db"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"wiretape: error: {message}"]


# -- Expect: 100-continue -----------------------------------------------------------------

def expect_origin(tls_dir: Path | None = None) -> Origin:
    o = Origin(tls_dir=tls_dir)

    def upload(h: Handler) -> None:
        # http.server has answered the expectation with its own 100 Continue by now
        body = h.body()
        h.reply(200, json.dumps({"expect": h.headers.get("Expect"), "bytes": len(body)}
                                ).encode(), [("Content-Type", "application/json")])

    o.route("PUT /upload", upload)
    return o.start()


def curl_verbose(proxy: str, url: str, *args: str) -> tuple[bytes, str]:
    done = subprocess.run(["curl", "--silent", "--show-error", "--verbose", "--proxy", proxy,
                           "--noproxy", "", "--max-time", "20", *args, url],
                          capture_output=True, timeout=60, check=True)
    return done.stdout, done.stderr.decode("latin-1")


def test_expect_100_continue_reaches_the_origin_and_replays(db_url, serve, tmp_path):
    plain, tls = expect_origin(), expect_origin(tmp_path / "tls")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (1024 * 1024 + 1))  # curl sends Expect for bodies over 1 MiB
    small = tmp_path / "small.bin"
    small.write_bytes(b"y" * 4000)
    rec = serve(db_url, "--upstream-insecure")
    ca = str(rec.confdir / "mitmproxy-ca-cert.pem")
    h1, h1_log = curl_verbose(rec.proxy, f"{plain.url}/upload", "--upload-file", str(big))
    h2, h2_log = curl_verbose(rec.proxy, f"{tls.url}/upload", "--http2", "--cacert", ca,
                              "--upload-file", str(small), "--header", "Expect: 100-continue")
    rec.stop()
    # the origin saw the header as the client sent it, and answered the request
    assert json.loads(h1) == {"expect": "100-continue", "bytes": big.stat().st_size}
    assert json.loads(h2) == {"expect": "100-continue", "bytes": 4000}
    assert "> Expect: 100-continue" in h1_log and "< HTTP/1.1 100 Continue" in h1_log
    # HTTP/2: exactly one interim 100, so the client sends its body without waiting for
    # its own timeout (curl waits a second without one), then the origin's answer
    assert "> expect: 100-continue" in h2_log and h2_log.count("< HTTP/2 100") == 1
    assert "< HTTP/2 200" in h2_log
    assert h1_log.count("< HTTP/1.1 100 Continue") == 1
    recorded = stored_recordings(db_url)
    assert [dict((k.lower(), v) for k, v in r.request_headers)["expect"] for r in recorded
            ] == ["100-continue", "100-continue"]
    plain.stop()
    tls.stop()

    rep = serve(db_url, "--mode", "replay", confdir=rec.confdir)
    again1, _ = curl_verbose(rep.proxy, f"{plain.url}/upload", "--upload-file", str(big))
    again2, log2 = curl_verbose(rep.proxy, f"{tls.url}/upload", "--http2", "--cacert", ca,
                                "--upload-file", str(small),
                                "--header", "Expect: 100-continue")
    assert (again1, again2) == (h1, h2)
    assert log2.count("< HTTP/2 100") == 1


# -- reason phrases -----------------------------------------------------------------------

def reason_origin() -> Origin:
    o = Origin()

    def fine(h: Handler) -> None:
        h.send_response(200, "Fine Thanks")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")

    o.route("GET /fine", fine)
    return o.start()


def status_line(proxy: str, url: str) -> str:
    done = subprocess.run(["curl", "--silent", "--show-error", "--http1.1", "--proxy", proxy,
                           "--noproxy", "", "--max-time", "20", "--dump-header", "-",
                           "--output", "/dev/null", url],
                          capture_output=True, timeout=60, check=True)
    return done.stdout.decode("latin-1").split("\r\n", 1)[0]


def test_reason_phrases_replay_as_recorded_and_standard_when_none_was(sqlite_url, serve,
                                                                      tmp_path):
    origin = reason_origin()
    rec = serve(sqlite_url)
    live = status_line(rec.proxy, f"{origin.url}/fine")
    rec.stop()
    origin.stop()
    assert live == "HTTP/1.1 200 Fine Thanks"
    # a response recorded over HTTP/2 has no reason phrase (a HAR from a browser says h2)
    har = {"log": {"version": "1.2", "creator": {"name": "browser", "version": "1"},
                   "entries": [{
                       "startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
                       "request": {"method": "GET", "url": f"{origin.url}/h2",
                                   "httpVersion": "h2", "headers": [], "queryString": [],
                                   "cookies": [], "headersSize": -1, "bodySize": 0},
                       "response": {"status": 201, "statusText": "", "httpVersion": "h2",
                                    "headers": [], "cookies": [],
                                    "content": {"size": 0, "mimeType": "text/plain"},
                                    "redirectURL": "", "headersSize": -1, "bodySize": 0},
                       "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}]}}
    (tmp_path / "h2.har").write_text(json.dumps(har))
    rep = serve(sqlite_url, "--mode", "replay", "--tape", "h2",
                "--tape-file", str(tmp_path / "h2.har"))
    assert status_line(rep.proxy, f"{origin.url}/h2") == "HTTP/1.1 201 Created"
    rep.api("PUT", "/api/mode", json={"mode": "replay", "tape": "default"}).raise_for_status()
    assert status_line(rep.proxy, f"{origin.url}/fine") == "HTTP/1.1 200 Fine Thanks"


# -- --replay-date ------------------------------------------------------------------------

RECORDED_DATE = "Mon, 01 Jan 2024 00:00:00 GMT"


def test_replay_date_now_gives_replayed_responses_the_time_of_replay(sqlite_url, serve):
    origin = Origin()

    def dated(h: Handler) -> None:
        h.send_response_only(200)
        h.send_header("Date", RECORDED_DATE)
        h.send_header("Content-Length", "5")
        h.end_headers()
        h.wfile.write(b"dated")

    origin.route("GET /dated", dated)
    origin.start()
    url = f"{origin.url}/dated"
    rec = serve(sqlite_url)
    with rec.client() as c:
        assert c.get(url).headers["date"] == RECORDED_DATE
    rec.stop()
    origin.stop()

    recorded = serve(sqlite_url, "--mode", "replay", confdir=rec.confdir)
    with recorded.client() as c:
        assert c.get(url).headers["date"] == RECORDED_DATE  # the default: as recorded
    recorded.stop()
    now = serve(sqlite_url, "--mode", "replay", env={"WIRETAPE_REPLAY_DATE": "now"},
                confdir=rec.confdir)
    with now.client() as c:
        before = int(time.time())
        r = c.get(url)
        after = time.time()
    assert r.content == b"dated" and r.headers.get_list("date") == [r.headers["date"]]
    replayed = email.utils.parsedate_to_datetime(r.headers["date"]).timestamp()
    assert before <= replayed <= after
