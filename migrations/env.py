"""Alembic environment: URL from config attributes (CLI, tests) or WIRETAPE_DB."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, Engine, text
from wiretape.storage.db import make_engine
from wiretape.storage.models import Base

config = context.config
url = (
    config.attributes.get("url")
    or os.environ.get("WIRETAPE_DB")
    or config.get_main_option("sqlalchemy.url")
    or "sqlite:///./wiretape.db"
)

# only autogenerate (and the model/DDL match test) reads the models; the migration
# scripts themselves use op.*/sa.* alone
target_metadata = Base.metadata


# what migration 0004 builds per backend and the models cannot describe: SQLite's FTS5
# table (and its shadow tables) and PostgreSQL's trigram index for text search
UNMODELLED_PREFIXES = ("recordings_fts", "ix_recordings_search_trgm")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (name or "").startswith(UNMODELLED_PREFIXES)


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, compare_type=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Engine):  # pytest-alembic hands over an engine
        with connection.connect() as conn:
            _run(conn)
            conn.commit()
        return
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # several `wiretape serve` processes may start at once on one database
                conn.execute(text("SELECT pg_advisory_lock(774411)"))
                conn.commit()
            try:
                _run(conn)
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(774411)"))
                    conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
