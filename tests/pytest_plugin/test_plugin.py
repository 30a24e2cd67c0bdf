"""The pytest plugin end to end: an example project (requests, httpx over HTTP/2, curl in a
subprocess) run by pytest in a subprocess, so the plugin loads from its entry point as a
user's install loads it; real upstreams on loopback, stopped for replay."""

from __future__ import annotations

import difflib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Reply, Seen, Upstream
from tests.proxy.upstreams import CountingListener, Origin

# each test runs pytest two or three times, each starting a wiretape serve: on a loaded
# 2-core machine that can take minutes
pytestmark = pytest.mark.timeout(900)

EXAMPLE = Path(__file__).parent / "example"
INI = """\
[pytest]
addopts = -p no:cacheprovider
pythonpath = .
wiretape_serve_args = --upstream-insecure
"""
APP_TESTS = [
    "tests/test_app.py::test_order", "tests/test_app.py::test_catalog_over_http2",
    "tests/test_app.py::test_ping_with_curl", "tests/test_app.py::test_without_http",
]
TAPE_FILES = [
    "tests/tapes/test_app/test_order.har", "tests/tapes/test_app/test_catalog_over_http2.har",
    "tests/tapes/test_app/test_ping_with_curl.har",
]


@dataclass
class Upstreams:
    http: Upstream
    https: Origin
    counter: list[int]

    def stop(self) -> None:
        self.http.stop()
        self.https.stop()

    def paths(self) -> list[str]:
        """Every request either upstream has seen, as "METHOD path"."""
        return ([f"{s.method} {s.path}" for s in self.http.seen]
                + [f"{m} {p}" for m, p, _h in self.https.requests])

    def forget(self) -> None:
        self.http.seen.clear()
        self.https.requests.clear()


def _order(n: int, extra: dict[str, Any] | None = None) -> Reply:
    return Reply(200, {"id": n, "status": "paid", **(extra or {})})


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Upstreams]:
    http = Upstream()
    counter = [0]

    def count(_seen: Seen) -> Reply:
        counter[0] += 1
        return Reply(200, {"n": counter[0]})

    for n in range(1, 10):
        http.route(f"GET /orders/{n}", _order(n))
    http.route("GET /counter", count)
    https = Origin(tls_dir=tmp_path / "tls")
    https.route("GET /catalog", lambda h: h.reply(
        200, json.dumps({"items": ["tea", "cake"]}).encode(),
        [("Content-Type", "application/json")]))
    https.route("GET /ping", lambda h: h.reply(200, b"pong", [("Content-Type", "text/plain")]))
    ups = Upstreams(http.start(), https.start(), counter)
    yield ups
    for stop in (ups.http.stop, ups.https.stop):
        try:
            stop()
        except OSError:
            pass


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin's cache (a migrated store, a CA) for these tests, not the user's."""
    return tmp_path_factory.mktemp("cache-home")


@pytest.fixture
def project(pytester: pytest.Pytester, upstreams: Upstreams, cache_home: Path,
            monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The example project in pytester's folder, pointed at the upstreams."""
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    pytester.makefile(".ini", pytest=INI)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("EXAMPLE_HTTP", upstreams.http.url)
    monkeypatch.setenv("EXAMPLE_HTTPS", upstreams.https.url)
    for var in ("WIRETAPE_PYTEST", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
                "NO_PROXY", "no_proxy", "EXAMPLE_ORDER", "EXAMPLE_EXTRA_ORDER"):
        monkeypatch.delenv(var, raising=False)
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(*args, timeout=240)


def offline(upstreams: Upstreams) -> list[CountingListener]:
    """Stop the upstreams and listen where they were: any connection attempt is counted."""
    ports = [upstreams.http.port, upstreams.https.port]
    upstreams.stop()
    return [CountingListener(port) for port in ports]


def har(project: pytest.Pytester, path: str) -> dict[str, Any]:
    return dict(json.loads((project.path / path).read_text()))


def urls(doc: dict[str, Any]) -> list[str]:
    return [e["request"]["url"] for e in doc["log"]["entries"]]


