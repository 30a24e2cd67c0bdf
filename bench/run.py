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
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report, workload
from .aggregate import aggregate, check_targets
from .config import MITM_COMMON, REPO, TARGETS, Config, log
from .harness import BenchError, require_wrk, wrk_version
from .pg import Postgres, PostgresUnavailable
from .scale import admin, scale, seed, vacuum_analyze
from .targets import Bench


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
            res["seeding"] = seed(b, jobs)
            if pg_url:
                vacuum_analyze(pg_url)
        elif {"scale", "admin"} & cfg.sections:
            b.skipped["scale"] = b.skipped["admin_list"] = f"not available: {b.wiretape_reason}"
        try:
            if "scale" in cfg.sections and scale_dbs:
                try:
                    res["scale"] = scale(b, scale_dbs)
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
                        res["admin_list"][backend] = admin(b, backend, url)
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
