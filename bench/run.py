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
import json
import os
import platform
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
    Proc,
    WrkResult,
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


def wiretape_available() -> str | None:
    """None when `wiretape serve` can run, else why not."""
    try:
        exe = tool("wiretape")
    except BenchError as e:
        return str(e)
    try:
        out = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True,
                             timeout=60)
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
        self.wiretape_reason = wiretape_available()
        if self.wiretape_reason:
            for t in ("wiretape-record", "wiretape-replay"):
                if t in cfg.targets:
                    self.skipped[t] = f"not available: {self.wiretape_reason}"

    # -- processes -----------------------------------------------------------------------
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
        cmd = [tool("wiretape"), "serve", "--mode", mode, "--tape", tape, "--db", db_url,
               "--listen", f"{HOST}:{port}", "--admin", f"{HOST}:{admin_port or free_port()}",
               "--confdir", str(self.wt_conf)]
        if mode == "replay":
            cmd += ["--on-miss", "error", "--sequence", "repeat-last"]
        return Proc(name, cmd, self.cfg.proxy_cpu, self.work / f"{name}.log").start()

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
    def measure_target(self, target: str, rep: int) -> list[dict[str, Any]]:
        cfg = self.cfg
        live = target in LIVE
        if live:
            self.start_origin(cfg.load_cpu)
        else:
            self.stop_origin()  # replay: nothing may reach a live upstream
        url_host = f"{HOST}:{self.origin_port}"
        stop_info: dict[str, Any] = {}
        if target == "origin":
            assert self.origin is not None
            self.origin.pin(cfg.proxy_cpu)  # the origin is the server under test here
            proc, port, startup = self.origin, self.origin_port, None
            mode = "origin-form"
        else:
            proc, port = self.start_target(target, rep)
            startup = wait_answering(proc, port, f"http://{url_host}/health", 200, 60)
            mode = "absolute"
        url = f"http://{HOST}:{port}/"
        args = [str(self.requests_lua), mode]
        points = []
        try:
            if cfg.warmup > 0:
                run_wrk(url, BENCH / "mix.lua", args, 16, cfg.warmup, cfg.load_cpu,
                        cfg.cap(cfg.warmup))
            for c in cfg.connections:
                if not proc.alive():
                    raise BenchError(f"{target} died:\n{proc.log_tail()}")
                reset_peak_rss(proc.pid)
                cpu0 = cpu_seconds(proc.pid)
                r = run_wrk(url, BENCH / "mix.lua", args, c, cfg.duration, cfg.load_cpu,
                            cfg.cap(cfg.duration))
                cpu1 = cpu_seconds(proc.pid)
                peak = peak_rss_kb(proc.pid)
                points.append(self.point(target, rep, c, r, peak, cpu0, cpu1, startup))
                log(f"round {rep + 1} {target:16s} c={c:<3d} {r.rps:9.0f} req/s  "
                    f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  err {r.errors} "
                    f"non2xx {r.non2xx}  rss {(peak or 0) / 1024:.0f} MB")
        finally:
            if target == "origin":
                if self.origin is not None:
                    self.origin.pin(cfg.load_cpu)
            else:
                stop_info = proc.stop(120)
        if target == "wiretape-record":
            n = count_recordings(self.work / f"rec-{rep}.db", MIX_TAPE)
            for p in points:
                p["recorded_in_process"] = n
            stop_info["recorded"] = n
            sent = sum(p["requests"] for p in points)
            if n is not None and n < sent:
                self.notes.append(f"round {rep + 1}: wiretape record stored {n} recordings "
                                  f"for {sent} measured requests")
        for p in points:
            p["stop"] = stop_info
        return points

    @staticmethod
    def point(target: str, rep: int, c: int, r: WrkResult, peak_kb: int | None,
              cpu0: float | None, cpu1: float | None, startup: float | None) -> dict[str, Any]:
        d = r.as_dict()
        d.update(target=target, rep=rep, connections=c,
                 rss_mb=round(peak_kb / 1024, 1) if peak_kb else None,
                 cpu_ms_per_req=round((cpu1 - cpu0) * 1000 / r.requests, 4)
                 if cpu0 is not None and cpu1 is not None and r.requests else None,
                 startup_s=round(startup, 3) if startup is not None else None)
        return d

    def throughput(self) -> list[dict[str, Any]]:
        targets = [t for t in self.cfg.targets if t not in self.skipped]
        live = [t for t in targets if t in LIVE]
        replay = [t for t in targets if t not in LIVE]
        raw: list[dict[str, Any]] = []
        for rep in range(self.cfg.reps):  # bounded: reps rounds of every target
            # interleaved: every target once per round; the live and replay groups swap
            # places each round so drift over the run falls on both alike
            order = live + replay if rep % 2 == 0 else replay + live
            for target in order:
                try:
                    raw += self.measure_target(target, rep)
                except BenchError as e:
                    log(f"{target}: {e}")
                    self.skipped.setdefault(target, f"failed: {str(e).splitlines()[0]}")
        self.start_origin(self.cfg.load_cpu)
        return raw

    # -- replay at scale -------------------------------------------------------------------
    def seed(self, jobs: list[tuple[str, int]]) -> dict[str, Any]:
        """Seed stores in parallel subprocesses, one per core (nothing is measured meanwhile)."""
        procs = []
        for k, (url, n) in enumerate(jobs):
            cpu = (self.cfg.load_cpu, self.cfg.proxy_cpu)[k % 2]
            cmd = ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.seed", "--db", url,
                   "--tape", SCALE_TAPE, "--n", str(n), "--port", str(SEED_PORT)]
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
                    r = run_wrk(url, BENCH / "scale.lua", args, 16, cfg.duration, cfg.load_cpu,
                                cfg.cap(cfg.duration))
                    peak = peak_rss_kb(proc.pid)
                finally:
                    proc.stop(60)
                d = r.as_dict()
                d.update(recordings=n, rep=rep, connections=16, startup_s=round(startup, 3),
                         rss_after_start_mb=round((rss_start or 0) / 1024, 1),
                         peak_rss_mb=round((peak or 0) / 1024, 1))
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
                    "peak_rss_mb")},
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
                    "rps", "p50_ms", "p99_ms", "rss_mb", "cpu_ms_per_req", "startup_s")},
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

    def add(name: str, value: float | None, goal: str, ok: Callable[[float], bool],
            unit: str = "", why: str = "") -> None:
        out.append({"target": name, "measured": value, "unit": unit, "goal": goal,
                    "met": None if value is None else bool(ok(value)),
                    "note": why if value is None else ""})

    rec = ratio(at(rows, "wiretape-record", c), at(rows, "mitmdump", c))
    add(f"wiretape record vs bare mitmdump forward, req/s at {c} conns", rec, ">= 0.9x",
        lambda v: v >= 0.9, "x", "not measured")
    rep = ratio(at(rows, "wiretape-replay", c), at(rows, "mitmdump-replay", c))
    add(f"wiretape replay vs mitmdump --server-replay, req/s at {c} conns", rep, ">= 1.5x",
        lambda v: v >= 1.5, "x", "not measured")
    scale = {s["recordings"]: s for s in res.get("scale", {}).get("summary", [])}
    big, small = (max(scale), min(scale)) if scale else (None, None)
    sc = (round(scale[big]["rps"] / scale[small]["rps"], 3)
          if scale and big != small and scale[small]["rps"] else None)
    add(f"replay req/s at {big} vs {small} recordings", sc, ">= 0.9x (within 10%)",
        lambda v: v >= 0.9, "x", "not measured")
    add(f"replay startup with {big} recordings", scale[big]["startup_s"] if scale else None,
        "< 3 s", lambda v: v < 3.0, "s", "not measured")
    for backend in ("sqlite", "postgresql"):
        a = res.get("admin_list", {}).get(backend, {})
        add(f"admin list page p99 at {a.get('recordings', '?')} recordings, {backend}",
            a.get("p99_ms") if a.get("status") == "ok" else None, "< 100 ms",
            lambda v: v < 100, "ms", a.get("reason", a.get("status", "not measured")))
    return out


