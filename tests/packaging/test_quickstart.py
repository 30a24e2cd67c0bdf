"""The README's quick start, run as written against the installed wheel, in two terminals.

Terminal A runs each `.venv/bin/wiretape serve ...` block (Ctrl-C, i.e. SIGINT to its
process group, before the next one starts); terminal B is one bash session that runs every
other block line by line, as a user types them, and each command's output is checked
against what the README shows under it. The only changes to the text: the ports (8080,
8081, 9000) and /tmp/upstream become free ones of this test, so parallel runs cannot
collide; `.venv` is the wheel's virtualenv.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.artifacts import Artifacts
from tests.helpers import port_open, wait_for
from tests.readme import Command, Expected, commands, section, setup_commands, sh_blocks

DONE = "__wiretape_test_done__"
SERVE = ".venv/bin/wiretape serve"


def free_ports(n: int) -> list[int]:
    """Ports for the README's fixed ones. (The quick start names fixed ports, so these are
    chosen and then bound by the programs it starts; none of them is a wiretape port 0.)"""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Terminal:
    """One bash session; `run` types a command and returns what it printed and its status."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self._err = log.open("wb")
        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile", "-s"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float = 60) -> tuple[str, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\nprintf '\\n{DONE} %s\\n' $?\n")
        self.proc.stdin.flush()
        out = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line.startswith(DONE):
                return "".join(out), int(line.split()[1])
            out.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._err.close()


class Server:
    """Terminal A: one long-running command, stopped with Ctrl-C."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile", "-c", command], cwd=cwd,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)  # what the terminal sends its foreground job
        code = self.proc.wait(30)
        self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def test_the_quick_start_works_as_written(artifacts: Artifacts, tmp_path: Path):
    proxy, admin, upstream = free_ports(3)
    upstream_dir = tmp_path / "upstream"
    fixed = {r"\b8080\b": str(proxy), r"\b8081\b": str(admin), r"\b9000\b": str(upstream),
             "/tmp/upstream": str(upstream_dir)}

    def ours(text: str) -> str:
        for pattern, value in fixed.items():
            text = re.sub(pattern, value, text)
        return text

    (tmp_path / ".venv").symlink_to(artifacts.venv)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WIRETAPE_") and k.lower() not in ("http_proxy", "https_proxy",
                                                                   "all_proxy", "no_proxy")}
    # the README's default addresses, on this test's ports; the CA goes to a fresh ~/.wiretape
    env.update(HOME=str(tmp_path), WIRETAPE_LISTEN=f"127.0.0.1:{proxy}",
               WIRETAPE_ADMIN=f"127.0.0.1:{admin}")

    # terminal A: the first set-up command's last step starts wiretape (its install steps
    # are what the wheel venv is; .ci/run runs the whole command as written)
    first_setup = setup_commands()[0]
    assert first_setup.endswith(f"&& {SERVE}"), first_setup
    blocks = [commands(b) for b in sh_blocks(section("Quick start: record, then replay"))]
    assert blocks, "the quick start has shell blocks"
    server = start_server(SERVE, tmp_path, env, admin)
    terminal = Terminal(tmp_path, env, tmp_path / "terminal-b.err")
    ran: list[str] = []
    try:
        for block in blocks:
            if block[0].text.startswith(SERVE):
                assert len(block) == 1, "a serve block holds just the serve command"
                assert server.ctrl_c() == 0, server.log()
                assert "stopped;" in server.log()
                server = start_server(block[0].text, tmp_path, env, admin)
                ran.append(block[0].text)
                continue
            for command in block:
                check(terminal, command, ours, upstream)
                ran.append(command.text)
    finally:
        terminal.close()
        if server.proc.poll() is None:
            server.ctrl_c()
    # the steps the issue names were all in what ran
    joined = "\n".join(ran)
    for step in ("curl -x", "kill %1", f"{SERVE} --mode replay", "id=8", "/api/misses"):
        assert step in joined, step


def start_server(command: str, cwd: Path, env: dict[str, str], admin: int) -> Server:
    server = Server(command, cwd, env, cwd / f"serve-{len(list(cwd.glob('serve-*')))}.log")

    def up() -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(f"{command!r} exited:\n{server.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{admin}/api/health", trust_env=False,
                             timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, command)
    return server


def check(terminal: Terminal, command: Command, ours: Callable[[str], str],
          upstream: int) -> None:
    text = ours(command.text)
    output, status = terminal.run(text)
    assert status == 0, f"{command.text!r} exited {status}:\n{output}"
    if text.rstrip().endswith("&") and str(upstream) in text:
        wait_for(lambda: port_open(upstream), 20, f"{command.text!r} to listen")
    if command.text.startswith("kill %1"):
        wait_for(lambda: not port_open(upstream), 20, "the upstream to stop")
    expected = Expected(command.expected.lines, ours(command.expected.json_text))
    assert expected.problems(output) == [], f"{command.text!r} printed:\n{output}"


@pytest.mark.parametrize("n, starts", [(1, "python3 -m venv .venv && .venv/bin/pip install . "),
                                      (2, "python3 -m venv .venv && .venv/bin/pip install -e ")])
def test_ci_runs_the_readme_setup_commands(n, starts):
    """`.ci/run` takes both set-up commands from the README (tests/readme.py), so they
    cannot drift apart; the first installs the package as users do, not editable."""
    assert setup_commands()[n - 1].startswith(starts)
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert f"tests/readme.py setup {n}" in ci
