"""Shared fixtures: a throwaway PostgreSQL, fresh migrated databases, upstreams, serve."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from wiretape.storage import db

from bench.pg import PostgresUnavailable, pg_bin
from tests.artifacts import Artifacts, shared_artifacts
from tests.helpers import Serve, Upstream, port_open, wait_for

# tests/pytest_plugin runs example projects through pytest itself
pytest_plugins = ["pytester"]


def _pg_bin(name: str) -> str:
    try:
        return pg_bin(name)
    except PostgresUnavailable as e:
        raise RuntimeError(f"{e}; PostgreSQL tests fail rather than skip") from e


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """initdb with trust auth into a temp dir, pg_ctl on a free loopback port; run as the
    `postgres` user when we are root, because PostgreSQL refuses to run as root.

    PostgreSQL cannot bind port 0 and say which port it got, so it is given a port that was
    free a moment ago, and another one if something took it in between."""

    ATTEMPTS = 5

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wiretape-pg-"))
        self.data = self.dir / "data"
        self.port = 0
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)

    def _run(self, *cmd: str) -> None:
        full = (["runuser", "-u", "postgres", "--", *cmd] if self.as_root else list(cmd))
        subprocess.run(full, check=True, capture_output=True, cwd="/")

    def start(self) -> str:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        log = self.dir / "log"
        for attempt in range(1, self.ATTEMPTS + 1):
            self.port = _unused_port()
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off "
                    f"-c synchronous_commit=off -c full_page_writes=off "
                    f"-c unix_socket_directories={self.dir} -c max_connections=300")
            log.unlink(missing_ok=True)
            try:
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                          str(log), "-w", "-t", "60", "start")
                break
            except subprocess.CalledProcessError:
                taken = "address already in use" in log.read_text(errors="replace").lower()
                if not taken or attempt == self.ATTEMPTS:
                    raise
        wait_for(lambda: port_open(self.port), 30, "PostgreSQL to listen")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (started here unless
    WIRETAPE_TEST_DATABASE_URL is set). Never skips: a test that needs it fails."""
    given = os.environ.get("WIRETAPE_TEST_DATABASE_URL")
    if given:
        yield db.check_url(given)
        return
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


def new_pg_database(admin_url: str) -> str:
    """A new, empty database on the throwaway PostgreSQL server."""
    name = f"wt_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Factory of empty databases (not migrated) on the test's backend."""
    def make() -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'wiretape-{uuid.uuid4().hex[:6]}.db'}"
        return new_pg_database(request.getfixturevalue("pg_admin_url"))
    return make


@pytest.fixture
def db_url(new_db_url: Callable[[], str]) -> str:
    """A fresh database on SQLite and on PostgreSQL, built by running the migrations."""
    url = new_db_url()
    db.upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh migrated SQLite database, for tests of proxy behaviour that does not depend
    on the backend (the storage-heavy tests use `db_url`, which runs on both)."""
    url = f"sqlite:///{tmp_path / 'wiretape.db'}"
    db.upgrade(url)
    return url


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: held by a bound socket that never listens,
    so no other test can start listening on it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream().start()
    yield up
    up.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """Start real `wiretape serve` processes; each is stopped (SIGTERM) at the end."""
    started: list[Serve] = []

    def start(db_url: str, *args: str, **kw: object) -> Serve:
        kw.setdefault("workdir", tmp_path)
        s = Serve(db_url, *args, **kw)  # type: ignore[arg-type]
        started.append(s)
        return s.ready()

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Artifacts:
    """The sdist and wheel of this checkout, and a fresh virtualenv holding the wheel: what
    `pip install wiretape` gives a user. Built once per run, whatever the xdist workers."""
    base = tmp_path_factory.getbasetemp()
    return shared_artifacts(base if worker_id == "master" else base.parent)
