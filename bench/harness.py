"""Process plumbing for the benchmark: pinned processes, peak RSS, readiness probes, wrk."""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """Something the benchmark needs is missing or broke; one clear line for the user."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(
            "wrk is not installed: the benchmark's load generator comes from Debian "
            "(apt-get install -y wrk)"
        )
    return path


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM: the peak resident set since start or since the last reset_peak_rss()."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Linux resets VmHWM to the current RSS when "5" is written to clear_refs."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Proc:
    """A server process started under `taskset` on one core, logging to a file."""

    name: str
    cmd: list[str]
    cpu: int
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env.update(self.env or {})
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(
            ["taskset", "-c", str(self.cpu), *self.cmd],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def pin(self, cpu: int) -> None:
        os.sched_setaffinity(self.pid, {cpu})
        self.cpu = cpu

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM, wait up to `timeout` (wiretape flushes its writer), then SIGKILL."""
        info: dict[str, Any] = {"exit": None, "stop_s": None, "killed": False}
        if self.popen is None:
            return info
        t0 = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                info["killed"] = True
                self.popen.kill()
                self.popen.wait(10)
        info["exit"] = self.popen.returncode
        info["stop_s"] = round(time.monotonic() - t0, 3)
        if self._log is not None:
            self._log.close()
            self._log = None
        return info


def proxied_get(proxy_port: int, url: str, timeout: float = 2.0) -> tuple[int, dict[str, str]]:
    """One GET through an HTTP proxy (absolute-form target); returns status and headers."""
    conn = http.client.HTTPConnection(HOST, proxy_port, timeout=timeout)
    try:
        conn.request("GET", url, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def wait_answering(proc: Proc, proxy_port: int, url: str, expect: int = 200,
                   timeout: float = 60.0) -> float:
    """Seconds from process start until a request through it is answered `expect`."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    for _ in range(int(timeout / 0.01) + 1):  # bounded in count and time
        if time.monotonic() > deadline:
            break
        if not proc.alive():
            raise BenchError(f"{proc.name} exited before answering:\n{proc.log_tail()}")
        try:
            status, _ = proxied_get(proxy_port, url, timeout=2.0)
            if status == expect:
                return time.monotonic() - proc.started_at
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.01)
    raise BenchError(f"{proc.name} did not answer {url} with {expect} within {timeout:.0f}s "
                     f"({last}):\n{proc.log_tail()}")


def wait_listening(proc: Proc, port: int, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):
        if time.monotonic() > deadline:
            break
        if not proc.alive():
            raise BenchError(f"{proc.name} exited before listening:\n{proc.log_tail()}")
        if port_open(port):
            return time.monotonic() - proc.started_at
        time.sleep(0.01)
    raise BenchError(f"{proc.name} did not listen on {port} within {timeout:.0f}s")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors: connect, read, write, timeout
    non2xx: int  # answers outside 2xx/3xx (replay misses, the origin's 404s)
    capped: bool  # hit the request cap before the time bound (rps then undercounts)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def run_wrk(url: str, script: Path, script_args: list[str], connections: int, duration: float,
            cpu: int, max_requests: int) -> WrkResult:
    """One wrk run on `cpu`: one thread, `connections` keep-alive connections, bounded by
    `duration` seconds and `max_requests` requests (the Lua scripts stop at the cap)."""
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}",
           f"-d{max(1, round(duration))}s", "--timeout", "5s", "-s", str(script), url,
           "--", *script_args, str(max_requests)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"wrk did not finish within {duration + 30:.0f}s") from e
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    d = json.loads(line[len("WRKJSON "):])
    secs = d["duration_us"] / 1e6
    return WrkResult(
        requests=d["requests"],
        seconds=round(secs, 3),
        rps=round(d["requests"] / secs, 1) if secs else 0.0,
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        non2xx=d["status"],
        capped=d["requests"] >= max_requests,
    )


def core_jiffies(cpu: int) -> tuple[int, int] | None:
    """(busy, total) jiffies of one core since boot, from /proc/stat."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                return sum(v[:8]) - idle, sum(v[:8])
    except (OSError, ValueError):
        return None
    return None


class ForeignLoad:
    """CPU used on the benchmark's cores by processes that are not the benchmark's own.

    Other work on the machine (a test suite, a build) skews every figure; this measures
    it per point so a noisy run says so, and lets the harness wait for a quiet moment.
    """

    def __init__(self, cpus: tuple[int, ...]) -> None:
        self.cpus = cpus
        self.tick = os.sysconf("SC_CLK_TCK")

    def snapshot(self, own_pids: list[int]) -> tuple[float, float, float]:
        busy = 0
        for c in self.cpus:
            j = core_jiffies(c)
            busy += j[0] if j else 0
        own = sum(cpu_seconds(p) or 0.0 for p in own_pids)
        ru_self = resource.getrusage(resource.RUSAGE_SELF)
        ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        own += ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime
        return time.monotonic(), busy / self.tick, own

    @staticmethod
    def cores(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
        """Foreign CPU between two snapshots, in cores (0 to the number of cores)."""
        wall = b[0] - a[0]
        if wall <= 0:
            return 0.0
        return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / wall)

    def wait_quiet(self, own_pids: list[int], below: float = 0.15, window: float = 0.3,
                   timeout: float = 15.0) -> float:
        """Wait (bounded) until foreign load stays under `below` cores for one window;
        returns the last foreign load seen."""
        deadline = time.monotonic() + timeout
        seen = 0.0
        for _ in range(int(timeout / window) + 1):
            a = self.snapshot(own_pids)
            time.sleep(window)
            seen = self.cores(a, self.snapshot(own_pids))
            if seen < below or time.monotonic() > deadline:
                break
        return seen
