"""Alembic migrations upgrade and downgrade on SQLite and PostgreSQL (pytest-alembic's
built-in checks, plus the `wiretape db` commands as a user runs them)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from pytest_alembic import tests as builtin
from pytest_alembic.plugin.fixtures import alembic_runner  # noqa: F401 - fixture
from sqlalchemy import Engine, inspect, text
from wiretape.storage import db
from wiretape.storage.matching import KEY_VERSION

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



def _old_store(url: str) -> list[tuple[str, int]]:
    """A store as wiretape left it before conditional headers took part in match keys: at
    revision 0004, a plain and a range request to one URL under one key, seq 0 and 1."""
    plain = make_exchange(target="/file", body=b"0123456789abcdef")
    ranged = plain.with_(request=replace(plain.request, headers=(("Range", "bytes=0-3"),)),
                         response=replace(plain.response, status=206, body=b"0123"))
    add(url, "old", plain, ranged)
    db.downgrade(url, "0004")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            old_key = conn.execute(text("SELECT match_key FROM recordings ORDER BY id")).scalar()
            conn.execute(text("UPDATE recordings SET match_key = :k, seq = id - 1"),
                         {"k": old_key})
    finally:
        engine.dispose()
    return _keys(url)


def _keys(url: str) -> list[tuple[str, int]]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return [(str(k), int(s)) for k, s in conn.execute(
                text("SELECT match_key, seq FROM recordings ORDER BY id"))]
    finally:
        engine.dispose()


def test_tapes_keyed_by_an_older_wiretape_are_rekeyed_when_the_store_is_opened(db_url) -> None:
    before = _old_store(db_url)
    assert before[0][0] == before[1][0] and [s for _, s in before] == [0, 1]
    db.ensure_current(db_url)  # 0005: the tape is marked as keyed by version 1
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT key_version FROM tapes")).scalar() == 1
        assert db.ensure_keys_current(engine) == {"old": 1}
        after = _keys(db_url)
        # the range request has a key of its own now; the plain one kept its key
        assert after[0] == before[0] and after[1][0] != before[1][0]
        assert [s for _, s in after] == [0, 0]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT key_version FROM tapes")).scalar() == KEY_VERSION
        assert db.ensure_keys_current(engine) == {}  # done once
    finally:
        engine.dispose()
    # an older wiretape can still open the store
    db.downgrade(db_url, "0004")
    assert _keys(db_url) == after
