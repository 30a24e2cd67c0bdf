"""Alembic migrations upgrade and downgrade on SQLite and PostgreSQL (pytest-alembic's
built-in checks, plus the `wiretape db` commands as a user runs them)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest
from pytest_alembic import tests as builtin
from pytest_alembic.plugin.fixtures import alembic_runner  # noqa: F401 - fixture
from sqlalchemy import Engine, inspect, text
from wiretape.storage import db

from tests.drift.factories import make_exchange
from tests.drift.support import add
from tests.helpers import WIRETAPE_BIN


@pytest.fixture
def alembic_config() -> dict[str, str]:
    from importlib import resources

    return {"script_location": str(resources.files("wiretape.migrations"))}


@pytest.fixture
def alembic_engine(new_db_url: Callable[[], str]) -> Iterator[Engine]:
    engine = db.make_engine(new_db_url())
    yield engine
    engine.dispose()


def test_single_head_revision(alembic_runner) -> None:  # noqa: F811
    builtin.test_single_head_revision(alembic_runner)


def test_head_revision_constant_is_alembics_head(alembic_runner) -> None:  # noqa: F811
    # serve skips alembic when the store is at db.HEAD_REVISION: it must be the real head
    assert alembic_runner.heads == [db.HEAD_REVISION]


def test_ensure_current_upgrades_only_when_behind(new_db_url: Callable[[], str]) -> None:
    url = new_db_url()
    assert db.stored_revision(url) is None
    db.ensure_current(url)
    assert db.stored_revision(url) == db.HEAD_REVISION == db.current_revision(url)
    db.downgrade(url, "0002")
    assert db.stored_revision(url) == "0002"
    db.ensure_current(url)  # behind: upgraded
    assert db.stored_revision(url) == db.HEAD_REVISION
    db.ensure_current(url)  # current: nothing to do, nothing breaks


def test_upgrade(alembic_runner) -> None:  # noqa: F811
    builtin.test_upgrade(alembic_runner)


def test_model_definitions_match_ddl(alembic_runner) -> None:  # noqa: F811
    builtin.test_model_definitions_match_ddl(alembic_runner)


def test_up_down_consistency(alembic_runner) -> None:  # noqa: F811
    builtin.test_up_down_consistency(alembic_runner)


def test_db_upgrade_and_downgrade_commands(new_db_url: Callable[[], str], tmp_path) -> None:
    url = new_db_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    up = subprocess.run([WIRETAPE_BIN, "db", "upgrade", "--db", url], capture_output=True,
                        text=True, env=env, cwd=tmp_path, timeout=120)
    assert up.returncode == 0, up.stderr
    engine = db.make_engine(url)
    try:
        assert {"tapes", "recordings", "runtime_state", "misses"} <= set(
            inspect(engine).get_table_names())
        down = subprocess.run([WIRETAPE_BIN, "db", "downgrade", "base", "--db", url],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)
        assert down.returncode == 0, down.stderr
        assert "recordings" not in inspect(engine).get_table_names()
        assert db.current_revision(url) is None
        bad = subprocess.run([WIRETAPE_BIN, "db", "downgrade", "nope", "--db", url],
                             capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=120)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    finally:
        engine.dispose()


def test_migration_0003_downgrade_keeps_recordings(db_url) -> None:
    add(db_url, "t", make_exchange(target="/x", body={}))
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

