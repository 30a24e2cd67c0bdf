"""The writer: one exchange that breaks a step costs that exchange alone, a batch being
retried shows in the queue depth, and shutdown stops waiting for a database that is gone,
naming what it could not write."""

from __future__ import annotations

import importlib
import logging
import time

import pytest
from sqlalchemy import select
from wiretape.proxy.writer import Writer
from wiretape.storage import db
from wiretape.storage import models as m
from wiretape.storage.exchange import Exchange, Request, Response
from wiretape.storage.redact import Redactor

from tests.helpers import wait_for

# the module (the package exports a function of the same name)
recordings = importlib.import_module("wiretape.storage.repository.recordings")
OK = Response(200, (("Content-Type", "text/plain"),), b"fine")


def capture(path: str, query: str = "") -> Exchange:
    return Exchange(Request("GET", "http", "127.0.0.1", 8000, path + query), OK, None,
                    time.time_ns())


class BreakingRedactor(Redactor):
    """Redaction that fails on one path. No real input makes the redactor raise any more
    (tests/storage/test_redact.py drives the inputs that did): this pins down that if one
    ever does again, it costs that exchange only."""

    def exchange(self, ex: Exchange) -> Exchange:
        if ex.request.path == "/boom-redact":
            raise RecursionError("maximum recursion depth exceeded")
        return super().exchange(ex)


def stored_paths(url: str) -> list[str]:
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine)() as s:
            return [r.path for r in s.scalars(select(m.Recording).order_by(m.Recording.id))]
    finally:
        engine.dispose()


def test_an_exchange_that_breaks_a_step_costs_only_itself(sqlite_url, monkeypatch, caplog):
    real_key = recordings.match_key

    def key(req, rules):
        if req.path == "/boom-key":
            # what a 1,200-level JSON body once did in the match-key code: not a database
            # outage, so not retried for ever
            raise RecursionError("maximum recursion depth exceeded")
        return real_key(req, rules)

    monkeypatch.setattr(recordings, "match_key", key)
    engine = db.make_engine(sqlite_url)
    caplog.set_level(logging.INFO, logger="wiretape.proxy.writer")
    try:
        writer = Writer(db.make_sessions(engine), BreakingRedactor(), linger=0.2)
        writer.start()
        for path in ("/before", "/boom-redact", "/boom-key", "/after"):
            writer.record("default", capture(path, "?token=t0k3n-secret"))
        assert writer.flushed(20)
        writer.record("default", capture("/later"))  # the writer is still there
        assert writer.close(timeout=20)
        assert not writer._thread.is_alive()
    finally:
        engine.dispose()
    assert stored_paths(sqlite_url) == ["/before", "/after", "/later"]
    assert writer.dropped == 2 and writer.written == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cannot redact GET http://127.0.0.1:8000/boom-redact" in e
               and "RecursionError" in e and "dropped" in e for e in errors), errors
    assert any("cannot store GET http://127.0.0.1:8000/boom-key?token=REDACTED" in e
               and "RecursionError" in e and "dropped" in e for e in errors), errors
    assert "retrying" not in caplog.text
    assert "t0k3n-secret" not in caplog.text


@pytest.fixture
def unreachable_pg(refusing_port: int) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{refusing_port}/wiretape"


def test_a_batch_being_retried_counts_in_the_queue_depth_and_shutdown_is_bounded(
        unreachable_pg, caplog):
    engine = db.make_engine(unreachable_pg, pool_pre_ping=False)
    caplog.set_level(logging.INFO, logger="wiretape.proxy.writer")
    writer = Writer(db.make_sessions(engine), Redactor(), linger=0.05)
    writer.start()
    try:
        for i in range(7):
            writer.record("default", capture(f"/n{i}", "?access_token=t0k3n-secret"))
        # the thread has taken the batch off the queue and retries it: still 7 to write
        wait_for(lambda: "retrying" in caplog.text, 20, "a failed write")
        assert writer._queue.qsize() == 0
        assert writer.depth == 7
        writer.miss("default", "GET", "http://127.0.0.1:8000/missed", [])
        started = time.monotonic()
        assert writer.close(timeout=1.0)
        assert time.monotonic() - started < 20  # bounded; generous: a hang is the bug
    finally:
        engine.dispose()
    assert writer.lost == 7 and writer.written == 0
    lost = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert sorted(lost) == sorted(
        f"not written (database unavailable at shutdown): GET "
        f"http://127.0.0.1:8000/n{i}?access_token=REDACTED (tape default)" for i in range(7))
    assert "not journaled (database unavailable at shutdown): miss GET " \
           "http://127.0.0.1:8000/missed" in caplog.text
    # an exchange that finishes once the writer has stopped is said, never dropped silently
    writer.record("default", capture("/late", "?token=t0k3n-secret"))
    assert writer.lost == 8
    assert "GET http://127.0.0.1:8000/late (tape default) finished after the writer stopped" \
           in caplog.text
    assert "t0k3n-secret" not in caplog.text
