"""The targets: each server under test started, the replay tapes primed, and the
throughput rounds measured point by point."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import workload
from .config import BENCH, BIN, LIVE, MITM_COMMON, MIX_TAPE, REPO, Config, log
from .harness import (
    HOST,
    BenchError,
    ForeignLoad,
    Proc,
    cpu_seconds,
    free_port,
    peak_rss_kb,
    reset_peak_rss,
    run_wrk,
    wait_answering,
    wait_listening,
)


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
