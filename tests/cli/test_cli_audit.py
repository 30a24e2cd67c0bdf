"""`wiretape audit` end to end: record v1 through the real proxy, ship a new version of the
service, audit the tape as a CI job would."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select
from wiretape.storage import db
from wiretape.storage import models as m

from tests.drift.support import (
    Payments,
    generous_durations,
    run,
)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'wiretape.db'}"
    db.upgrade(url)
    return url


def findings(report: dict) -> dict[str, list[tuple[str, str]]]:
    """{url path: [(class, path)]} of the recordings that drifted."""
    return {r["url"].split(":", 2)[2].split("/", 1)[1]: [(f["class"], f["path"])
                                                         for f in r["findings"]]
            for r in report["results"] if r["findings"]}


def test_audit_reports_exactly_what_the_new_version_changed(sqlite_url, payments: Payments,
                                                            serve, tmp_path) -> None:
    rec = serve(sqlite_url, "--tape", "payments", "--redact-header", "X-Session")
    with rec.client() as c:
        for target in ("/payments/7", "/status"):
            r = c.get(payments.url + target,
                      headers={"Authorization": "Bearer live-secret", "X-Session": "s1"})
            assert r.status_code == 200
    assert rec.stop() == 0
    generous_durations(sqlite_url)
    seen = len(payments.upstream.seen)
    db_ = ["--db", sqlite_url]

    # the service as recorded: timestamps and request ids differ on every call, yet no drift
    same = run("audit", "--tape", "payments", *db_)
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.startswith("audit 1 of tape payments: PASS")
    # credentials were redacted when recording and are not re-sent unless given
    resent = payments.upstream.seen[seen]
    assert "Authorization" not in resent.headers and "X-Session" not in resent.headers

    # the new version: removes a field, adds one, changes a type
    payments.version = 2
    out = run("audit", "--tape", "payments", "--format", "json", "--concurrency", "2",
              "--header", "Authorization: Bearer staging-token", *db_)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert findings(report) == {"payments/7": [
        ("breaking", "response.body.amount"),
        ("breaking", "response.body.customer"),
        ("additive", "response.body.currency"),
    ]}
    assert payments.upstream.seen[-1].headers["Authorization"] == "Bearer staging-token"
    assert report["summary"]["by_class"] == {"breaking": 2, "additive": 1, "value": 0,
                                             "latency": 0}
    learned = set().union(*report["summary"]["noise_learned"].values())
    assert {"response.body.timestamp", "response.body.request_id",
            "response.headers.x-request-id"} <= learned
    assert "staging-token" not in json.dumps(report)

    # JUnit for the CI server, and the one-glance text in the log next to it
    xml_file = tmp_path / "audit.xml"
    out = run("audit", "--tape", "payments", "--format", "junit", "-o", str(xml_file), *db_)
    assert out.returncode == 1
    suite = ET.parse(xml_file).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.find(".//failure")
    assert failure is not None and failure.get("type") == "breaking"
    assert "field response.body.customer removed" in (failure.text or "")
    assert out.stdout.splitlines()[:3] == [
        "audit 3 of tape payments: FAIL: drift at or above breaking",
        "2 recordings audited, 1 drifted, 1 at or above breaking",
        "breaking: 2, additive: 1, value: 0, latency: 0",
    ]

    # --refresh re-records what drifted; then the tape tells the truth again
    out = run("audit", "--tape", "payments", "--refresh", *db_)
    assert out.returncode == 1 and "re-recorded 1 drifted recording(s)" in out.stdout
    engine = db.make_engine(sqlite_url)
    try:
        with db.make_sessions(engine)() as s:
            rows = s.scalars(select(m.Recording).order_by(m.Recording.id)).all()
            body = json.loads(rows[0].response_body)
            assert body["currency"] == "EUR" and "customer" not in body
            assert b"live-secret" not in rows[0].response_body
            assert [r.last_verdict for r in rows] == ["refreshed", "ok"]
    finally:
        engine.dispose()
    generous_durations(sqlite_url)
    again = run("audit", "--tape", "payments", "--format", "json", *db_)
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["summary"]["drifted"] == 0

    # --fail-on: an added field alone is additive, below the default threshold
    payments.version = 3
    assert run("audit", "--tape", "payments", *db_).returncode == 0
    additive = run("audit", "--tape", "payments", "--fail-on", "additive", *db_)
    assert additive.returncode == 1
    assert "additive: field response.body.fee added (number)" in additive.stdout


def test_audit_usage_errors(sqlite_url, payments: Payments) -> None:
    for args in (["--tape", "nope"], ["--header", "no colon"], ["--fail-on", "everything"]):
        out = run("audit", *args, "--db", sqlite_url)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_audit_of_an_unreachable_upstream_is_breaking(sqlite_url, payments: Payments,
                                                      tmp_path) -> None:
    from tests.drift.support import add, live_exchange

    add(sqlite_url, "t", live_exchange(payments.url, "/status"))
    payments.upstream.stop()
    out = run("audit", "--tape", "t", "--timeout", "2", "--refresh", "--format", "json",
              "--db", sqlite_url)
    assert out.returncode == 1
    result = json.loads(out.stdout)["results"][0]
    assert result["verdict"] == "breaking" and result["live_failure"] == "refused"
    assert result["refreshed"] is False  # an outage never overwrites a recording
