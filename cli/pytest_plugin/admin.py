"""A small client of serve's admin API (stdlib only, never through the session's proxy),
and the counters the plugin reads from /metrics."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


class ServeError(RuntimeError):
    """`wiretape serve` did not start, died, or its admin API refused a request."""


def wait_until[T](ready: Callable[[], T | None], timeout: float, what: str,
               step: float = 0.01) -> T:
    """Poll a condition (bounded): the value it returns once it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        # a request's headers and body are two writes: without this the body waits for
        # the server's delayed ACK of the headers
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Admin:
    """A small client of serve's admin API on one kept-alive connection (stdlib only, and
    never through the proxies this plugin sets in the environment)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._conn: _Connection | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                timeout: float = 60.0) -> tuple[int, bytes]:
        # every write is JSON, body or not: the admin API refuses other writes (CSRF)
        writes = body is not None or method not in ("GET", "HEAD")
        headers = {"Content-Type": "application/json"} if writes else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = _Connection(self.host, self.port, timeout=timeout)
            conn = self._conn
            conn.timeout = timeout
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError) as e:
                # a kept-alive connection the server closed meanwhile: one fresh try
                self.close()
                if attempt == 2:
                    raise ServeError(f"admin API {method} {path}: {e}") from e
                continue
            if resp.will_close:
                self.close()
            return resp.status, data
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None,
             ok: Iterable[int] = (200, 201, 202, 204), timeout: float = 60.0) -> Any:
        """JSON in, JSON out; ServeError with the API's `detail` on an unexpected status."""
        body = raw if raw is not None else (
            json.dumps(payload).encode() if payload is not None else None)
        status, data = self.request(method, path, body, timeout)
        if status not in tuple(ok):
            try:
                detail = json.loads(data).get("detail", data[:300])
            except (ValueError, AttributeError):
                detail = data[:300].decode("utf-8", "replace")
            raise ServeError(f"admin API {method} {path} answered {status}: {detail}")
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def tape_path(name: str, rest: str = "") -> str:
    return f"/api/tapes/{quote(name, safe='')}{rest}"


@dataclass(frozen=True, slots=True)
class Counters:
    """What /metrics says the proxy has done so far (all modes together)."""

    recorded: float = 0.0
    missed: float = 0.0
    written: float = 0.0
    queued: float = 0.0


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$", re.M)


def parse_counters(text: str) -> Counters:
    recorded = missed = written = queued = 0.0
    for m in _SAMPLE.finditer(text):
        name, labels, value = m["name"], m["labels"] or "", float(m["value"])
        if name == "wiretape_requests_total":
            if 'outcome="recorded"' in labels:
                recorded += value
            elif 'outcome="miss"' in labels:
                missed += value
        elif name == "wiretape_recordings_written_total":
            written = value
        elif name == "wiretape_write_queue_depth":
            queued = value
    return Counters(recorded, missed, written, queued)
