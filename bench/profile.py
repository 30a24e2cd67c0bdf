"""Profile one benchmark target under load with py-spy, and say which functions dominate.

    .venv/bin/python -m bench.profile wiretape-replay           # 10 s at 16 connections
    .venv/bin/python -m bench.profile wiretape-record --connections 64 --duration 15
    .venv/bin/python -m bench.profile wiretape-startup --recordings 100000
    .venv/bin/python -m bench.profile wiretape-scale --recordings 100000  # replay at scale

The target runs exactly as in `bench.run` (same pinning, same mix, same tapes); py-spy
(`pip install py-spy`) samples it from the load generator's core while wrk drives it.
Writes the collapsed stacks (`.txt`, loadable in speedscope.app) and a summary (`.md`) to
bench/results/profiles/: self time per function, time per package, and the inclusive time
of wiretape's own functions.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .config import BENCH, LIVE, SCALE_TAPE, SEED_PORT, TARGETS, Config
from .harness import HOST, BenchError, free_port, require_wrk, run_wrk, wait_answering
from .run import parse_args
from .scale import seed
from .targets import Bench

REPO = Path(__file__).resolve().parent.parent
WIRETAPE_DIRS = ("/proxy/", "/storage/", "/cli/", "/api/")
WIRETAPE_PACKAGES = {"proxy", "storage", "cli", "api", "migrations"}
PROFILE_TARGETS = [t for t in TARGETS if t != "origin"] + [
    "wiretape-startup", "wiretape-scale"]


def require_pyspy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    if exe.exists():
        return str(exe)
    found = shutil.which("py-spy")
    if not found:
        raise BenchError("py-spy is not installed (.venv/bin/pip install py-spy)")
    return found


def frame_file(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    return frame[frame.rfind("(") + 1 : frame.rfind(":")] if "(" in frame else ""


def frame_func(frame: str) -> str:
    name = frame.split(" (", 1)[0]
    file = frame_file(frame)
    short = file.split("site-packages/")[-1] if "site-packages/" in file else file
    short = short.replace(str(REPO) + "/", "")
    return f"{name} ({short})"


def package(frame: str) -> str:
    """The top-level package of a frame. py-spy names files relative to their sys.path
    entry ("mitmproxy/addonmanager.py", "storage/matching.py", "contextlib.py")."""
    f = frame_file(frame)
    if "site-packages/" in f:
        f = f.split("site-packages/", 1)[1]
    elif f.startswith(str(REPO) + "/"):
        f = f[len(str(REPO)) + 1 :]
    top = f.split("/", 1)[0].removesuffix(".py") if f else "?"
    return f"wiretape.{top}" if top in WIRETAPE_PACKAGES else top


# (part, test on the named frames of one stack and its leaf); the first match takes it
BUCKETS: list[tuple[str, Callable[[list[str], str], bool]]] = [
    ("imports (start-up)", lambda st, leaf: _has(st, "importlib._bootstrap")),
    ("wiretape: loading the replay index", lambda st, leaf: _has(
        st, "replay_entries", "ReplayIndex.")),
    ("wiretape: writer thread (store captured exchanges)", lambda st, leaf: _has(
        st, "Writer._run")),
    ("wiretape: replay miss (closest recordings, 502 body)", lambda st, leaf: _has(
        st, "Wiretape._miss", "Wiretape._closest")),
    ("wiretape: shared-state poller", lambda st, leaf: _has(
        st, "Wiretape._poll", "Wiretape.refresh", "Wiretape._read")),
    ("logging (one line per exchange)", lambda st, leaf: "(logging/" in leaf),
    ("metrics", lambda st, leaf: _has(st, "prometheus_client", "(storage/metrics.py")),
    ("wiretape: request hook (match key, redaction, replayed response)",
     lambda st, leaf: _has(st, "Wiretape.request")),
    ("wiretape: response/error hooks (capture)", lambda st, leaf: _has(
        st, "Wiretape.response", "Wiretape.error")),
    ("admin API (uvicorn, FastAPI)", lambda st, leaf: _has(
        st, "(uvicorn/", "(fastapi/", "(starlette/")),
    ("mitmproxy: addon/hook dispatch over the default addons", lambda st, leaf: (
        "(mitmproxy/addonmanager.py" in leaf or "(mitmproxy/hooks.py" in leaf
        or ("(contextlib.py" in leaf and _has(st, "AddonManager.")))),
    ("mitmproxy: HTTP/1 parsing, proxy layers, flows", lambda st, leaf: (
        "(mitmproxy/" in leaf or "(h11/" in leaf or "(uuid.py" in leaf)),
    ("asyncio event loop and sockets", lambda st, leaf: (
        "(asyncio/" in leaf or "(selectors.py" in leaf)),
    ("SQLAlchemy / database driver", lambda st, leaf: _has(
        [leaf], "(sqlalchemy/", "sqlite3", "(psycopg")),
]


def _has(stack: list[str], *needles: str) -> bool:
    return any(n in f for f in stack for n in needles)


def summarize(collapsed: Path, title: str, top: int = 30) -> str:
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([f for f in stack.split(";") if f], int(count)))
    total = sum(n for _, n in stacks) or 1
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkg_self: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for all_frames, n in stacks:
        frames = [f for f in all_frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        named = [frame_func(f) for f in frames]
        buckets[next((b for b, test in BUCKETS if test(named, named[-1])), "other")] += n
        self_t[frame_func(frames[-1])] += n
        pkg_self[package(frames[-1])] += n
        for fn in {frame_func(f) for f in frames}:
            incl[fn] += n
    own = Counter({k: v for k, v in incl.items()
                   if any(f"({d.strip('/')}/" in k for d in WIRETAPE_DIRS)})

    def table(counter: Counter[str], head: str, k: int) -> list[str]:
        rows = [f"| {head} | samples | share |", "|---|---:|---:|"]
        rows += [f"| `{name}` | {n} | {n / total:.1%} |" for name, n in counter.most_common(k)]
        return rows

    out = [f"# Profile: {title}", "", f"{total} samples (py-spy, non-idle threads).", "",
           "## Where the time goes (self time, each sample to the first part that matches)",
           "", *table(buckets, "part", len(buckets)), "",
           "## Self time by package", "", *table(pkg_self, "package", 15), "",
           "## Self time by function", "", *table(self_t, "function", top), "",
           "## Inclusive time of wiretape's own functions", "", *table(own, "function", top),
           "", "## Inclusive time, all functions", "", *table(incl, "function", top), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("target", choices=PROFILE_TARGETS)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--recordings", type=int, default=100_000, help="wiretape-startup tape size")
    p.add_argument("--out", default="bench/results/profiles")
    a = p.parse_args(argv)
    try:
        require_wrk()
        pyspy = require_pyspy()
        return profile(a, pyspy)
    except BenchError as e:
        print(f"bench.profile: {e}", file=sys.stderr)
        return 2


def profile(a: argparse.Namespace, pyspy: str) -> int:
    cfg = parse_args(["--targets", a.target if a.target in TARGETS
                                else "wiretape-replay", "--duration", str(a.duration),
                                "--quiet-budget", "0"])
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wiretape-profile-"))
    b = Bench(cfg, work)
    if b.wiretape_reason and a.target.startswith("wiretape"):
        raise BenchError(b.wiretape_reason)
    stem = (f"{a.target}-{a.recordings}" if a.target in ("wiretape-startup", "wiretape-scale")
            else f"{a.target}-c{a.connections}")
    collapsed = out_dir / f"{stem}.txt"
    try:
        if a.target in ("wiretape-startup", "wiretape-scale"):
            title = profile_scale(b, a, pyspy, work, collapsed)
        else:
            title = profile_load(b, a, pyspy, collapsed)
    finally:
        b.stop_origin()
        shutil.rmtree(work, ignore_errors=True)
    md = out_dir / f"{stem}.md"
    md.write_text(summarize(collapsed, title))
    print(md.read_text())
    print(f"wrote {collapsed} and {md}", file=sys.stderr)
    return 0


def spy_under_load(a: argparse.Namespace, pyspy: str, cfg: Config, pid: int,
                   url: str, script: Path, args: list[str], collapsed: Path) -> float:
    """Warm up, then py-spy the process while wrk drives it; returns the req/s seen."""
    run_wrk(url, script, args, a.connections, 2, cfg.load_cpu, cfg.cap(2))
    spy = subprocess.Popen(
        ["taskset", "-c", str(cfg.load_cpu), pyspy, "record", "--pid", str(pid),
         "--rate", str(a.rate), "--duration", str(int(a.duration)), "--format", "raw",
         "--nonblocking", "--output", str(collapsed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    r = run_wrk(url, script, args, a.connections, a.duration, cfg.load_cpu,
                cfg.cap(a.duration))
    try:
        _, err = spy.communicate(timeout=a.duration + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        raise BenchError("py-spy did not finish") from None
    if spy.returncode != 0 or not collapsed.exists():
        raise BenchError(f"py-spy failed: {err.strip()[-300:]}")
    return r.rps


def profile_load(b: Bench, a: argparse.Namespace, pyspy: str,
                 collapsed: Path) -> str:
    cfg = b.cfg
    b.prime()
    if a.target in LIVE:
        b.start_origin(cfg.load_cpu)
    else:
        b.stop_origin()
    proc, port = b.start_target(a.target, 0)
    try:
        wait_answering(proc, port, f"http://{HOST}:{b.origin_port}/health", 200, 60)
        rps = spy_under_load(a, pyspy, cfg, proc.pid, f"http://{HOST}:{port}/",
                             BENCH / "mix.lua", [str(b.requests_lua), "absolute"],
                             collapsed)
    finally:
        proc.stop(60)
    return (f"{a.target}, realistic mix, {a.connections} connections, {a.duration:g} s: "
            f"{rps:.0f} req/s under the profiler (py-spy --nonblocking at {a.rate} Hz)")


def profile_scale(b: Bench, a: argparse.Namespace, pyspy: str, work: Path,
                  collapsed: Path) -> str:
    """wiretape-startup: from process start until it answers (and shutdown);
    wiretape-scale: replay of random recorded keys of an N-recording tape under load."""
    cfg = b.cfg
    n = a.recordings
    url = f"sqlite:///{work / 'scale.db'}"
    seed(b, [(url, n)])
    port = free_port()
    proc = b.wiretape("scale", port, "replay", url, SCALE_TAPE)
    probe = f"http://{HOST}:{SEED_PORT}/api/items/1?fields=all"
    if a.target == "wiretape-scale":
        try:
            wait_answering(proc, port, probe, 200, 120)
            rps = spy_under_load(a, pyspy, cfg, proc.pid, f"http://{HOST}:{port}/",
                                 BENCH / "scale.lua",
                                 [str(SEED_PORT), str(n)], collapsed)
        finally:
            proc.stop(60)
        return (f"wiretape replay of random keys of a {n}-recording tape (SQLite), "
                f"{a.connections} connections, {a.duration:g} s: {rps:.0f} req/s under the "
                f"profiler (py-spy --nonblocking at {a.rate} Hz)")
    # py-spy attaches as soon as the process exists; the first few ms of imports are lost
    spy = subprocess.Popen(
        ["taskset", "-c", str(cfg.load_cpu), pyspy, "record", "--pid", str(proc.pid),
         "--rate", str(a.rate), "--nonblocking", "--format", "raw", "--output",
         str(collapsed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        startup = wait_answering(proc, port, probe, 200, 120)
    finally:
        proc.stop(60)
        try:
            spy.send_signal(signal.SIGINT)
            spy.communicate(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            spy.kill()
    if not collapsed.exists():
        raise BenchError("py-spy wrote no profile")
    return (f"wiretape replay startup with {n} recordings (SQLite): {startup:.2f} s until it "
            "answered a recorded request; samples cover start to shutdown")


if __name__ == "__main__":
    sys.exit(main())
