"""`wiretape ls`, `wiretape export` and `wiretape import` as a user runs them, both backends."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from wiretape.storage import repository as repo

from tests.api.conftest import Store, make_exchange
from tests.helpers import WIRETAPE_BIN

NS = 1_700_000_000_000_000_000


def wiretape(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    env["COLUMNS"] = "200"
    return subprocess.run([WIRETAPE_BIN, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, input=stdin)


def seed(url: str) -> list[int]:
    store = Store(url)
    try:
        return store.add(
            "shop",
            make_exchange(url="http://api.test/items/1", body='{"name": "blue widget"}', ns=NS),
            make_exchange(method="POST", url="http://api.test/orders", status=201,
                          ns=NS + 10**9),
            make_exchange(url="http://other.test/x", status=404, body="nope",
                          headers=(("Content-Type", "text/plain"),), ns=NS + 2 * 10**9),
        ) + store.add("misc", make_exchange(ns=NS))
    finally:
        store.close()


def test_ls_prints_a_table_with_the_list_filters(db_url, tmp_path):
    ids = seed(db_url)
    p = wiretape("ls", "--db", db_url, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:9] == ["ID", "TAPE", "SEQ", "METHOD", "STATUS", "MS", "SIZE",
                                    "RECORDED", "(UTC)"]
    assert lines[0].split()[-1] == "URL"
    assert [int(line.split()[0]) for line in lines[1:]] == sorted(ids, reverse=True)
    row = next(line for line in lines if line.split()[0] == str(ids[1]))
    assert row.split()[1:5] == ["shop", "0", "POST", "201"]
    assert row.endswith("http://api.test/orders")

    def listed(*args: str) -> list[int]:
        p = wiretape("ls", "--db", db_url, *args, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return [int(line.split()[0]) for line in p.stdout.splitlines()[1:]]

    assert listed("--tape", "shop") == ids[2::-1]
    assert listed("--tape", "shop", "--method", "post") == [ids[1]]
    assert listed("--tape", "shop", "--status", "404") == [ids[2]]
    assert listed("--tape", "shop", "--host", "other.test") == [ids[2]]
    assert listed("--tape", "shop", "--path", "/items") == [ids[0]]
    assert listed("-q", "Blue Widget") == [ids[0]]
    assert listed("--tape", "shop", "--since", "2023-11-14T22:13:21Z") == [ids[2], ids[1]]
    assert listed("--tape", "shop", "--until", "2023-11-14T22:13:21+00:00") == [ids[0]]
    assert listed("--limit", "2") == sorted(ids, reverse=True)[:2]

    p = wiretape("ls", "--db", db_url, "--tape", "shop", "-q", "no-such-text", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == "" and "no recordings" in p.stderr


def test_ls_mistakes_are_one_line_and_exit_2(db_url, tmp_path):
    seed(db_url)
    for args, words in ((["--tape", "nope"], "not found"), (["--tape", "../x"], "tape name"),
                        (["--since", "last week"], "ISO 8601"), (["--status", "42"], "42"),
                        (["--limit", "0"], "0")):
        p = wiretape("ls", "--db", db_url, *args, cwd=tmp_path)
        assert p.returncode == 2, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_export_then_import_into_another_store(db_url, new_db_url, tmp_path):
    seed(db_url)
    har = tmp_path / "shop.har"
    p = wiretape("export", "--db", db_url, "--tape", "shop", "-o", str(har), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "exported 3 recordings" in p.stderr
    doc = json.loads(har.read_text())
    assert doc["log"]["version"] == "1.2" and len(doc["log"]["entries"]) == 3
    out = wiretape("export", "--db", db_url, "--tape", "shop", cwd=tmp_path)
    assert json.loads(out.stdout) == doc  # to standard output by default

    other = new_db_url()  # a brand-new database: import migrates it first
    p = wiretape("import", str(har), "--db", other, "--tape", "copy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "imported 3 recordings into tape copy"

    def dump(url: str, tape: str) -> list:
        store = Store(url)
        try:
            with store.session() as s:
                return [(r.method, r.url, r.status, r.seq, r.match_key, r.request_body,
                         r.response_body, r.response_headers, r.captured_ns)
                        for r in repo.tape_recordings(s, tape)]
        finally:
            store.close()

    assert dump(other, "copy") == dump(db_url, "shop")
    # again: appended; with --replace: exactly the file
    wiretape("import", str(har), "--db", other, "--tape", "copy", cwd=tmp_path)
    assert len(dump(other, "copy")) == 6
    p = wiretape("import", "-", "--db", other, "--tape", "copy", "--replace", cwd=tmp_path,
                 stdin=har.read_text())
    assert p.returncode == 0, p.stderr
    assert dump(other, "copy") == dump(db_url, "shop")


def test_import_redacts_and_rejects_bad_files(db_url, tmp_path):
    entry = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
             "request": {"method": "GET", "url": "http://a.test/x",
                         "headers": [{"name": "Authorization", "value": "Bearer s3cret"},
                                     {"name": "X-Private", "value": "p4ss"}]},
             "response": {"status": 200, "headers": [], "content": {"text": "ok"}}}
    good = tmp_path / "good.har"
    good.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
    p = wiretape("import", str(good), "--db", db_url, "--tape", "t",
                 "--redact-header", "X-Private", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = wiretape("export", "--db", db_url, "--tape", "t", cwd=tmp_path).stdout
    assert "s3cret" not in out and "p4ss" not in out and "REDACTED" in out

    bad = tmp_path / "bad.har"
    bad.write_text(json.dumps({"log": {"entries": [entry, {"request": entry["request"]}]}}))
    for path, words in ((bad, "log.entries[1].response must be an object"),
                        (tmp_path / "missing.har", "cannot read"),
                        (tmp_path, "")):
        p = wiretape("import", str(path), "--db", db_url, "--tape", "t2", cwd=tmp_path)
        assert p.returncode == 2, (path, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr, p.stderr
    p = wiretape("ls", "--db", db_url, "--tape", "t2", cwd=tmp_path)
    assert p.returncode == 2  # nothing of the bad file was stored, not even the tape
    p = wiretape("export", "--db", db_url, "--tape", "nope", cwd=tmp_path)
    assert p.returncode == 2 and "not found" in p.stderr


def _har(body: str, extra: str = "") -> str:
    entry = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1,
             "request": {"method": "POST", "url": "http://a.test/deep",
                         "headers": [{"name": "Content-Type", "value": "application/json"}],
                         "postData": {"mimeType": "application/json", "text": body}},
             "response": {"status": 200, "headers": [], "content": {"text": "ok"}}}
    doc = json.dumps({"log": {"version": "1.2", "entries": [entry], "_x": None}})
    return doc.replace('"_x": null', f'"_x": {extra or "null"}')


def test_deeply_nested_json_in_a_har(db_url, tmp_path):
    """A 1,200-level JSON body imports (it is kept as opaque bytes, as the proxy records it)
    and exports again; a document nested too deep to read is one line and exit 2, and what
    the tape held stays."""
    seed(db_url)
    deep = tmp_path / "deep-body.har"
    body = '{"a":' * 1200 + '{"token": "t0k3n-123456"}' + "}" * 1200
    deep.write_text(_har(body))
    p = wiretape("import", str(deep), "--db", db_url, "--tape", "shop", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = wiretape("export", "--db", db_url, "--tape", "shop", cwd=tmp_path)
    assert out.returncode == 0 and "t0k3n-123456" not in out.stdout
    again = tmp_path / "again.har"
    again.write_text(out.stdout)
    p = wiretape("import", str(again), "--db", db_url, "--tape", "copy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr

    too_deep = tmp_path / "deep-doc.har"
    too_deep.write_text(_har("{}", "[" * 100_000 + "]" * 100_000))
    p = wiretape("import", str(too_deep), "--db", db_url, "--tape", "shop", "--replace",
                 cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].endswith("not a HAR file: its JSON is nested too deeply to read")
    ls = wiretape("ls", "--db", db_url, "--tape", "shop", cwd=tmp_path)
    assert ls.returncode == 0 and "/deep" in ls.stdout and "/items/1" in ls.stdout