def test_record_then_replay_offline(project: pytest.Pytester, upstreams: Upstreams) -> None:
    recorded = run(project, "--wiretape=record")
    recorded.assert_outcomes(passed=9)
    assert "tapes written under" in recorded.stdout.str()
    seen = upstreams.paths()
    for path in ("GET /orders/7", "GET /catalog", "GET /ping", "GET /orders/1",
                 "GET /orders/2", "GET /orders/3"):
        assert path in seen
    for path in TAPE_FILES:
        assert (project.path / path).is_file(), path
    # the test that makes no request has no tape
    assert not (project.path / "tests/tapes/test_app/test_without_http.har").exists()
    h2 = har(project, "tests/tapes/test_app/test_catalog_over_http2.har")
    assert h2["log"]["entries"][0]["request"]["httpVersion"] == "HTTP/2.0"
    assert urls(h2) == [f"{upstreams.https.url}/catalog"]
    # two tests share one tape, in the order they ran
    assert urls(har(project, "tests/tapes/orders-shared.har")) == [
        f"{upstreams.http.url}/orders/1", f"{upstreams.http.url}/orders/2"]

    listeners = offline(upstreams)
    try:
        replayed = run(project, "--wiretape=replay")
    finally:
        for listener in listeners:
            listener.close()
    replayed.assert_outcomes(passed=9)
    assert [listener.accepted for listener in listeners] == [0, 0]
    assert "wiretape: replay, proxy http://127.0.0.1:" in replayed.stdout.str()


TOLERANT = """\
import os

import app


def test_tolerant():
    # the app shrugs off a failed lookup: the 502 alone would never fail this test
    try:
        app.order(os.environ["EXAMPLE_HTTP"], int(os.environ.get("EXAMPLE_TOLERANT", "4")))
    except Exception:
        pass
"""


def test_a_changed_request_fails_with_the_miss_explained(
        project: pytest.Pytester, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch) -> None:
    (project.path / "tests" / "test_tolerant.py").write_text(TOLERANT)
    tests = ["tests/test_app.py", "tests/test_tolerant.py"]
    run(project, "--wiretape=record", *tests).assert_outcomes(passed=5)
    (project.path / TAPE_FILES[2]).unlink()  # and one test was never recorded
    listeners = offline(upstreams)
    monkeypatch.setenv("EXAMPLE_ORDER", "8")
    monkeypatch.setenv("EXAMPLE_TOLERANT", "5")
    try:
        result = run(project, "--wiretape=replay", *tests)
    finally:
        for listener in listeners:
            listener.close()
    result.assert_outcomes(passed=2, failed=3)
    assert [listener.accepted for listener in listeners] == [0, 0]
    out = result.stdout.str()
    base = f"http://127.0.0.1:{upstreams.http.port}"
    # in the failing test's report: the request, the closest recording, what differs
    report = out[out.index("___ test_order ___"):]
    assert ("wiretape: 1 request did not match any recording of tape "
            "tests.test_app.test_order (tests/tapes/test_app/test_order.har)") in report
    assert f"GET {base}/orders/8" in report
    assert f"{base}/orders/7" in report
    assert "path: '/orders/8' != '/orders/7'" in report
    assert "pytest --wiretape=once tests/test_app.py::test_order" in report
    # the short summary names the miss, not only the client's exception
    assert "FAILED tests/test_app.py::test_order - wiretape: GET http://127.0.0.1:" in out
    # the test whose tape file is missing says so
    report = out[out.index("___ test_ping_with_curl ___"):]
    assert "the tape file does not exist" in report
    # a test that swallowed the 502 fails all the same, the miss as its failure
    report = out[out.index("___ test_tolerant ___"):].split("\n")
    assert report[1] == f"wiretape: GET {base}/orders/5 matched no recording"
    assert report[3] == ("wiretape: 1 request did not match any recording of tape "
                         "tests.test_tolerant.test_tolerant "
                         "(tests/tapes/test_tolerant/test_tolerant.har)")
    assert "        - path: '/orders/5' != '/orders/4'" in report
    assert "FAILED tests/test_tolerant.py::test_tolerant - Failed: wiretape: GET" in out
    # the terminal summary lists every miss and how to re-record
    summary = out[out.index("== wiretape =="):]
    assert "3 requests matched no recording, in 3 tests:" in summary
    assert f"  GET {base}/orders/8  (path: '/orders/8' != '/orders/7')" in summary
    assert "pytest --wiretape=once tests/test_app.py::test_order " \
           "tests/test_app.py::test_ping_with_curl tests/test_tolerant.py::test_tolerant" \
        in summary


