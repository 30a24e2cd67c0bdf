"""The admin API's filtered list page (`GET /api/recordings`), timed from a keep-alive client."""

from __future__ import annotations

import http.client
import json
import statistics
import time
from typing import Any
from urllib.parse import quote

HOST = "127.0.0.1"

# (name, query) pairs; {tape} is filled in. Each is a page a user of the admin UI asks for.
FILTERS: list[tuple[str, str]] = [
    ("first page", "tape={tape}&limit=50"),
    ("method=POST", "tape={tape}&method=POST&limit=50"),
    ("path prefix + status", "tape={tape}&path=/api/items&status=404&limit=50"),
    ("text in bodies (q)", "tape={tape}&q=item-0123&limit=50"),
    ("next pages (cursor)", "CURSOR"),
]


class NotAvailable(RuntimeError):
    """The endpoint is not there (yet)."""


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(pct / 100 * len(s) + 0.5) - 1))
    return s[k]


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"Accept": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def probe(admin_port: int, tape: str) -> None:
    conn = http.client.HTTPConnection(HOST, admin_port, timeout=30)
    try:
        status, body = _get(conn, f"/api/recordings?tape={quote(tape)}&limit=1")
    finally:
        conn.close()
    if status in (404, 405) and b"items" not in body:
        raise NotAvailable(f"GET /api/recordings answered {status}: {body[:120]!r}")
    if status != 200:
        raise NotAvailable(f"GET /api/recordings answered {status}: {body[:200]!r}")
    doc = json.loads(body)
    if not isinstance(doc, dict) or "items" not in doc:
        raise NotAvailable(f"GET /api/recordings answered an unexpected shape: {body[:200]!r}")


def measure(admin_port: int, tape: str, per_filter: int = 100, warmup: int = 5,
            seconds_per_filter: float = 15.0) -> dict[str, Any]:
    """p50/p99 ms per filter and over all of them; bounded in count and time per filter."""
    probe(admin_port, tape)
    conn = http.client.HTTPConnection(HOST, admin_port, timeout=30)
    out: dict[str, Any] = {"filters": [], "page_size": 50}
    every: list[float] = []
    errors = 0
    try:
        for name, query in FILTERS:
            times: list[float] = []
            cursor: str | None = None
            deadline = time.monotonic() + seconds_per_filter
            for i in range(warmup + per_filter):
                if time.monotonic() > deadline:
                    break
                if query == "CURSOR":
                    path = f"/api/recordings?tape={quote(tape)}&limit=50"
                    if cursor:
                        path += f"&cursor={quote(cursor)}"
                else:
                    path = "/api/recordings?" + query.format(tape=quote(tape))
                t0 = time.perf_counter()
                status, body = _get(conn, path)
                dt = (time.perf_counter() - t0) * 1000
                if status != 200:
                    errors += 1
                    continue
                if query == "CURSOR":
                    cursor = json.loads(body).get("next_cursor")
                if i >= warmup:
                    times.append(dt)
            every += times
            out["filters"].append({
                "filter": name, "query": query if query != "CURSOR" else "follow next_cursor",
                "n": len(times), "p50_ms": round(percentile(times, 50), 2),
                "p99_ms": round(percentile(times, 99), 2),
                "mean_ms": round(statistics.fmean(times), 2) if times else None,
            })
    finally:
        conn.close()
    out.update(n=len(every), errors=errors, p50_ms=round(percentile(every, 50), 2),
               p99_ms=round(percentile(every, 99), 2))
    return out
