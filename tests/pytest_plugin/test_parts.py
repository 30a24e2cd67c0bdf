"""The plugin's parts that need no proxy: tape names and files, markers, the texts, the
environment, and `python -m wiretape.cli` (how the plugin starts serve)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from wiretape.cli.pytest_plugin.admin import parse_counters
from wiretape.cli.pytest_plugin.explain import explain_misses, plain_nodeid, summary_lines
from wiretape.cli.pytest_plugin.runner import Mode, Options
from wiretape.cli.pytest_plugin.server import EnvPatch, ServeProcess
from wiretape.cli.pytest_plugin.tapes import (
    MarkerError,
    marker_options,
    tape_file_for,
    tape_name_for,
)
from wiretape.cli.serve import _bound_socket
from wiretape.cli.settings import Address, check_tape_name
from wiretape.storage.errors import WiretapeError


@pytest.mark.parametrize(("nodeid", "name"), [
    ("tests/test_app.py::test_login", "tests.test_app.test_login"),
    ("tests/api/test_x.py::TestOrders::test_pay", "tests.api.test_x.TestOrders.test_pay"),
    ("test_top.py::test_a", "test_top.test_a"),
])
def test_tape_names_read_like_the_node_id(nodeid: str, name: str) -> None:
    assert tape_name_for(nodeid) == name


@pytest.mark.parametrize("nodeid", [
    "tests/test_app.py::test_p[a/b-1]",
    "tests/test_app.py::test_p[a/b_1]",
    "tests/test_app.py::test_p[..]",
    "tests/test_app.py::test_p[ünïcode]",
    "_private/test_x.py::test_y",
    "tests/test_app.py::test_" + "long" * 80,
    "tests/test_app.py::test_" + "long" * 80 + "[x]",
])
def test_every_node_id_gets_a_valid_stable_distinct_tape_name(nodeid: str) -> None:
    name = tape_name_for(nodeid)
    assert check_tape_name(name) == name  # the store's own rule
    assert tape_name_for(nodeid) == name
    assert name != tape_name_for(nodeid + "x")


def test_bad_names_are_what_the_store_refuses() -> None:
    from wiretape.cli.pytest_plugin.tapes import valid_tape_name

    for name in ("a", "a.b", "a_b-c.1", "x" * 200, "x" * 201, "a..b", ".a", "a/b", "", "ä"):
        try:
            check_tape_name(name)
            ok = True
        except WiretapeError:
            ok = False
        assert valid_tape_name(name) is ok, name


def test_tape_files_live_under_the_tapes_folder(tmp_path: Path) -> None:
    root = tmp_path
    tapes = root / "tests" / "tapes"
    module = root / "tests" / "api" / "test_orders.py"
    assert tape_file_for("tests/api/test_orders.py::test_pay", module, tapes, root) == \
        tapes / "api" / "test_orders" / "test_pay.har"
    assert tape_file_for("tests/api/test_orders.py::TestX::test_p[a/b]", module, tapes,
                         root) == tapes / "api" / "test_orders" / "TestX.test_p[a_b].har"
    # a module outside the tapes folder's parent: its path from the root directory
    other = root / "src" / "pkg" / "test_m.py"
    assert tape_file_for("src/pkg/test_m.py::test_a", other, tapes, root) == \
        tapes / "src" / "pkg" / "test_m" / "test_a.har"


def mark(*args: Any, **kwargs: Any) -> SimpleNamespace:
    return SimpleNamespace(args=args, kwargs=kwargs)


def test_markers_merge_closest_first() -> None:
    opts = marker_options([
        mark(ignore_query=["ts"]),  # the function's
        mark("shared", ignore_query=["page"], match_headers=["X-Tenant"], ignore_host=True),
        mark(redact_headers="X-Secret"),  # the module's
    ])
    assert opts.tape == "shared"
    assert opts.matching == {"ignore_query": ["ts"], "match_headers": ["X-Tenant"],
                             "ignore_host": True}
    assert opts.redact == {"redact_headers": ("X-Secret",)}
    assert marker_options([]).tape is None


@pytest.mark.parametrize(("marks", "message"), [
    ([mark("a", "b")], "the only positional argument is the tape name"),
    ([mark(tape="a/b")], "tape 'a/b' must be 1-200 letters"),
    ([mark(ignore_qery=["x"])], "unknown option 'ignore_qery'"),
    ([mark(ignore_query=[1])], "ignore_query must be a list of non-empty strings"),
    ([mark(ignore_host="yes")], "ignore_host must be True or False"),
])
def test_bad_markers_say_what_is_wrong(marks: list[SimpleNamespace], message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        marker_options(marks)


MISS = {
    "id": 4, "tape": "t", "at": "2026-01-01T00:00:00Z",
    "request": {"method": "GET", "url": "http://api.test/orders/8"},
    "closest": [{"id": 1, "url": "http://api.test/orders/7",
                 "differences": ["path: '/orders/8' != '/orders/7'"]}],
}


def test_a_miss_explained() -> None:
    text = explain_misses([MISS, {**MISS, "closest": []}], tape="t", file="tests/tapes/x.har",
                          file_existed=True, nodeid="tests/test_x.py::test_y[a b]")
    assert text.splitlines() == [
        "wiretape: 2 requests did not match any recording of tape t (tests/tapes/x.har)",
        "",
        "  GET http://api.test/orders/8",
        "    closest recordings:",
        "      http://api.test/orders/7",
        "        - path: '/orders/8' != '/orders/7'",
        "",
        "  GET http://api.test/orders/8",
        "    the tape holds no recording to compare it with",
        "",
        "record what is missing:  pytest --wiretape=once 'tests/test_x.py::test_y[a b]'",
        "record the test afresh:  pytest --wiretape=record 'tests/test_x.py::test_y[a b]'",
    ]
    assert "the tape file does not exist" in explain_misses(
        [MISS], tape="t", file="f", file_existed=False, nodeid="n")
    assert summary_lines({"tests/test_x.py::test_y": [MISS]})[:3] == [
        "1 request matched no recording, in 1 test:",
        "tests/test_x.py::test_y",
        "  GET http://api.test/orders/8  (path: '/orders/8' != '/orders/7')",
    ]


def test_counters_from_metrics_text() -> None:
    text = """\
