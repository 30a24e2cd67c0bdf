"""What the pytest plugin adds to a suite's run: the same small suite timed without wiretape
and with `--wiretape=replay` (and record), runs interleaved, medians over repetitions.

    .venv/bin/python -m bench.pytest_plugin            # about 4 minutes
    .venv/bin/python -m bench.pytest_plugin --reps 3 --sizes 10,40 --out /tmp/pp

The suite: N tests, half of them making one HTTP request to a local origin (a stdlib
server on loopback), half none; two sizes, so that the session's fixed cost (starting and
stopping the proxy) and each test's cost can be told apart. "Without" is plain `pytest`
(the plugin installed but off, so the process tree is the same); "with" is
`pytest --wiretape=replay` against tapes recorded once beforehand (the origin stays up:
replay never reaches it). The overhead is
the difference of the medians of wall time; CPU time of the process tree (pytest, serve)
is reported too, since on a shared machine it varies less. It also times serve's start-up
on its own (the largest part) and breaks it down with `python -X importtime`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.5


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.dumps({"path": self.path, "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def write_suite(folder: Path, tests: int) -> None:
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    body = ["import os", "", "import requests", "", 'BASE = os.environ["BENCH_ORIGIN"]', ""]
    for i in range(tests):
        if i % 2 == 0:
            body += [f"def test_http_{i}():",
                     f'    assert requests.get(f"{{BASE}}/items/{i}", timeout=10).json()["ok"]',
                     ""]
        else:
            body += [f"def test_plain_{i}():", f"    assert {i} + 1 == {i + 1}", ""]
    (folder / "tests" / "test_suite.py").write_text("\n".join(body))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the whole process tree, output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return wall, cpu, done.stdout


def serve_startup(reps: int) -> dict[str, float]:
    """serve on its own, as the plugin starts it: until its admin API answers, and stop."""
    from wiretape.cli.pytest_plugin.server import ServeProcess

    ready, stop = [], []
    for _ in range(reps):
        s = ServeProcess()
        t0 = time.perf_counter()
        s.start()
        s.wait_ready()
        t1 = time.perf_counter()
        s.stop()
        stop.append(time.perf_counter() - t1)
        ready.append(t1 - t0)
        s.cleanup()
    return {"ready_s": statistics.median(ready), "stop_s": statistics.median(stop)}


def import_profile(workdir: Path) -> list[tuple[str, float]]:
    """serve's slowest top-level imports (cumulative seconds, `-X importtime`)."""
    db = workdir / "imp.db"
    cmd = [sys.executable, "-X", "importtime", "-c",
           "import sys, threading, os, signal\n"
           "threading.Timer(8, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
           f"sys.argv = ['wiretape', 'serve', '--db', 'sqlite:///{db}', '--listen', "
           f"'127.0.0.1:0', '--admin', '127.0.0.1:0', '--confdir', '{workdir / 'conf'}']\n"
           "from wiretape.cli.main import main\nmain()\n"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # top level and the level below
            rows.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:12]


