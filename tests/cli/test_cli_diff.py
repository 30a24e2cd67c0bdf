"""`wiretape diff` as a CI job runs it: the report formats and exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from tests.drift.support import run, seed_diff_tapes


def test_wiretape_diff_command(db_url, tmp_path) -> None:
    seed_diff_tapes(db_url)
    out = run("diff", "base", "branch", "--db", db_url)
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("5 changed, 1 added, 1 removed, 0 unchanged")
    assert "~ response.body.items[0].price: 10 -> 12" in out.stdout

    out = run("diff", "base", "branch", "--format", "json", "--strict", "--db", db_url)
    assert out.returncode == 1
    body = json.loads(out.stdout)
    assert len(body["changed"]) == 5 and body["noise"]["detected"] == {}

    report = tmp_path / "diff.xml"
    out = run("diff", "base", "branch", "--format", "junit", "-o", str(report), "--db", db_url)
    assert out.returncode == 1
    assert ET.parse(report).getroot().get("failures") == "6"
    assert out.stdout.startswith("5 changed")  # the glance, next to the file for CI

    same = run("diff", "base", "base", "--db", db_url)
    assert same.returncode == 0 and same.stdout.startswith("0 changed, 0 added, 0 removed")

    for args in (["base", "nope"], ["base", "branch", "--format", "xml"]):
        bad = run("diff", *args, "--db", db_url)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
