"""The `--db` option of the commands that work on the store, and opening it for them."""

from __future__ import annotations

from typing import Any

import click
from wiretape.storage import db

db_option = click.option("--db", envvar="WIRETAPE_DB", default="sqlite:///./wiretape.db",
                         show_envvar=True, help="SQLAlchemy URL of the store")


def check_db_url(value: str) -> str:
    return db.check_url(value, "--db")  # InvalidDatabaseURL names the flag


def open_store(url: str) -> Any:
    """An engine on the store, migrated first (like `serve`, these commands bring the schema
    and the match keys up to date, so they work on a new database file and on recordings an
    older wiretape made)."""
    url = check_db_url(url)
    db.ensure_current(url)
    engine = db.make_engine(url)
    db.ensure_keys_current(engine)
    return engine
