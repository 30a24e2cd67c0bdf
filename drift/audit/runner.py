"""Audits off the event loop: each on a thread of its own, with an event loop of its own."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import time
import weakref

from .report import AuditReport
from .run import TapeAudit


class AuditRunner:
    """Runs audits on threads of their own, each with its own event loop, so an audit never
    runs on the proxy's loop. `stop()` cancels what still runs (stored as failed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[threading.Thread, asyncio.AbstractEventLoop,
                                       asyncio.Task[AuditReport]]] = {}
        _RUNNERS.add(self)

    def start(self, audit: TapeAudit) -> concurrent.futures.Future[AuditReport]:
        future: concurrent.futures.Future[AuditReport] = concurrent.futures.Future()
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            task = loop.create_task(audit.run())
            with self._lock:
                self._running[audit.id] = (threading.current_thread(), loop, task)
            ready.set()
            try:
                future.set_result(loop.run_until_complete(task))
            except BaseException as e:
                future.set_exception(e)
            finally:
                with self._lock:
                    self._running.pop(audit.id, None)
                loop.close()

        threading.Thread(target=main, name=f"wiretape-audit-{audit.id}", daemon=True).start()
        ready.wait()
        return future

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            running = list(self._running.values())
        for _thread, loop, task in running:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass
        deadline = time.monotonic() + timeout
        for thread, _loop, _task in running:
            thread.join(max(0.0, deadline - time.monotonic()))


_RUNNERS: weakref.WeakSet[AuditRunner] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # daemon threads die with the interpreter: cancel first, so audits are stored as failed
    # instead of staying "running" forever
    for runner in list(_RUNNERS):
        runner.stop(5.0)
