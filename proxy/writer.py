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


def _where(ex: Exchange) -> str:
    """An exchange named in a log line before redaction has run: no query string, where
    the secrets a redaction rule names live."""
    r = ex.request
    return f"{r.method} {r.scheme}://{r.authority}{r.path}"


class _Abandoned(Exception):
    """Shutdown stopped waiting for the database: what is in hand is not written."""


class Writer:
    """A queue drained by one thread: one transaction per batch, retried until it lands.

    Redaction happens here, before anything reaches the database, so the event loop only
    copies the flow's bytes. Whatever fails for one exchange (its redaction, its match key,
    a value the database refuses) costs that exchange alone, said in an error line; only
    an unavailable database is waited for, and at shutdown only for as long as `close` is
    given.
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
        self.dropped = 0  # exchanges that could not be stored for what they contain
        self.lost = 0  # items not written because shutdown stopped waiting for the database
        self._in_hand = 0  # items taken off the queue and not yet written (a batch retried)
        self._closing = False
        self._close_lock = threading.Lock()  # no capture slips in behind the stop marker
        self._abandon = threading.Event()
        # read-your-writes: items queued so far, and items the thread has finished with
        # (written, or dropped as refused); `flushed()` waits for the second to catch up
        self._queued = 0
        self._finished = 0
        self._progress = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    @property
    def depth(self) -> int:
        """Items waiting to be written: queued, or in the batch being written (or retried)."""
        return self._queue.qsize() + self._in_hand

    def _put(self, item: _Capture | _MissEntry) -> bool:
        with self._close_lock:
            if self._closing:
                return False
            self._queued += 1  # the event loop's thread is the only caller
            self._queue.put(item)
            return True

    def record(self, tape: str, exchange: Exchange) -> None:
        if not self._put(_Capture(tape, exchange)):
            self.lost += 1
            log.error("%s (tape %s) finished after the writer stopped: not recorded",
                      _where(exchange), tape)

    def miss(self, tape: str, method: str, url: str, closest: list[dict[str, Any]]) -> None:
        if not self._put(_MissEntry(tape, method, url, closest)):
            log.error("miss %s %s after the writer stopped: not journaled", method, url)

    def flushed(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued before this call is in the database (or dropped).

        The admin API calls this before it reads recordings or misses, so an exchange whose
        response has gone out (it is queued before the response is sent) is visible to a
        script that asks right after. False if the database did not take it in `timeout`.
        """
        target = self._queued
        with self._progress:
            return self._progress.wait_for(lambda: self._finished >= target, timeout)

    def close(self, timeout: float | None = None, grace: float = 5.0) -> bool:
        """Write everything queued so far, then stop the thread. If the database has not
        taken it all within `timeout` seconds, stop waiting for it: each exchange not
        written is named in an error line (never dropped silently). False if the thread
        still had not finished `grace` seconds later (stuck in a database call)."""
        with self._close_lock:
            self._closing = True
            self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the database did not take the last %d items within %gs of shutdown; "
                      "not waiting any longer", self.depth, timeout or 0)
            self._abandon.set()
            self._thread.join(grace)
        if self._thread.is_alive():
            log.error("the writer did not stop: %d exchanges and misses were not written",
                      self.depth)
            return False
        return True

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
                self._in_hand = len(batch)
                try:
                    self._write(batch)
                except Exception:
                    # a bug, not the data or the database: the batch is lost, the writer
                    # goes on with the next one
                    self.dropped += len(batch)
                    log.exception("writing a batch of %d items failed; dropped", len(batch))
                finally:
                    self._in_hand = 0
                    with self._progress:
                        self._finished += len(batch)
                        self._progress.notify_all()

    def _redacted(self, capture: _Capture) -> Exchange | None:
        try:
            return self._redactor.exchange(capture.exchange)
        except Exception as e:
            # never stored unredacted: this exchange alone is lost, and said so
            self.dropped += 1
            log.error("cannot redact %s (tape %s): %s: %s; dropped", _where(capture.exchange),
                      capture.tape, type(e).__name__, e)
            return None

    def _write(self, batch: list[object]) -> None:
        captures: dict[str, list[Exchange]] = {}
        misses: list[_MissEntry] = []
        for b in batch:
            if isinstance(b, _Capture):
                ex = self._redacted(b)
                if ex is not None:
                    captures.setdefault(b.tape, []).append(ex)
            elif isinstance(b, _MissEntry):
                misses.append(b)
        try:
            self._store(captures, misses)
        finally:
            _release(batch, captures)

    def _store(self, captures: dict[str, list[Exchange]], misses: list[_MissEntry]) -> None:
        try:
            results = self._commit(captures, misses)
        except _Abandoned:
            self._give_up(captures, misses)
            return
        except _Refused:
            # something in this batch can never be stored (a value the database rejects):
            # store the rest one by one instead of retrying the whole batch for ever
            results = []
            for tape, exchanges in captures.items():
                for i, ex in enumerate(exchanges):
                    try:
                        results += self._commit({tape: [ex]}, [])
                    except _Refused as e:
                        self.dropped += 1
                        log.error("cannot store %s %s (tape %s): %s; dropped",
                                  ex.request.method, ex.request.url, tape, _reason(e))
                    except _Abandoned:
                        self._give_up({tape: exchanges[i:]}, misses)
                        return
            for miss in misses:
                try:
                    self._commit({}, [miss])
                except _Refused as e:
                    log.error("cannot journal the miss %s %s: %s", miss.method, miss.url,
                              _reason(e))
                except _Abandoned:
                    self._give_up({}, [miss])
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

    def _give_up(self, captures: dict[str, list[Exchange]], misses: list[_MissEntry]) -> None:
        """Shutdown stopped waiting for the database: name every item not written."""
        for tape, exchanges in captures.items():
            for ex in exchanges:
                self.lost += 1
                log.error("not written (database unavailable at shutdown): %s %s (tape %s)",
                          ex.request.method, ex.request.url, tape)
        for miss in misses:
            log.error("not journaled (database unavailable at shutdown): miss %s %s",
                      miss.method, miss.url)

    def _commit(
        self, captures: dict[str, list[Exchange]], misses: list[_MissEntry]
    ) -> list[tuple[str, list[tuple[tuple[int, str, int], int]]]]:
        """One transaction; retried while the database is unavailable (never drop a
        captured exchange: the queue grows meanwhile and /metrics shows it). Raises
        _Refused for anything else, which no retry can fix: the database rejecting the
        data, or a step such as the match key failing on this data; _Abandoned once
        shutdown has stopped waiting."""
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
                if not _unavailable(e):
                    raise _Refused() from e
                if self._abandon.is_set():
                    raise _Abandoned() from e
                # the database is restarting, locked or unreachable: wait and retry
                log.error("writing %d items failed (%s); retrying in %.1fs",
                          sum(map(len, captures.values())) + len(misses), _reason(e), delay)
                self._abandon.wait(delay)
                delay = min(delay * 2, 5.0)


def _unavailable(e: Exception) -> bool:
    """The database is unavailable (restarting, locked, unreachable): worth waiting for.
    Anything else is about what a batch contains: the database or its driver refusing a
    value (PostgreSQL and a NUL in text), or a step before it failing on the data (a
    RecursionError computing a match key is not a database outage)."""
    if isinstance(e, sa_exc.DataError | sa_exc.IntegrityError):
        return False
    return isinstance(e, sa_exc.DBAPIError | sa_exc.TimeoutError)


def _reason(e: BaseException) -> str:
    cause = e.__cause__ or e
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _release(batch: list[object], stored: dict[str, list[Exchange]]) -> None:
    """Let go of the spool files of big bodies once stored (or dropped): those captured,
    and those redaction rewrote."""
    exchanges = [b.exchange for b in batch if isinstance(b, _Capture)]
    for ex in [*exchanges, *(ex for group in stored.values() for ex in group)]:
        big = ex.response.big if ex.response is not None else None
        if big is not None and big.source is not None:
            big.source.close()


class _Refused(Exception):
    """What a batch contains cannot be stored (not the database's availability)."""