# -- the command -----------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="one short point per part: 1 round, 16 connections, 1 s, small tapes")
    p.add_argument("--reps", type=int, help="interleaved rounds (default 3)")
    p.add_argument("--connections", help="comma-separated (default 1,16,64)")
    p.add_argument("--duration", type=float, help="seconds per wrk point (default 5)")
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
        reps=a.reps or (1 if q else 3),
        connections=[int(x) for x in (a.connections or ("16" if q else "1,16,64")).split(",")],
        duration=a.duration or (1.0 if q else 5.0),
        warmup=a.warmup if a.warmup is not None else (0.0 if q else 1.0),
        targets=targets,
        scale_sizes=sizes,
        scale_reps=a.reps or (1 if q else 3),
        admin_size=max(sizes),
        admin_requests=10 if q else 100,
        sections=sections,
        postgres=not (a.no_postgres or q),
        load_cpu=a.load_cpu,
        proxy_cpu=a.proxy_cpu,
        max_rps=200_000,
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
                res["scale"] = b.scale(scale_dbs)
            if "admin" in cfg.sections and scale_dbs:
                res["admin_list"] = {"sqlite": b.admin("sqlite", scale_dbs[cfg.admin_size])}
                if pg_url:
                    res["admin_list"]["postgresql"] = b.admin("postgresql", pg_url)
                else:
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
