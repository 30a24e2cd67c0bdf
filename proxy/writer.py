"""Writes captured exchanges and misses in batches on a thread of its own, off the event loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

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
        self.failed_batches = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def record(self, tape: str, exchange: Exchange) -> None:
        self._queue.put(_Capture(tape, exchange))

    def miss(self, tape: str, method: str, url: str, closest: list[dict[str, Any]]) -> None:
        self._queue.put(_MissEntry(tape, method, url, closest))

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

    def _write(self, batch: list[object]) -> None:
        captures: dict[str, list[Exchange]] = {}
        misses: list[_MissEntry] = []
        for b in batch:
            if isinstance(b, _Capture):
                captures.setdefault(b.tape, []).append(self._redactor.exchange(b.exchange))
            elif isinstance(b, _MissEntry):
                misses.append(b)
        delay = 0.05
        while True:
            try:
                results: list[tuple[str, list[tuple[int, str, int]]]] = []
                with self._sessions.begin() as s:
                    for tape, exchanges in captures.items():
                        results.append((tape, repo.add_exchanges(s, tape, exchanges)))
                    for miss in misses:
                        repo.add_miss(s, miss.tape, miss.method, miss.url, miss.closest)
                break
            except Exception:
                # never drop a captured exchange: keep retrying (the database may be
                # restarting or locked); the queue grows meanwhile and /metrics shows it
                self.failed_batches += 1
                log.exception("writing %d exchanges failed; retrying in %.1fs", len(batch), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        for tape, rows in results:
            exchanges = captures[tape]
            for (rid, _key, seq), ex in zip(rows, exchanges, strict=True):
                status = ex.response.status if ex.response else ex.failure and ex.failure.kind
                log.info("recorded #%d %s %s -> %s (tape %s, seq %d)",
                         rid, ex.request.method, ex.request.url, status, tape, seq)
            self.written += len(rows)
        if self._notifier is not None and (captures or misses):
            self._notifier.changed()