def measure(sizes: list[int], reps: int, origin_url: str) -> dict[str, Any]:
    """Per suite size: wall and CPU seconds of each variant, runs interleaved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    env["BENCH_ORIGIN"] = origin_url
    pytest = [sys.executable, "-m", "pytest", "-q"]
    variants = {
        "off": [*pytest],
        "replay": [*pytest, "--wiretape=replay"],
        "record": [*pytest, "--wiretape=record"],
        "-p no:wiretape": [*pytest, "-p", "no:wiretape"],
    }
    out: dict[str, Any] = {}
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"wiretape-bench-pytest-{size}-"))
        write_suite(work, size)
        timed([*pytest, "--wiretape=record"], work, env)  # the tapes replay reads
        walls: dict[str, list[float]] = {k: [] for k in variants}
        cpus: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(reps):
            for name, cmd in variants.items():
                wall, cpu, _ = timed(cmd, work, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
            print(f"{size} tests, rep {rep + 1}/{reps}: " + ", ".join(
                f"{n} {walls[n][-1]:.2f} s" for n in variants), file=sys.stderr)
        out[str(size)] = {
            "tapes": len(list((work / "tests" / "tapes").rglob("*.har"))),
            "wall_s": walls, "cpu_s": cpus,
            "median_wall_s": {n: statistics.median(v) for n, v in walls.items()},
            "median_cpu_s": {n: statistics.median(v) for n, v in cpus.items()},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="runs of each variant (median)")
    ap.add_argument("--sizes", default="20,60",
                    help="suite sizes (tests); the smallest is the target's 'small suite'")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pytest_plugin"),
                    help="write OUT.json and OUT.md")
    args = ap.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))

    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        runs = measure(sizes, args.reps, f"http://127.0.0.1:{origin.server_address[1]}")
    finally:
        origin.shutdown()

    def overhead(size: int, variant: str, key: str = "median_wall_s") -> float:
        m = runs[str(size)][key]
        return float(m[variant] - m["off"])

    small, large = sizes[0], sizes[-1]
    per_test = {v: (overhead(large, v) - overhead(small, v)) / (large - small)
                if large > small else 0.0 for v in ("replay", "record")}
    result = {
        "sizes": sizes, "reps": args.reps, "runs": runs,
        "overhead_s": {str(n): {v: overhead(n, v) for v in ("replay", "record")}
                       for n in sizes},
        "overhead_cpu_s": {str(n): {v: overhead(n, v, "median_cpu_s")
                                    for v in ("replay", "record")} for n in sizes},
        "per_test_s": per_test,
        "session_s": {v: overhead(small, v) - per_test[v] * small for v in per_test},
        "inactive_cost_s": -overhead(small, "-p no:wiretape"),
        "serve": serve_startup(max(3, args.reps // 2)),
        "serve_imports_s": import_profile(Path(tempfile.mkdtemp(prefix="wiretape-imp-"))),
        "target_s": TARGET_S, "cpus": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))


def render(r: dict[str, Any]) -> str:
    small = str(r["sizes"][0])
    total = r["overhead_s"][small]["replay"]
    verdict = "met" if total < r["target_s"] else "NOT met"
    session_verdict = "met" if r["session_s"]["replay"] < r["target_s"] else "NOT met"
    rows = []
    for n in r["sizes"]:
        m, c = r["runs"][str(n)]["median_wall_s"], r["runs"][str(n)]["median_cpu_s"]
        rows += [f"| {n} | {v} | {m[v]:.2f} s | {c[v]:.2f} s |" for v in m]
    imports = "\n".join(f"| `{name}` | {s:.2f} s |" for name, s in r["serve_imports_s"])
    load = ", ".join(f"{x:.1f}" for x in r["load_average"])
    return textwrap.dedent(f"""\
        # pytest plugin overhead

        Suites of {", ".join(map(str, r["sizes"]))} tests (half of them making one HTTP
        request, each with its tape), {r["reps"]} interleaved runs of each variant, medians;
        {r["cpus"]} cores, load average at the end {load}.

        | tests | variant | wall | CPU (process tree) |
        |---|---|---|---|
        """) + "\n".join(rows) + textwrap.dedent(f"""

        **The {small}-test suite with `--wiretape=replay` takes {total:.2f} s longer than
        without wiretape ({r["overhead_cpu_s"][small]["replay"]:.2f} s more CPU); target
        < {r["target_s"]} s: {verdict}.** Of that, the session's proxy (start and stop,
        fitted over the suite sizes) is **{r["session_s"]["replay"]:.2f} s (target
        < {r["target_s"]} s: {session_verdict})** and each test adds
        {r["per_test_s"]["replay"] * 1000:.0f} ms (switching the tape, loading it, checking
        for misses). `--wiretape=record`: {r["overhead_s"][small]["record"]:.2f} s, of which
        {r["per_test_s"]["record"] * 1000:.0f} ms per test (waiting for the writer, exporting).
        Installed but off: {r["inactive_cost_s"]:+.2f} s against `-p no:wiretape` (noise).

        `wiretape serve` alone, as the plugin starts it (a fresh store and CA, no cache):
        ready in {r["serve"]["ready_s"]:.2f} s, stopped in {r["serve"]["stop_s"]:.2f} s
        (medians). Its slowest imports (`python -X importtime`, cumulative, inflated by the
        tracing):

        | module | seconds |
        |---|---|
        """) + imports + "\n"


if __name__ == "__main__":
    main()
