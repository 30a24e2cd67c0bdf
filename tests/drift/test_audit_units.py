"""The audit engine's small parts, tape diffs across matching rules, and migration 0003."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from wiretape.storage import compare, db
from wiretape.storage import repository as repo
from wiretape.storage.audit import (
    AuditOptions,
    InvalidDuration,
    InvalidHeader,
    parse_duration,
    parse_header,
    request_headers,
)
from wiretape.storage.diff import TapeDiff, diff_tapes
from wiretape.storage.exchange import Exchange, Request, Response
from wiretape.storage.matching import MatchRules
from wiretape.storage.noise import apply_endpoint_noise

from tests.drift.support import add


def test_parse_header() -> None:
    assert parse_header("Authorization: Bearer a:b ") == ("Authorization", "Bearer a:b")
    assert parse_header("X-Empty:") == ("X-Empty", "")
    for bad in ("no colon", ": value", "Bad Name: x"):
        with pytest.raises(InvalidHeader, match="must be 'Name: value'"):
            parse_header(bad)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("24h", 86400),
                                               ("1d", 86400), ("1.5h", 5400), ("45", 45),
                                               (" 2M ", 120)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1h", "1w", "h", "1h30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidDuration, match="e.g. 30s, 15m, 24h, 1d"):
        parse_duration(text)


def test_request_headers_leave_out_hop_by_hop_and_redacted_and_take_extras() -> None:
    req = Request("POST", "https", "api.test", 443, "/x", (
        ("Host", "api.test"), ("Authorization", "REDACTED"), ("Cookie", "REDACTED"),
        ("Connection", "keep-alive"), ("Content-Length", "2"), ("Proxy-Authorization", "x"),
        ("X-Api-Key", "REDACTED"), ("Accept", "*/*"), ("x-tenant", "a")), b"{}")
    assert request_headers(req, [("authorization", "Bearer t"), ("X-Tenant", "b")]) == [
        ("Host", "api.test"), ("Accept", "*/*"), ("authorization", "Bearer t"),
        ("X-Tenant", "b")]


def test_audit_options_are_stored_without_header_values() -> None:
    opts = AuditOptions(headers=(("Authorization", "Bearer secret"),))
    assert "secret" not in str(opts.to_dict())
    with pytest.raises(ValueError):
        AuditOptions(concurrency=0)


def _ex(target: str, body: bytes, host: str = "a.test") -> Exchange:
    return Exchange(Request("GET", "http", host, 80, target),
                    Response(200, (("Content-Type", "application/json"),), body))


def test_endpoint_noise_is_applied_pair_by_pair() -> None:
    a = [("k", 1, _ex("/x", b'{"v": 1, "ts": 1}')), ("j", 2, _ex("/y", b'{"ts": 1}'))]
    b = [("k", 3, _ex("/x", b'{"v": 2, "ts": 2}')), ("j", 4, _ex("/y", b'{"ts": 2}'))]
    result: TapeDiff = apply_endpoint_noise(diff_tapes(a, b),
                                            {"GET a.test/x": ["response.body.ts"]})
    changed = {p.url: [c.path for c in p.diff.changes] for p in result.changed}
    assert changed == {"http://a.test/x": ["response.body.v"],
                       "http://a.test/y": ["response.body.ts"]}
    assert dict(result.noise_detected) == {"GET a.test/x": ("response.body.ts",)}


def test_tape_diff_keys_the_branch_under_the_baseline_rules(db_url) -> None:
    add(db_url, "base", _ex("/items?page=1&cb=1", b'{"n": 1}'))
    add(db_url, "branch", _ex("/items?page=1&cb=2", b'{"n": 2}'))
    engine = db.make_engine(db_url)
    try:
        with db.make_sessions(engine).begin() as s:
            repo.set_matching(s, "base", MatchRules.create(ignore_query=["cb"]))
            result = compare.tape_diff(s, "base", "branch")
            assert (len(result.changed), len(result.added), len(result.removed)) == (1, 0, 0)
            assert [c.path for c in result.changed[0].diff.changes] == ["response.body.n"]
    finally:
        engine.dispose()


def test_migration_0003_downgrade_keeps_recordings(db_url) -> None:
    add(db_url, "t", _ex("/x", b"{}"))
    db.downgrade(db_url, "0002")
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM recordings")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM tapes")).scalar() == 1
    finally:
        engine.dispose()
    db.upgrade(db_url)
    assert db.current_revision(db_url) is not None
