"""An in-process nudge: tells this process's replay side that the store changed.

Correctness never depends on it (other processes poll the database); it only makes a
change made through this process's admin API visible at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Notifier:
    def __init__(self) -> None:
        self._subscribers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def changed(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for cb in subscribers:
            cb()