# HELP wiretape_requests_total Requests through the proxy
# TYPE wiretape_requests_total counter
wiretape_requests_total{mode="record",outcome="recorded"} 3.0
wiretape_requests_total{mode="replay",outcome="recorded"} 2.0
wiretape_requests_total{mode="replay",outcome="miss"} 4.0
wiretape_requests_total{mode="replay",outcome="replayed"} 9.0
wiretape_requests_created{mode="replay",outcome="miss"} 1.7e+09
wiretape_recordings_written_total 5.0
wiretape_write_queue_depth 1.0
"""
    c = parse_counters(text)
    assert (c.recorded, c.missed, c.written, c.queued) == (5.0, 4.0, 5.0, 1.0)


def test_env_patch_puts_back_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WT_A", "before")
    monkeypatch.delenv("WT_B", raising=False)
    patch = EnvPatch()
    patch.set({"WT_A": "1", "WT_B": "2"})
    patch.set({"WT_A": "3"})
    assert (os.environ["WT_A"], os.environ["WT_B"]) == ("3", "2")
    patch.restore()
    assert os.environ["WT_A"] == "before" and "WT_B" not in os.environ


def test_redaction_and_serve_args_become_serve_flags(tmp_path: Path) -> None:
    opts = Options(mode=Mode.REPLAY, tapes_dir=tmp_path, rootdir=tmp_path,
                   serve_args=("--upstream-insecure",),
                   redact={"redact_headers": ("X-B", "X-A"), "redact_json": ("pin",)})
    assert opts.serve_flags() == ["--upstream-insecure", "--redact-header", "X-A",
                                  "--redact-header", "X-B", "--redact-json", "pin"]
    assert opts.upstream_insecure


def test_python_m_wiretape_cli_runs_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "wiretape.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wiretape, version ")


def test_sessions_reuse_a_migrated_store_and_a_ca(tmp_path: Path) -> None:
    """The first session caches what costs start-up time; the next ones copy it in."""
    cache = tmp_path / "cache"
    first = ServeProcess(cache=cache, workdir=tmp_path / "one")
    first.start()
    try:
        first.wait_ready()
        ca = first.ca_cert.read_bytes()
        made = first.api().call("GET", "/api/tapes")[0]
    finally:
        first.stop()
    assert (cache / "store.db").is_file() and (cache / "ca" / "mitmproxy-ca-cert.pem").is_file()
    assert stat.S_IMODE((cache / "ca" / "mitmproxy-ca.pem").stat().st_mode) == 0o600
    second = ServeProcess(cache=cache, workdir=tmp_path / "two")
    second.start()
    try:
        second.wait_ready()
        assert second.ca_cert.read_bytes() == ca
        # the same store as the first one left it when it was ready
        tapes = second.api().call("GET", "/api/tapes")
        assert [(t["name"], t["created_at"]) for t in tapes] == [
            ("default", made["created_at"])]
    finally:
        second.stop()


def test_serve_sockets_say_they_are_tcp() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is TCP; without it every
    # kept-alive admin API answer waited for a delayed ACK
    sock = _bound_socket(Address("127.0.0.1", 0), "--admin")
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.parametrize(("nodeid", "plain"), [
    ("tests/a.py::test_b@wiretape-shared", "tests/a.py::test_b"),
    ("tests/a.py::test_b[user@host]", "tests/a.py::test_b[user@host]"),
    ("tests/a.py::test_b[user@host]@wiretape-x", "tests/a.py::test_b[user@host]"),
    ("tests/at@dir/a.py::test_b", "tests/at@dir/a.py::test_b"),
])
def test_hints_name_a_test_as_pytest_takes_it(nodeid: str, plain: str) -> None:
    assert plain_nodeid(nodeid) == plain