def test_once_records_only_what_is_missing(
        project: pytest.Pytester, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch) -> None:
    run(project, "--wiretape=record", "tests/test_app.py").assert_outcomes(passed=4)
    order_before = (project.path / TAPE_FILES[0]).read_text()
    catalog_before = (project.path / TAPE_FILES[1]).read_bytes()
    (project.path / TAPE_FILES[2]).unlink()
    upstreams.forget()

    monkeypatch.setenv("EXAMPLE_EXTRA_ORDER", "9")
    result = run(project, "--wiretape=once", "tests/test_app.py")
    result.assert_outcomes(passed=4)
    # new episodes inside an existing tape, and the tape nobody had recorded: nothing else
    assert sorted(upstreams.paths()) == ["GET /orders/9", "GET /ping"]
    order = har(project, TAPE_FILES[0])
    assert urls(order) == [f"{upstreams.http.url}/orders/7", f"{upstreams.http.url}/orders/9"]
    # what was there is kept as it was: the file only grew by the new entry
    old_entry = json.dumps(json.loads(order_before)["log"]["entries"][0], indent=2)
    assert json.dumps(order["log"]["entries"][0], indent=2) == old_entry
    assert (project.path / TAPE_FILES[1]).read_bytes() == catalog_before
    assert (project.path / TAPE_FILES[2]).is_file()

    # and now everything is on tape
    listeners = offline(upstreams)
    try:
        run(project, "--wiretape=replay", "tests/test_app.py").assert_outcomes(passed=4)
    finally:
        for listener in listeners:
            listener.close()
    assert [listener.accepted for listener in listeners] == [0, 0]


def test_xdist_two_workers(project: pytest.Pytester, upstreams: Upstreams,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A serve per worker; the tests sharing a tape record on one worker; the controller
    reports the workers' misses. Tapes in another folder (--wiretape-tapes)."""
    recorded = run(project, "-n", "2", "-v", "--wiretape=record", "--wiretape-tapes=recorded")
    recorded.assert_outcomes(passed=9)
    # xdist names a test by its group: the two run on one worker, whatever the load
    for test in ("test_shared_first", "test_shared_second"):
        recorded.stdout.fnmatch_lines([f"*PASSED tests/test_more.py::{test}@wiretape-*"])
    assert urls(har(project, "recorded/orders-shared.har")) == [
        f"{upstreams.http.url}/orders/1", f"{upstreams.http.url}/orders/2"]
    assert (project.path / "recorded/tests/test_app/test_order.har").is_file()
    assert not (project.path / "tests/tapes").exists()
    listeners = offline(upstreams)
    try:
        run(project, "-n", "2", "--wiretape=replay", "--wiretape-tapes=recorded"
            ).assert_outcomes(passed=9)
        monkeypatch.setenv("EXAMPLE_ORDER", "8")
        missed = run(project, "-n", "2", "--wiretape=replay", "--wiretape-tapes=recorded")
    finally:
        for listener in listeners:
            listener.close()
    assert [listener.accepted for listener in listeners] == [0, 0]
    missed.assert_outcomes(passed=8, failed=1)
    out = missed.stdout.str()
    summary = out[out.index("== wiretape =="):]
    assert "1 request matched no recording, in 1 test:" in summary
    assert "path: '/orders/8' != '/orders/7'" in summary


TIME_LINE = re.compile(
    r'^\s*"(startedDateTime|time|wait|capturedNs)": |'
    r'^\s*"value": "\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT"$')


def test_two_recordings_of_the_same_traffic_differ_only_in_times(
        project: pytest.Pytester, upstreams: Upstreams) -> None:
    # (test_marker_rules sends the time in its query: not the same traffic twice)
    run(project, "--wiretape=record", "-k", "not marker_rules").assert_outcomes(
        passed=8, deselected=1)
    tapes = sorted(p for p in (project.path / "tests/tapes").rglob("*.har"))
    assert len(tapes) == 6
    first = {p: p.read_text() for p in tapes}
    upstreams.counter[0] = 0  # the upstream answers the same again
    run(project, "--wiretape=record", "-k", "not marker_rules").assert_outcomes(
        passed=8, deselected=1)
    assert sorted((project.path / "tests/tapes").rglob("*.har")) == tapes
    changed = []
    for path, before in first.items():
        after = path.read_text()
        assert len(before.splitlines()) == len(after.splitlines()), path
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0):
            if line.startswith(("---", "+++", "@@")):
                continue
            changed.append(line)
            assert TIME_LINE.match(line[1:]), f"{path.name}: {line}"
    assert any('"capturedNs"' in line for line in changed)  # the times did change
    assert not any('"id":' in text for text in first.values())  # no store ids in git


