"""An in-process nudge: tells this process's replay side that the store changed.

Correctness never depends on it (other processes poll the database); it only makes a
change made through this process's admin API visible at once.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

# Called with whether the caller waits; a subscriber may then hand back a future that
# completes once it has taken the change in.
Subscriber = Callable[[bool], "concurrent.futures.Future[object] | None"]


class Notifier:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def changed(self, wait: float = 0.0) -> None:
        """Tell every subscriber; with `wait` > 0, block up to that many seconds until each
        has applied the change (an admin API write returns only once this process serves it).
        """
        with self._lock:
            subscribers = list(self._subscribers)
        pending = [f for f in (cb(wait > 0) for cb in subscribers) if f is not None]
        if wait > 0 and pending:
            concurrent.futures.wait(pending, timeout=wait)
