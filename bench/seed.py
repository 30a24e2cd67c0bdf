"""Seed a wiretape store with N synthetic recordings through the storage API.

Item i is `GET http://127.0.0.1:{port}/api/items/{i}?fields=all` answered 200 with about
1 KB of JSON (every fifth gzip-encoded, every fiftieth a 404), except every tenth item,
which is a `POST /api/orders` with a JSON body: the shape `scale.lua` replays and the admin
list filters on. Writes go in chunks of a few thousand per transaction, as the proxy's
writer would, via `repository.add_exchanges`, so match keys and `seq` are the real ones.

On PostgreSQL that path writes about a thousand recordings a second (psycopg parses each
multi-row INSERT on the client; see bench/README.md), which would take most of the run's
time budget, so `--method copy` (what the harness uses there) builds the very same rows
with `repository.exchange_row` and `matching.match_key` and streams them with COPY.

    python -m bench.seed --db sqlite:///big.db --tape scale --n 100000 --port 9
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine
from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange, Request, Response
from wiretape.storage.matching import MatchRules, match_key

HOST = "127.0.0.1"
BASE_NS = 1_700_000_000_000_000_000


def _item_body(i: int) -> bytes:
    doc = {"id": i, "sku": f"ITEM-{i:06d}", "price": round((i % 997) * 1.13, 2),
           "description": "Item used by the replay scale benchmark. " * (4 + i % 6),
           "attributes": {f"a{k}": (i * k) % 31 for k in range(12)}}
    return json.dumps(doc, separators=(",", ":")).encode()


def exchange(i: int, port: int) -> Exchange:
    ua = ("User-Agent", "wiretape-bench/1 (seed)")
    if i % 10 == 0:
        body = json.dumps({"order": i, "items": [{"sku": f"ITEM-{i:06d}", "qty": 1 + i % 3}]},
                          separators=(",", ":")).encode()
        req = Request("POST", "http", HOST, port, "/api/orders",
                      (("Host", f"{HOST}:{port}"), ua, ("Content-Type", "application/json")),
                      body)
        resp = Response(201, (("Content-Type", "application/json"),),
                        json.dumps({"order": i, "status": "created"}).encode(), "Created")
    else:
        req = Request("GET", "http", HOST, port, f"/api/items/{i}?fields=all",
                      (("Host", f"{HOST}:{port}"), ua, ("Accept", "application/json")))
        status, body = (404, b'{"error":"not found"}') if i % 50 == 7 else (200, _item_body(i))
        headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
        if i % 5 == 1 and status == 200:
            body = gzip.compress(body, 1, mtime=0)
            headers += (("Content-Encoding", "gzip"),)
        resp = Response(status, headers + (("Content-Length", str(len(body))),), body,
                        "OK" if status == 200 else "Not Found")
    return Exchange(req, resp, None, BASE_NS + i * 1000, duration_ms=1.0 + i % 7)


def seed(url: str, tape: str, n: int, port: int, chunk: int = 2000,
         timeout: float = 600.0) -> dict[str, Any]:
    """Migrate the store and write n recordings into `tape`; returns timings."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    with _migrated(url) as engine:
        sessions = db.make_sessions(engine)
        for start in range(0, n, chunk):  # bounded: n / chunk transactions
            if time.monotonic() > deadline:
                raise TimeoutError(f"seeding {n} recordings took longer than {timeout:.0f}s")
            batch = [exchange(i, port) for i in range(start, min(n, start + chunk))]
            with sessions.begin() as s:
                repo.add_exchanges(s, tape, batch)
    return {"recordings": n, "seconds": round(time.monotonic() - t0, 2), "method": "api"}


@contextlib.contextmanager
def _migrated(url: str) -> Iterator[Engine]:
    """An engine on the store, migrated first, disposed of at the end."""
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def seed_copy(url: str, tape: str, n: int, port: int, timeout: float = 600.0) -> dict[str, Any]:
    """PostgreSQL only: the rows add_exchanges would write (every key distinct, so seq 0),
    streamed with COPY into an empty tape."""
    from psycopg.types.json import Json

    t0 = time.monotonic()
    deadline = t0 + timeout
    with _migrated(url) as engine:
        sessions = db.make_sessions(engine)
        with sessions.begin() as s:
            t = repo.ensure_tape(s, tape)
            repo.touch_tape(s, t.id)
            tape_id, rules = t.id, MatchRules.from_dict(t.matching)
        cols = list(repo.exchange_row(exchange(1, port), tape_id, "", 0))
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY recordings ({', '.join(cols)}) FROM STDIN") as cp:
                for i in range(n):  # bounded in count, and in time below
                    if i % 5000 == 0 and time.monotonic() > deadline:
                        raise TimeoutError(f"seeding {n} recordings took over {timeout:.0f}s")
                    ex = exchange(i, port)
                    row = repo.exchange_row(ex, tape_id, match_key(ex.request, rules), 0)
                    cp.write_row([Json(v) if isinstance(v, (list, dict)) else v
                                  for v in (row[c] for c in cols)])
            raw.commit()
        finally:
            raw.close()
    return {"recordings": n, "seconds": round(time.monotonic() - t0, 2), "method": "copy"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Seed a wiretape store with N recordings.")
    p.add_argument("--db", required=True, help="SQLAlchemy URL of the store")
    p.add_argument("--tape", default="scale")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--port", type=int, default=9, help="origin port the recordings name")
    p.add_argument("--chunk", type=int, default=2000)
    p.add_argument("--method", choices=["api", "copy"], default="api",
                   help="api: repository.add_exchanges; copy: the same rows by COPY "
                        "(PostgreSQL only)")
    a = p.parse_args(argv)
    if a.method == "copy" and not a.db.startswith("postgresql"):
        p.error("--method copy needs a postgresql URL")
    result = (seed_copy(a.db, a.tape, a.n, a.port) if a.method == "copy"
              else seed(a.db, a.tape, a.n, a.port, a.chunk))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
