"""Flag values several commands read: `Name: value` headers and durations."""

from __future__ import annotations

import pytest
from wiretape.cli.flags import InvalidDuration, parse_duration, parse_header
from wiretape.storage.headers import InvalidHeader

from tests.drift.support import run


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
    assert parse_duration(text, "--audit-every") == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1h", "1w", "h", "1h30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidDuration, match="e.g. 30s, 15m, 24h, 1d"):
        parse_duration(text, "--audit-every")


def test_audit_every_must_be_a_duration(tmp_path) -> None:
    for value in ("0s",):
        out = run("serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--audit-every", value)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().splitlines() == [
            f"wiretape: error: --audit-every {value!r} must be a positive number with s, m, h "
            "or d, e.g. 30s, 15m, 24h, 1d"]
    bad = run("serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--audit-header", "nope")
    assert bad.returncode == 2 and "--audit-header 'nope'" in bad.stderr
