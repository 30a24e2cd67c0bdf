"""Engines, sessions and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import os
from importlib import resources
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from .errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)


class InvalidDatabaseURL(InvalidInput):
    """A database URL that is not a usable SQLAlchemy URL."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def check_url(url: str, what: str = "the database URL") -> str:
    """A usable SQLAlchemy URL (psycopg made the PostgreSQL driver). `what` names the value
    in messages: the CLI passes its flag."""
    try:
        u = make_url(url)
    except ArgumentError as e:
        raise InvalidDatabaseURL(f"{what} {url!r} is not a database URL") from e
    backend = u.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidDatabaseURL(
            f"{what} must be a sqlite:/// or postgresql+psycopg:// URL, not {backend!r}"
        )
    if backend == "postgresql" and u.get_driver_name() not in ("psycopg", "psycopg2"):
        url = str(u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return url


# SQLite files hold every recorded body: owner-only, like the CA key. SQLite gives the -wal
# and -shm files the database file's own mode, so creating that one 0600 covers all three.
SQLITE_FILE_MODE = 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _sqlite_path(u: URL) -> str | None:
    """The file of a SQLite URL; None for an in-memory database."""
    db = u.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return os.path.abspath(db)


def _create_owner_only(path: str) -> None:
    """Create an empty database file 0600 (an empty file is a valid SQLite database) before
    SQLite does, so no umask leaves it readable by others. If it cannot be made here,
    SQLite's own error says why when it opens the file."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, SQLITE_FILE_MODE)
    except OSError:
        return
    os.close(fd)


def restrict_sqlite_files(url: str) -> None:
    """Make an existing SQLite store and its -wal/-shm files owner-only again (a store made
    before this rule, or copied in with a wider mode). Files this user does not own are
    left as they are."""
    u = make_url(check_url(url))
    path = _sqlite_path(u) if u.get_backend_name() == "sqlite" else None
    if path is None:
        return
    for suffix in SQLITE_SUFFIXES:
        with contextlib.suppress(OSError):
            st = os.stat(path + suffix)
            if st.st_uid == os.geteuid() and st.st_mode & 0o777 != SQLITE_FILE_MODE:
                os.chmod(path + suffix, SQLITE_FILE_MODE)


def make_engine(url: str, **kw: Any) -> Engine:
    url = check_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = _sqlite_path(u)
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _create_owner_only(path)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kw
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_engine(url, **kw)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("wiretape.migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["url"] = url
    return cfg


# The newest migration (tests/migrations checks it is alembic's head): a store already
# there is opened without loading alembic, a third of `serve`'s start-up otherwise.
HEAD_REVISION = "0006_streams"


def stored_revision(url: str) -> str | None:
    """The store's schema revision as alembic recorded it; None if it has none (or several)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None  # no such table: a new store
    finally:
        engine.dispose()
    return str(rows[0][0]) if len(rows) == 1 else None


def ensure_current(url: str) -> None:
    """Upgrade the store to the newest schema unless it is there already.

    A store that cannot be opened or written is Unavailable, said in one line: which file or
    server, and why. There is no retry at start: a process manager or a container health
    check (docker/compose.yaml waits for PostgreSQL to be healthy) restarts wiretape.
    """
    url = check_url(url)
    try:
        if stored_revision(url) != HEAD_REVISION:
            upgrade(url)
    except DBAPIError as e:
        raise Unavailable(unavailable_message(url, e)) from e
    except OSError as e:  # the SQLite file's folder could not be made
        why = "a file is in the way" if isinstance(e, FileExistsError) else e.strerror or e
        raise Unavailable(f"cannot create the folder {e.filename} for the SQLite "
                          f"database: {why}") from e
    restrict_sqlite_files(url)


def ensure_keys_current(engine: Engine) -> dict[str, int]:
    """Re-key the tapes whose match keys an older wiretape computed (matching.KEY_VERSION),
    one transaction per tape, so that recordings made before an upgrade still replay;
    returns {tape: recordings whose key or seq changed}. Cheap when there is nothing to do
    (one query). Safe when several processes open the store at once."""
    from . import repository as repo

    sessions = make_sessions(engine)
    done: dict[str, int] = {}
    try:
        with sessions() as s:
            names = repo.outdated_tapes(s)
        for name in names:
            with sessions.begin() as s:
                changed = repo.rekey_outdated_tape(s, name)
            if changed is not None:
                done[name] = changed
                log.info("tape %s: match keys recomputed for this version of wiretape "
                         "(%d recordings changed key or seq)", name, changed)
    except DBAPIError as e:
        raise Unavailable(unavailable_message(engine.url.render_as_string(
            hide_password=False), e)) from e
    return done


def unavailable_message(url: str, e: DBAPIError) -> str:
    """What went wrong opening a store, in one line, without the password."""
    u = make_url(url)
    reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
    if u.get_backend_name() == "sqlite":
        hint = ""
        if "readonly" in reason or "unable to open" in reason:
            hint = " (is the file and its folder writable by this user?)"
        return f"cannot use the SQLite database {u.database}: {reason}{hint}"
    where = f"{u.host or 'localhost'}:{u.port or 5432}"
    return (f"cannot use the PostgreSQL database {u.database} at {where}: {reason}; "
            "not retrying (start the database first)")


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(check_url(url)), revision)
    restrict_sqlite_files(url)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(check_url(url)), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