def test_marker_rules_and_redaction(project: pytest.Pytester, upstreams: Upstreams) -> None:
    run(project, "--wiretape=record", "tests/test_more.py").assert_outcomes(passed=5)
    text = (project.path / "tests/tapes/test_more/test_marker_rules.har").read_text()
    assert "hunter2" not in text
    assert '"value": "REDACTED"' in text
    assert '"ignore_query": [\n          "ts"\n        ]' in text
    listeners = offline(upstreams)
    try:
        # another ts each run: ignored by the marker's rule
        run(project, "--wiretape=replay", "tests/test_more.py").assert_outcomes(passed=5)
    finally:
        for listener in listeners:
            listener.close()


SESSION_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY",
                "no_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                "NODE_EXTRA_CA_CERTS"]


def test_inactive_without_a_mode(project: pytest.Pytester,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("EXPECTED_ENV", json.dumps({v: os.environ.get(v) for v in SESSION_VARS}))
    project.makepyfile(test_inactive="""
        import json, os, sys

        def test_nothing_started_or_imported():
            expected = json.loads(os.environ["EXPECTED_ENV"])
            assert {v: os.environ.get(v) for v in expected} == expected
            # the plugin's own modules and the store's tape-name rule (plain Python) are
            # all of wiretape that got imported (other plugins in this venv import
            # sqlalchemy, so that is no signal here)
            ours = sorted(m for m in sys.modules if m.startswith("wiretape"))
            assert ours == ["wiretape", "wiretape.cli", "wiretape.cli.pytest_plugin",
                            "wiretape.cli.pytest_plugin.tapes", "wiretape.storage",
                            "wiretape.storage.errors", "wiretape.storage.names"]
            assert "mitmproxy" not in sys.modules

        def test_fixture_skips(wiretape):
            raise AssertionError("not reached")
    """)
    result = run(project, "test_inactive.py", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*wiretape is off: run with --wiretape=record, replay or once*"])
    assert "wiretape:" not in result.stdout.str().split("\n", 3)[3]  # no header line
    # -p no:wiretape removes it: no fixture
    result = run(project, "test_inactive.py", "-p", "no:wiretape", "--wiretape=replay")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --wiretape=replay*"])


def test_bad_settings_are_one_line(project: pytest.Pytester,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRETAPE_PYTEST", "sometimes")
    result = run(project, "tests/test_app.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: wiretape mode 'sometimes' must be record, replay, once or off"])
    monkeypatch.delenv("WIRETAPE_PYTEST")
    project.makepyfile(test_bad_marker="""
        import pytest

        @pytest.mark.wiretape(tape="no/slashes")
        def test_bad():
            pass
    """)
    result = run(project, "--wiretape=replay", "test_bad_marker.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*wiretape: wiretape marker: tape 'no/slashes' must be*"])


def test_a_proxy_that_cannot_start_is_a_usage_error(project: pytest.Pytester) -> None:
    """serve starts while pytest collects (once a first session has cached a CA); if it
    fails, no test runs and pytest says why."""
    run(project, "--wiretape=replay", "tests/test_app.py::test_without_http"
        ).assert_outcomes(passed=1)
    project.makefile(".ini", pytest=INI.replace("--upstream-insecure",
                                                "--replay-latency sometimes"))
    result = run(project, "--wiretape=replay", "tests/test_app.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: wiretape: cannot start the proxy: wiretape serve "
                                 "exited with status 2:*"])
    assert "--replay-latency 'sometimes' must be" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert " passed" not in result.stdout.str()
    # the failure showed once collection was done: serve had started alongside it
    result.stdout.fnmatch_lines(["collected * items"])


def test_audit_fails_breaking_drift_and_warns_of_lesser(
        project: pytest.Pytester, upstreams: Upstreams) -> None:
    run(project, "--wiretape=record", "tests/test_app.py::test_order",
        "tests/test_more.py::test_shared_first").assert_outcomes(passed=2)
    # the live service changed: order 7 lost a field (breaking), order 1 gained one
    upstreams.http.route("GET /orders/7", Reply(200, {"id": 7}))
    upstreams.http.route("GET /orders/1", _order(1, {"currency": "EUR"}))
    result = run(project, "--wiretape-audit", "tests/test_app.py::test_order",
                 "tests/test_more.py::test_shared_first")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    report = out[out.index("___ test_order ___"):]
    assert "wiretape audit: the live services drifted from tape tests.test_app.test_order" \
        in report
    assert "breaking" in report and "response.body.status" in report
    assert "WiretapeDriftWarning: tape orders-shared" in out
    assert "additive" in out
