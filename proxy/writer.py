"""Writes captured exchanges and misses in batches on a thread of its own, off the event loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange
from wiretape.storage.notify import Notifier
from wiretape.storage.redact import Redactor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Capture:
    tape: str
    exchange: Exchange


@dataclass(frozen=True, slots=True)
class _MissEntry:
    tape: str
    method: str
    url: str
    closest: list[dict[str, Any]]


_STOP = object()


class Writer:
    """A queue drained by one thread: one transaction per batch, retried until it lands.

    Redaction happens here, before anything reaches the database, so the event loop only
    copies the flow's bytes.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        redactor: Redactor,
        notifier: Notifier | None = None,
        batch_size: int = 500,
        linger: float = 0.02,
    ) -> None:
        self._sessions = sessions
        self._redactor = redactor
        self._notifier = notifier
        self._batch_size = batch_size
        self._linger = linger
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="wiretape-writer", daemon=True)
        self.written = 0
        self.dropped = 0  # exchanges the database refused for what they contain
        # read-your-writes: items queued so far, and items the thread has finished with
        # (written, or dropped as refused); `flushed()` waits for the second to catch up
        self._queued = 0
        self._finished = 0
        self._progress = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def record(self, tape: str, exchange: Exchange) -> None:
        self._queued += 1  # the event loop's thread is the only caller
        self._queue.put(_Capture(tape, exchange))

    def miss(self, tape: str, method: str, url: str, closest: list[dict[str, Any]]) -> None:
        self._queued += 1
        self._queue.put(_MissEntry(tape, method, url, closest))

    def flushed(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued before this call is in the database (or dropped).

        The admin API calls this before it reads recordings or misses, so an exchange whose
        response has gone out (it is queued before the response is sent) is visible to a
        script that asks right after. False if the database did not take it in `timeout`.
        """
        target = self._queued
        with self._progress:
            return self._progress.wait_for(lambda: self._finished >= target, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued so far, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch = [item]
            deadline = time.monotonic() + self._linger
            while len(batch) < self._batch_size:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=max(0.0, remaining))
                                 if remaining > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(b is _STOP for b in batch):
                stopping = True
                batch = [b for b in batch if b is not _STOP]
                # drain whatever raced in before the stop marker was seen
                while True:
                    try:
                        b = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if b is not _STOP:
                        batch.append(b)
            if batch:
                self._write(batch)
                with self._progress:
                    self._finished += len(batch)
                    self._progress.notify_all()

    def _write(self, batch: list[object]) -> None:
        captures: dict[str, list[Exchange]] = {}
        misses: list[_MissEntry] = []
        for b in batch:
            if isinstance(b, _Capture):
                captures.setdefault(b.tape, []).append(self._redactor.exchange(b.exchange))
            elif isinstance(b, _MissEntry):
                misses.append(b)
        try:
            results = self._commit(captures, misses)
        except _Refused:
            # something in this batch can never be stored (a value the database rejects):
            # store the rest one by one instead of retrying the whole batch for ever
            results = []
            for tape, exchanges in captures.items():
                for ex in exchanges:
                    try:
                        results += self._commit({tape: [ex]}, [])
                    except _Refused as e:
                        self.dropped += 1
                        log.error("cannot store %s %s (tape %s): %s; dropped",
                                  ex.request.method, ex.request.url, tape, e.__cause__)
            for miss in misses:
                try:
                    self._commit({}, [miss])
                except _Refused as e:
                    log.error("cannot journal the miss %s %s: %s", miss.method, miss.url,
                              e.__cause__)
        for tape, rows in results:
            exchanges = captures[tape]
            by_request = {id(ex): ex for ex in exchanges}
            for (rid, _key, seq), ex_id in rows:
                ex = by_request[ex_id]
                status = ex.response.status if ex.response else ex.failure and ex.failure.kind
                log.info("recorded #%d %s %s -> %s (tape %s, seq %d)",
                         rid, ex.request.method, ex.request.url, status, tape, seq)
            self.written += len(rows)
        if self._notifier is not None and captures:
            self._notifier.changed()  # journaled misses change nothing replay serves
        _release(batch)

    def _commit(
        self, captures: dict[str, list[Exchange]], misses: list[_MissEntry]
    ) -> list[tuple[str, list[tuple[tuple[int, str, int], int]]]]:
        """One transaction; retried while the database is unavailable (never drop a
        captured exchange: the queue grows meanwhile and /metrics shows it). Raises
        _Refused when the database rejects the data itself, which no retry can fix."""
        delay = 0.05
        while True:
            try:
                results = []
                with self._sessions.begin() as s:
                    for tape, exchanges in captures.items():
                        rows = repo.add_exchanges(s, tape, exchanges)
                        results.append(
                            (tape, [(row, id(ex)) for row, ex in zip(rows, exchanges,
                                                                     strict=True)]))
                    for miss in misses:
                        repo.add_miss(s, miss.tape, miss.method, miss.url, miss.closest)
                return results
            except Exception as e:
                if _rejects_data(e):
                    raise _Refused() from e
                # the database is restarting, locked or unreachable: wait and retry
                log.exception("writing %d exchanges failed; retrying in %.1fs",
                              sum(map(len, captures.values())) + len(misses), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


def _rejects_data(e: Exception) -> bool:
    """A failure no retry can fix: the database or its driver refuses the values (e.g.
    PostgreSQL and a NUL character in text), as opposed to being unavailable."""
    if isinstance(e, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(e, sa_exc.DBAPIError):
        return False
    return isinstance(e, sa_exc.StatementError | ValueError | TypeError | UnicodeError)


def _release(batch: list[object]) -> None:
    """Let go of the spool files of big bodies once stored (or dropped)."""
    for b in batch:
        if isinstance(b, _Capture) and b.exchange.response is not None:
            big = b.exchange.response.big
            if big is not None and big.source is not None:
                big.source.close()


class _Refused(Exception):
    """The database rejected what a batch contains (not its availability)."""
