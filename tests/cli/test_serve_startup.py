"""`wiretape serve` start-up: ports in use and stores it cannot use are one line and exit 2;
port 0 binds free ports and reports the real ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import LISTENING, WIRETAPE_BIN, Reply, Upstream


def serve_cli(tmp_path: Path, *args: str,
              db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    return subprocess.run(
        [WIRETAPE_BIN, "serve", "--db", db or f"sqlite:///{tmp_path / 'w.db'}",
         "--confdir", str(tmp_path / "conf"), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )


def one_line_exit_2(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "CancelledError" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("flag", ["--listen", "--admin"])
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path, taken_port, flag):
    other = "--admin" if flag == "--listen" else "--listen"
    line = one_line_exit_2(serve_cli(tmp_path, flag, f"127.0.0.1:{taken_port}",
                                 other, "127.0.0.1:0"))
    assert line == (f"wiretape: error: cannot listen on 127.0.0.1:{taken_port} ({flag}): "
                    "address already in use")
    # nothing was started or migrated before the port was found taken
    assert not (tmp_path / "w.db").exists()


@pytest.mark.parametrize("path, why", [
    ("/proc/wiretape.db", "unable to open database file"),  # a file system refusing files
    ("{tmp}/a-file/wiretape.db", "a file is in the way"),  # its folder cannot be made
])
def test_an_unusable_sqlite_file_is_one_line_and_exit_2(tmp_path, path, why):
    (tmp_path / "a-file").write_text("not a folder")
    db = "sqlite:///" + path.format(tmp=tmp_path)
    line = one_line_exit_2(serve_cli(tmp_path, "--listen", "127.0.0.1:0",
                                 "--admin", "127.0.0.1:0", db=db))
    assert line.startswith("wiretape: error: cannot ")
    assert why in line


def test_unreachable_postgresql_says_where_and_that_it_will_not_retry(tmp_path, refusing_port):
    port = refusing_port
    db = f"postgresql+psycopg://wiretape:s3cret-pw@127.0.0.1:{port}/tapes"
    line = one_line_exit_2(serve_cli(tmp_path, "--listen", "127.0.0.1:0",
                                 "--admin", "127.0.0.1:0", db=db))
    assert f"PostgreSQL database tapes at 127.0.0.1:{port}" in line
    assert "not retrying" in line
    assert "s3cret-pw" not in line


def test_port_0_binds_free_ports_and_reports_them(sqlite_url, serve, upstream: Upstream):
    upstream.route("GET /hello", Reply(200, "hi"))
    wt = serve(sqlite_url)  # tests.helpers.Serve passes --listen/--admin 127.0.0.1:0
    found = LISTENING.search(wt.log())
    assert found is not None
    assert (found["proxy"], found["admin"]) == ("127.0.0.1", "127.0.0.1")
    health = httpx.get(f"http://127.0.0.1:{found['aport']}/api/health", trust_env=False).json()
    assert health["proxy"] == f"127.0.0.1:{found['pport']}"
    assert health["admin"] == f"127.0.0.1:{found['aport']}"
    assert int(found["pport"]) not in (0, 8080) and int(found["aport"]) not in (0, 8081)
    # the reported proxy address is the one that answers
    with httpx.Client(proxy=f"http://{health['proxy']}", trust_env=False) as c:
        assert c.get(f"{upstream.url}/hello").text == "hi"


def _modes(db_file: Path) -> dict[str, int]:
    found = {}
    for suffix in ("", "-wal", "-shm"):
        f = Path(f"{db_file}{suffix}")
        if f.exists():
            found[f.name] = f.stat().st_mode & 0o777
    return found


def test_the_sqlite_files_are_owner_only(tmp_path, serve, upstream: Upstream):
    """The store holds every recorded body: the database and its -wal/-shm files are 0600
    from their creation, whatever the umask, and an older world-readable store is made
    owner-only again on start."""
    upstream.route("GET /x", Reply(200, "x"))
    old = os.umask(0o022)
    try:
        new = tmp_path / "new" / "w.db"
        s = serve(f"sqlite:///{new}")
        with s.client() as c:
            assert c.get(f"{upstream.url}/x").status_code == 200
        assert s.api("GET", "/api/recordings").json()["items"]
        modes = _modes(new)
        assert set(modes) == {"w.db", "w.db-wal", "w.db-shm"}, modes
        assert set(modes.values()) == {0o600}, {k: oct(v) for k, v in modes.items()}
        s.stop()

        # a store made before this rule: readable by everyone
        for f in new.parent.iterdir():
            f.chmod(0o644)
        s = serve(f"sqlite:///{new}")
        assert set(_modes(new).values()) == {0o600}
        s.stop()
    finally:
        os.umask(old)
    # `wiretape db upgrade` (and every other command) creates a new store the same way
    other = tmp_path / "other.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    for _ in range(2):  # a new store, then one made readable by everyone since
        subprocess.run([WIRETAPE_BIN, "db", "upgrade", "--db", f"sqlite:///{other}"],
                       check=True, capture_output=True, env=env, cwd=tmp_path)
        assert set(_modes(other).values()) == {0o600}
        other.chmod(0o644)


def test_tape_file_with_deeply_nested_json(tmp_path, serve):
    """--tape-file: a 1,200-level JSON body is loaded and replayed byte for byte; a file
    nested too deep to read is one line and exit 2."""
    from tests.cli.test_cli_records import _har

    body = '{"a":' * 1200 + "1" + "}" * 1200
    deep = tmp_path / "deep.har"
    deep.write_text(_har(body))
    s = serve(f"sqlite:///{tmp_path / 'd.db'}", "--mode", "replay", "--tape-file", str(deep))
    with s.client() as c:
        r = c.post("http://a.test/deep", content=body,
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.text == "ok", r.text
        assert c.post("http://a.test/deep", content=body + " ").status_code == 502
    s.stop()
    assert "Traceback" not in s.log()

    too_deep = tmp_path / "too-deep.har"
    too_deep.write_text(_har("{}", "[" * 100_000 + "]" * 100_000))
    line = one_line_exit_2(serve_cli(tmp_path, "--listen", "127.0.0.1:0", "--admin",
                                     "127.0.0.1:0", "--tape-file", str(too_deep)))
    assert line.endswith("not a HAR file: its JSON is nested too deeply to read"), line


def test_start_up_imports_nothing_only_an_audit_or_a_diff_needs() -> None:
    # httpx (the audit's client), deepdiff (diffs) and alembic (only for a store behind the
    # newest schema) cost about 0.1 s of every start, the pytest plugin's sessions included
    code = ("import sys, wiretape.cli.serve\n"
            "print(' '.join(m for m in ('httpx', 'deepdiff', 'alembic') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_inherited_sockets_take_requests_sent_before_serve_is_ready(tmp_path, upstream):
    """`--listen fd:N --admin fd:M`: a harness binds the ports, sets its clients up and
    sends requests at once; they wait in the socket's backlog until serve answers."""
    proxy_sock, admin_sock = _listening_socket(), _listening_socket()
    fds = (proxy_sock.fileno(), admin_sock.fileno())
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    proc = subprocess.Popen(
        [WIRETAPE_BIN, "serve", "--db", f"sqlite:///{tmp_path / 'w.db'}", "--confdir",
         str(tmp_path / "conf"), "--listen", f"fd:{fds[0]}", "--admin", f"fd:{fds[1]}"],
        pass_fds=fds, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    proxy = f"http://127.0.0.1:{proxy_sock.getsockname()[1]}"
    admin = f"http://127.0.0.1:{admin_sock.getsockname()[1]}"
    try:
        upstream.route("GET /early", Reply(200, "through the inherited socket"))
        with httpx.Client(proxy=proxy, trust_env=False, timeout=60) as c:
            assert c.get(f"{upstream.url}/early").text == "through the inherited socket"
        health = httpx.get(f"{admin}/api/health", timeout=30).json()
        assert health["proxy"] == proxy.removeprefix("http://")
        assert health["admin"] == admin.removeprefix("http://")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
        proxy_sock.close()
        admin_sock.close()
    assert proc.returncode == 0, stderr
    assert f"proxy on {proxy.removeprefix('http://')}" in stderr


@pytest.mark.parametrize(("value", "says"), [
    ("fd:abc", "fd:N takes a file descriptor number"),
    ("fd:987", "file descriptor 987 is not open"),
    ("fd:0", "file descriptor 0 is not a socket"),
])
def test_an_unusable_inherited_socket_is_one_line(tmp_path, value, says):
    p = serve_cli(tmp_path, "--listen", value)
    assert says in one_line_exit_2(p)
