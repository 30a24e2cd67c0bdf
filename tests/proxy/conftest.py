"""Fixtures of the addon unit tests: a store to read and write, and the composed addons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker
from wiretape.proxy.addons import Wiretape
from wiretape.proxy.writer import Writer
from wiretape.storage import db
from wiretape.storage.redact import Redactor


@pytest.fixture
def sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(sqlite_url)
    yield db.make_sessions(engine)
    engine.dispose()


@pytest.fixture
def wiretape(sessions: sessionmaker[Session]) -> Wiretape:
    """The addons `serve` loads, on a migrated SQLite store; the writer is not started (its
    queue shows what was handed to it) unless a test starts it."""
    redactor = Redactor()
    return Wiretape(sessions, Writer(sessions, redactor), redactor)
