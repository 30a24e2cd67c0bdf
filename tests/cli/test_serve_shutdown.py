"""`wiretape serve` shutting down under load: every exchange a client got an answer for is
stored; requests that arrive on open connections after the signal are refused (503 and
`Connection: close`) or see their connection closed; no traceback; bounded."""

from __future__ import annotations

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import Reply, Seen, Serve, Upstream, stored_recordings, wait_for

CLIENTS = 32


def _no_tracebacks(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert "CancelledError" not in log, log[-4000:]
    assert " ERROR " not in log, log[-4000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_under_keep_alive_load_loses_no_answered_exchange(db_url, upstream, serve,
                                                                   sig):
    upstream.route("GET /load", Reply(200, "ok"))
    rec: Serve = serve(db_url, "--tape", "load")
    answered: list[tuple[int, int]] = []
    refused: list[httpx.Response] = []
    signalled = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> int:
        """One keep-alive connection sending requests back to back until the proxy is gone."""
        i = 0
        with httpx.Client(proxy=rec.proxy, timeout=30, trust_env=False) as c:
            while True:
                try:
                    r = c.get(f"{upstream.url}/load?c={n}&i={i}")
                except httpx.TransportError:
                    if signalled.is_set():
                        return i  # closed on us, or no longer listening: the end
                    raise
                with lock:
                    (answered if r.status_code == 200 else refused).append(
                        (n, i) if r.status_code == 200 else r)  # type: ignore[arg-type]
                i += 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, n) for n in range(CLIENTS)]
        wait_for(lambda: len(answered) >= CLIENTS * 15, 60, "load to build up")
        signalled.set()
        rec.proc.send_signal(sig)
        sent = [f.result(timeout=120) for f in futures]
    assert rec.proc.wait(60) == 0
    assert all(n > 0 for n in sent)
    for r in refused:
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.headers["connection"] == "close" and r.headers["wiretape"] == "shutting-down"
    stored = [tuple(int(v.split("=")[1]) for v in r.target.split("?")[1].split("&"))
              for r in stored_recordings(db_url, "load")]
    assert len(stored) == len(set(stored))  # nothing twice
    missing = set(answered) - set(stored)
    assert not missing, f"{len(missing)} of {len(answered)} answered exchanges not stored"
    assert len(stored) == len(answered)  # and nothing that was refused
    log = rec.log()
    _no_tracebacks(log)
    assert f"{len(answered)} exchanges written in all" in log


def test_requests_after_the_signal_are_refused_while_the_ones_in_flight_finish(
        sqlite_url, upstream: Upstream, serve):
    """A request in flight when the signal comes is answered and stored; one that arrives
    meanwhile on another open connection gets 503 with `Connection: close`, and is neither
    forwarded nor stored; the listener is closed."""
    release = threading.Event()
    arrived = threading.Event()

    def slow(_seen: Seen) -> Reply:
        arrived.set()
        release.wait(30)
        return Reply(200, "slow")

    upstream.route("GET /slow", slow)
    upstream.route("GET /fast", Reply(200, "fast"))
    rec: Serve = serve(sqlite_url)
    with rec.client() as idle, rec.client() as busy, ThreadPoolExecutor(1) as pool:
        assert idle.get(f"{upstream.url}/fast").status_code == 200  # connection kept open
        in_flight = pool.submit(busy.get, f"{upstream.url}/slow")
        assert arrived.wait(30)
        rec.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not _listening(rec.proxy_port), 30, "the listener to close")
        late = idle.get(f"{upstream.url}/fast?late=1")
        assert late.status_code == 503 and late.headers["connection"] == "close"
        assert late.json() == {"error": "wiretape is shutting down"}
        assert rec.proc.poll() is None  # still draining: the slow one is in flight
        release.set()
        assert in_flight.result(30).text == "slow"
    assert rec.proc.wait(60) == 0
    assert [r.target for r in stored_recordings(sqlite_url)] == ["/fast", "/slow"]
    assert [s.path for s in upstream.seen] == ["/fast", "/slow"]
    _no_tracebacks(rec.log())


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_shutdown_is_bounded_when_the_database_is_gone(tmp_path, upstream: Upstream, serve,
                                                      pg_admin_url):
    """The store disappears and exchanges are waiting: shutdown stops waiting for it after
    its bound and names every exchange it could not write."""
    from sqlalchemy import create_engine, text
    from wiretape.storage import db

    from tests.conftest import new_pg_database

    url = new_pg_database(pg_admin_url)
    db.upgrade(url)
    upstream.route("GET /n", Reply(200, "ok"))
    rec: Serve = serve(url)
    name = url.rsplit("/", 1)[1]
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # the database goes away under the running proxy
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
    with rec.client() as c:
        for i in range(3):
            assert c.get(f"{upstream.url}/n?i={i}&token=t0k3n-secret").status_code == 200
    wait_for(lambda: "retrying" in rec.log(), 30, "the writer to find the database gone")
    started = time.monotonic()
    assert rec.stop(timeout=120) == 1  # exchanges were lost: the exit status says so
    assert time.monotonic() - started < 90  # bounded (generous: a hang is the bug)
    log = rec.log()
    for i in range(3):
        assert (f"not written (database unavailable at shutdown): GET "
                f"{upstream.url}/n?i={i}&token=REDACTED (tape default)") in log
    assert "t0k3n-secret" not in log
