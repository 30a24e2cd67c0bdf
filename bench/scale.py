"""Replay at scale and the admin API's list page: seeding their stores, then measuring
`wiretape serve` on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from . import adminlist
from .aggregate import median
from .config import BENCH, REPO, SCALE_TAPE, SEED_PORT, log
from .harness import (
    HOST,
    BenchError,
    cpu_seconds,
    free_port,
    peak_rss_kb,
    rss_kb,
    run_wrk,
    wait_answering,
    wait_listening,
)
from .targets import Bench


def seed(b: Bench, jobs: list[tuple[str, int]]) -> dict[str, Any]:
    """Seed stores in parallel subprocesses, one per core (nothing is measured meanwhile).
    SQLite through repository.add_exchanges; PostgreSQL with the same rows by COPY."""
    procs = []
    for k, (url, n) in enumerate(jobs):
        cpu = (b.cfg.load_cpu, b.cfg.proxy_cpu)[k % 2]
        method = "copy" if url.startswith("postgresql") else "api"
        cmd = ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.seed", "--db", url,
               "--tape", SCALE_TAPE, "--n", str(n), "--port", str(SEED_PORT),
               "--method", method]
        procs.append((url, n, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})))
    out: dict[str, Any] = {}
    for url, n, p in procs:
        try:
            so, se = p.communicate(timeout=600)
        except subprocess.TimeoutExpired as e:
            p.kill()
            raise BenchError(f"seeding {n} recordings into {redact(url)} took over 600s") \
                from e
        if p.returncode != 0:
            raise BenchError(f"seeding {redact(url)} failed: {se.strip()[-400:]}")
        out[redact(url)] = json.loads(so.strip().splitlines()[-1])
        log(f"seeded {n} recordings into {redact(url)} in {out[redact(url)]['seconds']}s")
    return out


def scale(b: Bench, sqlite_dbs: dict[int, str]) -> dict[str, Any]:
    cfg = b.cfg
    b.stop_origin()
    probe = f"http://{HOST}:{SEED_PORT}/api/items/1?fields=all"
    raw: list[dict[str, Any]] = []
    sizes = sorted(sqlite_dbs)
    for rep in range(cfg.scale_reps):
        for n in sizes if rep % 2 == 0 else sizes[::-1]:
            port = free_port()
            proc = b.wiretape(f"scale-{n}", port, "replay", sqlite_dbs[n], SCALE_TAPE)
            try:
                startup = wait_answering(proc, port, probe, 200, 120)
                rss_start = rss_kb(proc.pid)
                url = f"http://{HOST}:{port}/"
                args = [str(SEED_PORT), str(n)]
                if cfg.warmup > 0:
                    run_wrk(url, BENCH / "scale.lua", args, 16, cfg.warmup, cfg.load_cpu,
                            cfg.cap(cfg.warmup))
                b.wait_quiet([proc.pid])
                f0 = b.foreign.snapshot([proc.pid])
                cpu0 = cpu_seconds(proc.pid)
                r = run_wrk(url, BENCH / "scale.lua", args, 16, cfg.duration, cfg.load_cpu,
                            cfg.cap(cfg.duration))
                cpu1 = cpu_seconds(proc.pid)
                foreign = b.foreign.cores(f0, b.foreign.snapshot([proc.pid]))
                peak = peak_rss_kb(proc.pid)
            finally:
                proc.stop(60)
            d = r.as_dict()
            d.update(recordings=n, rep=rep, connections=16, startup_s=round(startup, 3),
                     rss_after_start_mb=round((rss_start or 0) / 1024, 1),
                     peak_rss_mb=round((peak or 0) / 1024, 1), foreign_cpu=round(foreign, 3),
                     cpu_ms_per_req=round((cpu1 - cpu0) * 1000 / r.requests, 4)
                     if cpu0 is not None and cpu1 is not None and r.requests else None)
            raw.append(d)
            log(f"scale round {rep + 1} n={n:<7d} {r.rps:8.0f} req/s  p99 {r.p99_ms:.2f} ms"
                f"  startup {startup:.2f}s  rss {d['peak_rss_mb']} MB  "
                f"err {r.errors} non2xx {r.non2xx}")
    summary = []
    for n in sizes:
        rows = [d for d in raw if d["recordings"] == n]
        summary.append({
            "recordings": n, "reps": len(rows),
            **{k: median([d[k] for d in rows]) for k in (
                "rps", "p50_ms", "p99_ms", "startup_s", "rss_after_start_mb",
                "peak_rss_mb", "foreign_cpu", "cpu_ms_per_req")},
            "errors": sum(d["errors"] for d in rows),
            "non2xx": sum(d["non2xx"] for d in rows),
        })
    return {"connections": 16, "summary": summary, "raw": raw}


def admin(b: Bench, backend: str, url: str) -> dict[str, Any]:
    port, admin_port = free_port(), free_port()
    proc = b.wiretape(f"admin-{backend}", port, "replay", url, SCALE_TAPE, admin_port)
    try:
        wait_listening(proc, admin_port, 120)
        wait_answering(proc, port, f"http://{HOST}:{SEED_PORT}/api/items/1?fields=all",
                       200, 120)
        result = adminlist.measure(admin_port, SCALE_TAPE, b.cfg.admin_requests,
                                   seconds_per_filter=20 if not b.cfg.quick else 5)
    except adminlist.NotAvailable as e:
        return {"status": "not available", "reason": str(e)}
    finally:
        proc.stop(60)
    log(f"admin list on {backend}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return {"status": "ok", "backend": backend, "recordings": b.cfg.admin_size, **result}


def redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def vacuum_analyze(url: str) -> None:
    """So autovacuum does not wake up in the middle of a measurement."""
    from sqlalchemy import create_engine, text
    from wiretape.storage import db

    engine = create_engine(db.check_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
