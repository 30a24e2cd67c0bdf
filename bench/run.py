"""The one benchmark command: wiretape against the origin and mitmproxy's own floor.

    .venv/bin/python -m bench.run            # the full run (about 8 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick    # one short point per part (the smoke test)

Every target serves the same realistic test-suite mix (bench/workload.py) to wrk at 1, 16
and 64 keep-alive connections, with wrk on one core and the server under test on another;
repetitions are interleaved (every target once per round) and medians reported, each also
as a ratio to bare `mitmdump` from the same run. Then replay at 100 and 100,000 recordings,
and the admin API's list page at 100,000 recordings on SQLite and PostgreSQL. Results go
to bench/results/<name>.json and .md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import adminlist, report, workload
from .harness import (
    HOST,
    BenchError,
    ForeignLoad,
    Proc,
    cpu_seconds,
    free_port,
    peak_rss_kb,
    require_wrk,
    reset_peak_rss,
    rss_kb,
    run_wrk,
    wait_answering,
    wait_listening,
    wrk_version,
)
from .pg import Postgres, PostgresUnavailable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
TARGETS = ["origin", "mitmdump", "mitmdump-record", "mitmdump-replay",
           "wiretape-record", "wiretape-replay"]
LIVE = ["origin", "mitmdump", "mitmdump-record", "wiretape-record"]  # need the origin up
BASELINE = "mitmdump"
SEED_PORT = 9  # the origin port seeded recordings name; nothing listens there
SCALE_TAPE = "scale"
MIX_TAPE = "bench"
# wiretape's own mitmproxy options (cli/serve.py), given to every mitmdump baseline too
MITM_COMMON = ["--set", "connection_strategy=lazy", "--set", "upstream_cert=false"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config:
    reps: int
    connections: list[int]
    duration: float
    warmup: float
    targets: list[str]
    scale_sizes: list[int]
    scale_reps: int
    admin_size: int
    admin_requests: int
    sections: set[str]  # throughput, scale, admin
    postgres: bool
    load_cpu: int
    proxy_cpu: int
    max_rps: int  # the request cap per wrk run is max_rps * duration
    quiet_budget: float  # seconds the whole run may spend waiting for other load to pass
    wiretape_cmd: list[str]  # how to run `wiretape` (default: the installed console script)
    out: Path
    quick: bool
    keep: bool

    def cap(self, duration: float) -> int:
        return int(self.max_rps * max(1.0, duration))


def tool(name: str) -> str:
    p = BIN / name
    if p.exists():
        return str(p)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"{name} is not installed next to {sys.executable} or on PATH")
    return found


def wiretape_available(cmd: list[str]) -> str | None:
    """None when `wiretape serve` can run, else why not."""
    try:
        exe = cmd or [tool("wiretape")]
    except BenchError as e:
        return str(e)
    try:
        out = subprocess.run([*exe, "serve", "--help"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"wiretape serve --help failed: {e}"
    if out.returncode != 0:
        return f"wiretape serve is not available yet: {out.stderr.strip().splitlines()[-1:]}"
    return None


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 3) if vals else None


class Bench:
    def __init__(self, cfg: Config, work: Path) -> None:
        self.cfg = cfg
        self.work = work
        self.origin: Proc | None = None
        self.origin_port = free_port()
        self.requests_lua = work / "mix-requests.lua"
        self.mitm_conf = work / "mitm-conf"
        self.wt_conf = work / "wt-conf"
        self.replay_db = work / "replay.db"
        self.replay_flows = work / "replay.mitm"
        self.skipped: dict[str, str] = {}
        self.notes: list[str] = []
        self.foreign = ForeignLoad((cfg.load_cpu, cfg.proxy_cpu))
        self.procs: list[Proc] = []  # this round's servers, whose CPU is the benchmark's own
        self.quiet_left = cfg.quiet_budget
        self.wiretape_reason = wiretape_available(cfg.wiretape_cmd)
        if self.wiretape_reason:
            for t in ("wiretape-record", "wiretape-replay"):
                if t in cfg.targets:
                    self.skipped[t] = f"not available: {self.wiretape_reason}"

    # -- processes -----------------------------------------------------------------------
    def wait_quiet(self, own: list[int]) -> float:
        """Wait for other processes' load to pass, within what is left of the budget."""
        if self.quiet_left <= 0:
            return -1.0
        t0 = time.monotonic()
        seen = self.foreign.wait_quiet(own, timeout=min(15.0, self.quiet_left))
        self.quiet_left -= time.monotonic() - t0
        return seen

    def own_pids(self) -> list[int]:
        procs = [*self.procs, *([self.origin] if self.origin else [])]
        return [p.pid for p in procs if p.alive()]

    def start_origin(self, cpu: int) -> None:
        if self.origin is not None and self.origin.alive():
            self.origin.pin(cpu)
            return
        self.origin = Proc("origin", [sys.executable, "-m", "bench.origin", "--port",
                                      str(self.origin_port)], cpu, self.work / "origin.log",
                           env={"PYTHONPATH": str(REPO)}).start()
        wait_listening(self.origin, self.origin_port, 20)

    def stop_origin(self) -> None:
        if self.origin is not None:
            self.origin.stop(10)
            self.origin = None

    def mitmdump(self, name: str, port: int, *extra: str) -> Proc:
        cmd = [tool("mitmdump"), "-q", "--listen-host", HOST, "--listen-port", str(port),
               "--set", f"confdir={self.mitm_conf}", *MITM_COMMON, *extra]
        return Proc(name, cmd, self.cfg.proxy_cpu, self.work / f"{name}.log").start()

    def wiretape(self, name: str, port: int, mode: str, db_url: str, tape: str,
                 admin_port: int | None = None) -> Proc:
        exe = self.cfg.wiretape_cmd or [tool("wiretape")]
        cmd = [*exe, "serve", "--mode", mode, "--tape", tape, "--db", db_url,
               "--listen", f"{HOST}:{port}", "--admin", f"{HOST}:{admin_port or free_port()}",
               "--confdir", str(self.wt_conf)]
        if mode == "replay":
            cmd += ["--on-miss", "error", "--sequence", "repeat-last"]
        return Proc(name, cmd, self.cfg.proxy_cpu, self.work / f"{name}.log",
                    env={"PYTHONPATH": str(REPO)} if self.cfg.wiretape_cmd else None).start()

    def start_target(self, target: str, rep: int) -> tuple[Proc, int]:
        port = free_port()
        if target == "mitmdump":
            return self.mitmdump(target, port), port
        if target == "mitmdump-record":
            return self.mitmdump(target, port, "-w", str(self.work / f"rec-{rep}.mitm")), port
        if target == "mitmdump-replay":
            # reuse: serve a recording more than once (wrk repeats the mix); extra=404: the
            # origin is stopped, so a miss gets an immediate answer, like wiretape's 502;
            # refresh off: wiretape serves recorded headers as they are, so both do one job
            return self.mitmdump(
                target, port, "--server-replay", str(self.replay_flows),
                "--set", "server_replay_reuse=true", "--set", "server_replay_extra=404",
                "--set", "server_replay_refresh=false"), port
        if target == "wiretape-record":
            db = f"sqlite:///{self.work / f'rec-{rep}.db'}"
            return self.wiretape(target, port, "record", db, MIX_TAPE), port
        if target == "wiretape-replay":
            return self.wiretape(target, port, "replay", f"sqlite:///{self.replay_db}",
                                 MIX_TAPE), port
        raise ValueError(target)

    # -- setup ---------------------------------------------------------------------------
    def prime(self) -> None:
        """Record the mix once through wiretape and through `mitmdump -w`: the tapes that
        the replay targets serve."""
        workload.write_lua_requests(self.requests_lua, self.origin_port)
        self.start_origin(self.cfg.load_cpu)
        probe = f"http://{HOST}:{self.origin_port}/health"
        wanted = set(self.cfg.targets)
        need_mitm = bool(wanted & {"mitmdump", "mitmdump-record", "mitmdump-replay"})
        if need_mitm:
            port = free_port()
            proc = self.mitmdump("prime-mitmdump", port, "-w", str(self.replay_flows))
            try:
                wait_answering(proc, port, probe, 200, 60)  # also makes mitmproxy's CA
                workload.prime(port, self.origin_port)
            finally:
                proc.stop(30)
        if not self.wiretape_reason and wanted & {"wiretape-record", "wiretape-replay"}:
            port = free_port()
            proc = self.wiretape("prime-wiretape", port, "record",
                                 f"sqlite:///{self.replay_db}", MIX_TAPE)
            try:
                wait_answering(proc, port, probe, 200, 60)
                sent = workload.prime(port, self.origin_port)
            finally:
                info = proc.stop(60)
            n = count_recordings(self.replay_db, MIX_TAPE)
            log(f"primed tape {MIX_TAPE!r}: {sent} requests sent, {n} recordings stored")
            if n is None or n < sent:
                self.notes.append(f"priming stored {n} of {sent} exchanges (stop: {info})")

    # -- throughput ----------------------------------------------------------------------
    def start_round(self, targets: list[str], rep: int) -> dict[str, tuple[Proc, int, float]]:
        """Start this round's servers one after another (so each start is timed alone),
        with the origin up; they stay up, idle, until the round ends."""
        self.start_origin(self.cfg.load_cpu)
        started: dict[str, tuple[Proc, int, float]] = {}
        for target in targets:
            if target == "origin":
                continue
            proc, port = self.start_target(target, rep)
            self.procs.append(proc)
            try:
                probe = f"http://{HOST}:{self.origin_port}/health"
                started[target] = (proc, port, wait_answering(proc, port, probe, 200, 60))
            except BenchError as e:
                proc.stop(30)
                log(f"{target}: {e}")
                self.skipped.setdefault(target, f"failed: {str(e).splitlines()[0]}")
        return started

    def stop_round(self, started: dict[str, tuple[Proc, int, float]], rep: int,
                   raw: list[dict[str, Any]]) -> None:
        self.procs = []
        for target, (proc, _, _) in started.items():
            info = proc.stop(120)
            if target == "wiretape-record":
                n = count_recordings(self.work / f"rec-{rep}.db", MIX_TAPE)
                info["recorded"] = n
                sent = sum(p["requests"] for p in raw if p["target"] == target
                           and p["rep"] == rep)
                if n is None or n < sent:
                    self.notes.append(f"round {rep + 1}: wiretape record stored {n} "
                                      f"recordings for {sent} measured requests")
            for p in raw:
                if p["target"] == target and p["rep"] == rep:
                    p["stop"] = info

    def measure_point(self, target: str, proc: Proc, port: int, c: int, rep: int,
                      startup: float | None, warm: bool) -> dict[str, Any]:
        cfg = self.cfg
        if target == "origin":
            proc.pin(cfg.proxy_cpu)  # the origin is the server under test here
        try:
            if not proc.alive():
                raise BenchError(f"{target} died:\n{proc.log_tail()}")
            url = f"http://{HOST}:{port}/"
            args = [str(self.requests_lua), "origin-form" if target == "origin" else "absolute"]
            if warm and cfg.warmup > 0:
                run_wrk(url, BENCH / "mix.lua", args, 16, cfg.warmup, cfg.load_cpu,
                        cfg.cap(cfg.warmup))
                quiesce(proc.pid)
            own = self.own_pids()
            quiet = self.wait_quiet(own)
            reset_peak_rss(proc.pid)
            cpu0 = cpu_seconds(proc.pid)
            f0 = self.foreign.snapshot(own)
            r = run_wrk(url, BENCH / "mix.lua", args, c, cfg.duration, cfg.load_cpu,
                        cfg.cap(cfg.duration))
            foreign = self.foreign.cores(f0, self.foreign.snapshot(own))
            cpu1 = cpu_seconds(proc.pid)
            peak = peak_rss_kb(proc.pid)
            # a recording proxy may still be writing what it captured: let it finish on its
            # core before the next target is measured there, and say how long it took
            drain = quiesce(proc.pid)
        finally:
            if target == "origin":
                proc.pin(cfg.load_cpu)
        d = r.as_dict()
        d.update(target=target, rep=rep, connections=c,
                 rss_mb=round(peak / 1024, 1) if peak else None,
                 cpu_ms_per_req=round((cpu1 - cpu0) * 1000 / r.requests, 4)
                 if cpu0 is not None and cpu1 is not None and r.requests else None,
                 startup_s=round(startup, 3) if startup is not None else None,
                 drain_s=round(drain, 2), foreign_cpu=round(foreign, 3),
                 foreign_cpu_before=round(quiet, 3))
        log(f"round {rep + 1} {target:16s} c={c:<3d} {r.rps:9.0f} req/s  "
            f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  err {r.errors} "
            f"non2xx {r.non2xx}  rss {d['rss_mb']} MB  drain {drain:.1f}s  "
            f"foreign cpu {foreign:.2f}")
        return d

    def throughput(self) -> list[dict[str, Any]]:
        """Rounds of every target at every connection count. Within a round all servers
        are up; for each connection count the targets are measured back to back (live
        ones with the origin up, replay ones with it stopped), so slow drift of the
        machine falls on all of them alike. Fresh servers and stores every round."""
        raw: list[dict[str, Any]] = []
        for rep in range(self.cfg.reps):  # bounded: reps rounds
            targets = [t for t in self.cfg.targets if t not in self.skipped]
            started = self.start_round(targets, rep)
            warmed: set[str] = set()
            try:
                for ci, c in enumerate(self.cfg.connections):  # bounded: a few counts
                    live = [t for t in targets if t in LIVE and t not in self.skipped]
                    replay = [t for t in targets if t not in LIVE and t not in self.skipped]
                    groups = [live, replay] if (rep + ci) % 2 == 0 else [replay, live]
                    for group in groups:
                        if not group:
                            continue
                        if group is live:
                            self.start_origin(self.cfg.load_cpu)
                        else:
                            self.stop_origin()  # replay: nothing may reach a live upstream
                        k = rep % len(group)
                        for target in group[k:] + group[:k]:
                            if target in self.skipped:
                                continue
                            if target == "origin":
                                assert self.origin is not None
                                proc, port, startup = self.origin, self.origin_port, None
                            elif target in started:
                                proc, port, startup = started[target]
                            else:
                                continue
                            try:
                                raw.append(self.measure_point(target, proc, port, c, rep,
                                                              startup, target not in warmed))
                                warmed.add(target)
                            except BenchError as e:
                                log(f"{target}: {e}")
                                self.skipped.setdefault(
                                    target, f"failed: {str(e).splitlines()[0]}")
            finally:
                self.stop_round(started, rep, raw)
        self.start_origin(self.cfg.load_cpu)
        return raw

    # -- replay at scale -------------------------------------------------------------------
    def seed(self, jobs: list[tuple[str, int]]) -> dict[str, Any]:
        """Seed stores in parallel subprocesses, one per core (nothing is measured meanwhile).
        SQLite through repository.add_exchanges; PostgreSQL with the same rows by COPY."""
        procs = []
        for k, (url, n) in enumerate(jobs):
            cpu = (self.cfg.load_cpu, self.cfg.proxy_cpu)[k % 2]
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

    def scale(self, sqlite_dbs: dict[int, str]) -> dict[str, Any]:
        cfg = self.cfg
        self.stop_origin()
        probe = f"http://{HOST}:{SEED_PORT}/api/items/1?fields=all"
        raw: list[dict[str, Any]] = []
        sizes = sorted(sqlite_dbs)
        for rep in range(cfg.scale_reps):
            for n in sizes if rep % 2 == 0 else sizes[::-1]:
                port = free_port()
                proc = self.wiretape(f"scale-{n}", port, "replay", sqlite_dbs[n], SCALE_TAPE)
                try:
                    startup = wait_answering(proc, port, probe, 200, 120)
                    rss_start = rss_kb(proc.pid)
                    url = f"http://{HOST}:{port}/"
                    args = [str(SEED_PORT), str(n)]
                    if cfg.warmup > 0:
                        run_wrk(url, BENCH / "scale.lua", args, 16, cfg.warmup, cfg.load_cpu,
                                cfg.cap(cfg.warmup))
                    self.wait_quiet([proc.pid])
                    f0 = self.foreign.snapshot([proc.pid])
                    cpu0 = cpu_seconds(proc.pid)
                    r = run_wrk(url, BENCH / "scale.lua", args, 16, cfg.duration, cfg.load_cpu,
                                cfg.cap(cfg.duration))
                    cpu1 = cpu_seconds(proc.pid)
                    foreign = self.foreign.cores(f0, self.foreign.snapshot([proc.pid]))
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

    # -- admin list ------------------------------------------------------------------------
    def admin(self, backend: str, url: str) -> dict[str, Any]:
        port, admin_port = free_port(), free_port()
        proc = self.wiretape(f"admin-{backend}", port, "replay", url, SCALE_TAPE, admin_port)
        try:
            wait_listening(proc, admin_port, 120)
            wait_answering(proc, port, f"http://{HOST}:{SEED_PORT}/api/items/1?fields=all",
                           200, 120)
            result = adminlist.measure(admin_port, SCALE_TAPE, self.cfg.admin_requests,
                                       seconds_per_filter=20 if not self.cfg.quick else 5)
        except adminlist.NotAvailable as e:
            return {"status": "not available", "reason": str(e)}
        finally:
            proc.stop(60)
        log(f"admin list on {backend}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
        return {"status": "ok", "backend": backend, "recordings": self.cfg.admin_size, **result}


def quiesce(pid: int, idle_share: float = 0.05, timeout: float = 60.0) -> float:
    """Wait until a process uses under `idle_share` of a core over 100 ms; returns the
    seconds waited (bounded in count and time)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    for _ in range(int(timeout / 0.1) + 1):
        a = cpu_seconds(pid)
        time.sleep(0.1)
        b = cpu_seconds(pid)
        if a is None or b is None or (b - a) / 0.1 < idle_share or time.monotonic() > deadline:
            break
    return time.monotonic() - t0


def redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def count_recordings(path: Path, tape: str) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute(
                "SELECT count(*) FROM recordings r JOIN tapes t ON t.id = r.tape_id "
                "WHERE t.name = ?", (tape,)).fetchone()
            return int(row[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


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


# -- aggregation -----------------------------------------------------------------------

def aggregate(
    raw: list[dict[str, Any]], targets: list[str], conns: list[int]
) -> list[dict[str, Any]]:
    """Medians over the rounds of each (target, connections), and ratios to bare mitmdump
    at the same connection count in this run."""
    rows: list[dict[str, Any]] = []
    for t in targets:
        for c in conns:
            pts = [p for p in raw if p["target"] == t and p["connections"] == c]
            if not pts:
                continue
            rows.append({
                "target": t, "connections": c, "reps": len(pts),
                **{k: median([p[k] for p in pts]) for k in (
                    "rps", "p50_ms", "p99_ms", "rss_mb", "cpu_ms_per_req", "startup_s",
                    "drain_s", "foreign_cpu")},
                "foreign_cpu_max": max(p["foreign_cpu"] for p in pts),
                "errors": sum(p["errors"] for p in pts),
                "non2xx": sum(p["non2xx"] for p in pts),
                "requests": sum(p["requests"] for p in pts),
                "capped": any(p["capped"] for p in pts),
            })
    base = {r["connections"]: r for r in rows if r["target"] == BASELINE}
    for r in rows:
        b = base.get(r["connections"])
        r["x_mitmdump"] = {k: (round(r[k] / b[k], 3) if b and r[k] and b[k] else None)
                           for k in ("rps", "p50_ms", "p99_ms", "rss_mb", "cpu_ms_per_req")}
    return rows


def at(rows: list[dict[str, Any]], target: str, c: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["target"] == target and r["connections"] == c), None)


def check_targets(res: dict[str, Any], c: int) -> list[dict[str, Any]]:
    rows = res.get("throughput", {}).get("summary", [])
    out: list[dict[str, Any]] = []

    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        if a and b and a["rps"] and b["rps"]:
            return round(float(a["rps"]) / float(b["rps"]), 3)
        return None

    def cpu_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        # req/s the CPU cost per request implies: steadier than req/s on a busy machine
        if a and b and a["cpu_ms_per_req"] and b["cpu_ms_per_req"]:
            return round(float(b["cpu_ms_per_req"]) / float(a["cpu_ms_per_req"]), 3)
        return None

    def add(name: str, value: float | None, goal: str, ok: Callable[[float], bool],
            unit: str = "", why: str = "", by_cpu: float | None = None) -> None:
        out.append({"target": name, "measured": value, "unit": unit, "goal": goal,
                    "met": None if value is None else bool(ok(value)),
                    "note": why if value is None else "", "implied_by_cpu": by_cpu})

    pairs = [("wiretape-record", "mitmdump", "wiretape record vs bare mitmdump forward",
              0.9), ("wiretape-replay", "mitmdump-replay",
                     "wiretape replay vs mitmdump --server-replay", 1.5)]
    for ours, theirs, name, goal in pairs:
        a, b = at(rows, ours, c), at(rows, theirs, c)
        at_least: Callable[[float], bool] = functools.partial(operator.le, goal)
        add(f"{name}, req/s at {c} conns", ratio(a, b), f">= {goal}x", at_least, "x",
            "not measured", cpu_ratio(a, b))
    scale = {s["recordings"]: s for s in res.get("scale", {}).get("summary", [])}
    sizes = res["meta"]["config"]["scale_sizes"]
    big, small = (max(scale), min(scale)) if scale else (max(sizes), min(sizes))
    sc = (round(scale[big]["rps"] / scale[small]["rps"], 3)
          if scale and big != small and scale[small]["rps"] else None)
    sc_cpu = (round(scale[small]["cpu_ms_per_req"] / scale[big]["cpu_ms_per_req"], 3)
              if scale and big != small and scale[big].get("cpu_ms_per_req") else None)
    add(f"replay req/s at {big} vs {small} recordings", sc, ">= 0.9x (within 10%)",
        lambda v: v >= 0.9, "x", "not measured", sc_cpu)
    add(f"replay startup with {big} recordings", scale[big]["startup_s"] if scale else None,
        "< 3 s", lambda v: v < 3.0, "s", "not measured")
    for backend in ("sqlite", "postgresql"):
        a = res.get("admin_list", {}).get(backend, {})
        add(f"admin list page p99 at {big} recordings, {backend}",
            a.get("p99_ms") if a.get("status") == "ok" else None, "< 100 ms",
            lambda v: v < 100, "ms", a.get("reason", a.get("status", "not measured")))
    return out


# -- the command -----------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="one short point per part: 1 round, 16 connections, 1 s, small tapes")
    p.add_argument("--reps", type=int, help="interleaved rounds (default 4)")
    p.add_argument("--connections", help="comma-separated (default 1,16,64)")
    p.add_argument("--duration", type=float, help="seconds per wrk point (default 3)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per server start")
    p.add_argument("--targets", help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--sections", default="throughput,scale,admin",
                   help="comma-separated: throughput, scale, admin")
    p.add_argument("--scale-sizes", help="comma-separated tape sizes (default 100,100000)")
    p.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL point")
    p.add_argument("--load-cpu", type=int, default=0, help="core of wrk and the harness")
    p.add_argument("--proxy-cpu", type=int, default=1, help="core of the server under test")
    p.add_argument("--out", default="bench/results/bench",
                   help="path prefix of the .json and .md results")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, stores)")
    p.add_argument("--wiretape-cmd",
                   help="command that runs wiretape, "
                        "(default: the installed wiretape)")
    p.add_argument("--quiet-budget", type=float, default=60.0,
                   help="seconds in all to wait, before points, for other processes' CPU "
                        "load to pass (default 60; 0 with --quick)")
    a = p.parse_args(argv)
    q = a.quick
    sizes = [int(x) for x in (a.scale_sizes or ("100,1000" if q else "100,100000")).split(",")]
    targets = a.targets.split(",") if a.targets else list(TARGETS)
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        p.error(f"unknown target {bad[0]!r}; targets are {', '.join(TARGETS)}")
    sections = set(a.sections.split(","))
    if sections - {"throughput", "scale", "admin"}:
        p.error("sections are throughput, scale and admin")
    return Config(
        reps=a.reps or (1 if q else 4),
        connections=[int(x) for x in (a.connections or ("16" if q else "1,16,64")).split(",")],
        duration=a.duration or (1.0 if q else 3.0),
        warmup=a.warmup if a.warmup is not None else (0.0 if q else 1.0),
        targets=targets,
        scale_sizes=sizes,
        scale_reps=1 if q else 3,
        admin_size=max(sizes),
        admin_requests=10 if q else 60,
        sections=sections,
        postgres=not (a.no_postgres or q),
        load_cpu=a.load_cpu,
        proxy_cpu=a.proxy_cpu,
        max_rps=200_000,
        quiet_budget=0.0 if q else a.quiet_budget,
        wiretape_cmd=[sys.executable if w in ("python", "python3") else w
                      for w in shlex.split(a.wiretape_cmd or "")],
        out=Path(a.out),
        quick=q,
        keep=a.keep,
    )


def meta(cfg: Config, argv: list[str]) -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version
        mitm = version("mitmproxy")
    except Exception:
        mitm = "unknown"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": list(os.getloadavg()),
        "command": " ".join([".venv/bin/python -m bench.run", *argv]),
        "commit": git("rev-parse", "--short", "HEAD") + ("-dirty" if git(
            "status", "--porcelain", "--untracked-files=no") else ""),
        "machine": {"cpu": cpu_model, "cores": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "mitmproxy": mitm,
                    "wrk": wrk_version()},
        "pinning": {"load_generator_and_harness_cpu": cfg.load_cpu,
                    "server_under_test_cpu": cfg.proxy_cpu,
                    "origin_cpu": f"{cfg.load_cpu} while a proxy is measured; "
                                  f"{cfg.proxy_cpu} when it is itself the target"},
        "config": {"rounds": cfg.reps, "connections": cfg.connections,
                   "seconds_per_point": cfg.duration, "warmup_s": cfg.warmup,
                   "wrk": "1 thread, keep-alive, --timeout 5s",
                   "request_cap_per_point": cfg.cap(cfg.duration),
                   "scale_sizes": cfg.scale_sizes, "quick": cfg.quick},
        "mitmdump_options": {
            "all": ["-q", *MITM_COMMON],
            "mitmdump-record": ["-w FILE"],
            "mitmdump-replay": ["--server-replay FILE", "server_replay_reuse=true",
                                "server_replay_extra=404", "server_replay_refresh=false"],
        },
        "wiretape_cmd": " ".join(cfg.wiretape_cmd) or "wiretape",
        "wiretape_options": {"record": "--mode record (defaults otherwise)",
                             "replay": "--mode replay --on-miss error --sequence repeat-last"},
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_args(argv)
    try:
        require_wrk()
        if len(os.sched_getaffinity(0)) < 2 or cfg.load_cpu == cfg.proxy_cpu:
            raise BenchError("the benchmark needs two cores: wrk on one, the proxy on another")
        os.sched_setaffinity(0, {cfg.load_cpu})  # the harness stays off the proxy's core
        return run(cfg, argv)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2


def run(cfg: Config, argv: list[str]) -> int:
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="wiretape-bench-"))
    b = Bench(cfg, work)
    res: dict[str, Any] = {"meta": meta(cfg, argv), "workload": workload.describe_mix()}
    try:
        if "throughput" in cfg.sections:
            log(f"priming tapes (work dir {work})")
            b.prime()
            raw = b.throughput()
            measured = [t for t in TARGETS if any(p["target"] == t for p in raw)]
            res["throughput"] = {
                "workload": "realistic mix (bench/workload.py, bench/mix.lua)",
                "summary": aggregate(raw, measured, cfg.connections), "raw": raw}
        b.stop_origin()
        scale_dbs: dict[int, str] = {}
        pg_url: str | None = None
        pg_ctx: Postgres | None = None
        if {"scale", "admin"} & cfg.sections and not b.wiretape_reason:
            jobs = [(f"sqlite:///{work / f'scale-{n}.db'}", n) for n in cfg.scale_sizes]
            scale_dbs = {n: url for url, n in jobs}
            if "admin" in cfg.sections and cfg.postgres:
                pg_ctx = Postgres(cfg.proxy_cpu)
                try:
                    pg_url = pg_ctx.__enter__()
                    jobs.append((pg_url, cfg.admin_size))
                except (PostgresUnavailable, BenchError) as e:
                    b.skipped["admin_list/postgresql"] = f"skipped: {e}"
                    pg_ctx = None
            res["seeding"] = b.seed(jobs)
            if pg_url:
                vacuum_analyze(pg_url)
        elif {"scale", "admin"} & cfg.sections:
            b.skipped["scale"] = b.skipped["admin_list"] = f"not available: {b.wiretape_reason}"
        try:
            if "scale" in cfg.sections and scale_dbs:
                try:
                    res["scale"] = b.scale(scale_dbs)
                except BenchError as e:
                    log(f"scale: {e}")
                    b.skipped["scale"] = f"failed: {str(e).splitlines()[0]}"
            if "admin" in cfg.sections and scale_dbs:
                res["admin_list"] = {}
                for backend, url in (("sqlite", scale_dbs[cfg.admin_size]),
                                     ("postgresql", pg_url)):
                    if url is None:
                        continue
                    try:
                        res["admin_list"][backend] = b.admin(backend, url)
                    except BenchError as e:
                        log(f"admin list on {backend}: {e}")
                        res["admin_list"][backend] = {
                            "status": "failed", "reason": str(e).splitlines()[0]}
                if not pg_url:
                    res["admin_list"]["postgresql"] = {
                        "status": "skipped",
                        "reason": b.skipped.get("admin_list/postgresql",
                                                "--quick/--no-postgres")}
        finally:
            if pg_ctx is not None:
                pg_ctx.__exit__(None, None, None)
    finally:
        b.stop_origin()
        if cfg.keep:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    c16 = 16 if 16 in cfg.connections else cfg.connections[len(cfg.connections) // 2]
    res["targets"] = check_targets(res, c16)
    res["skipped"] = b.skipped
    res["notes"] = b.notes
    res["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
    res["meta"]["loadavg_at_end"] = list(os.getloadavg())
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    json_path = cfg.out.with_suffix(".json")
    md_path = cfg.out.with_suffix(".md")
    json_path.write_text(json.dumps(res, indent=1) + "\n")
    md_path.write_text(report.markdown(res))
    log(f"wrote {json_path} and {md_path} in {res['meta']['elapsed_s']}s")
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
