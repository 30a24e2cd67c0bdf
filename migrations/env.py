"""Alembic environment: URL from config attributes (CLI, tests) or WIRETAPE_DB."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import text
from wiretape.storage.db import make_engine

config = context.config
url = (
    config.attributes.get("url")
    or os.environ.get("WIRETAPE_DB")
    or config.get_main_option("sqlalchemy.url")
    or "sqlite:///./wiretape.db"
)

# migrations use op.*/sa.* only; no model metadata is needed to run them
target_metadata = None


def run_migrations_offline() -> None:
    context.configure(url=url, literal_binds=True, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # several `wiretape serve` processes may start at once on one database
                conn.execute(text("SELECT pg_advisory_lock(774411)"))
                conn.commit()
            try:
                context.configure(connection=conn, render_as_batch=True, compare_type=True)
                with context.begin_transaction():
                    context.run_migrations()
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
