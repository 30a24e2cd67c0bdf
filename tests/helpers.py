"""Tiny test helpers: waiting on a condition, a real upstream HTTP server, a real `wiretape serve`
process. Servers bind port 0 and are asked which port they got: no port is picked before it
is bound (another xdist worker could take it in between)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

# the console script installed next to the interpreter running the tests, as a user runs it
WIRETAPE_BIN = str(Path(sys.executable).parent / "wiretape")
WIRETAPE = [WIRETAPE_BIN]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# -- a real upstream ---------------------------------------------------------------------

def send(handler: BaseHTTPRequestHandler, status: int, body: bytes,
         headers: list[tuple[str, str]]) -> None:
    """A whole HTTP/1.1 response with its Content-Length."""
    handler.send_response(status)
    for k, v in headers:
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Seen"], Reply]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Upstream:
    """A threaded HTTP server on a free loopback port. Routes map "METHOD /path" (path
    without query) to a handler returning a Reply; every request is kept in `.seen`."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.counter = 0
        up = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                up.seen.append(seen)
                up.counter += 1
                route = up.routes.get(f"{self.command} {self.path.split('?')[0]}")
                reply = route(seen) if route else Reply(404, {"error": "no route"})
                data = reply.body
                headers = dict(reply.headers)
                if isinstance(data, dict | list):
                    data = json.dumps(data).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(data, str):
                    data = data.encode()
                    headers.setdefault("Content-Type", "text/plain; charset=utf-8")
                send(self, reply.status, data, list(headers.items()))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, key: str, reply: Reply | Handler) -> None:
        self.routes[key] = reply if callable(reply) else (lambda _s, r=reply: r)

    def start(self) -> Upstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a real `wiretape serve` --------------------------------------------------------------

# the start-up line `serve` logs with the addresses it really bound (README: port 0)
LISTENING = re.compile(r"proxy on (?P<proxy>\S+):(?P<pport>\d+), admin API on "
                       r"http://(?P<admin>\S+):(?P<aport>\d+),")


class Serve:
    """`wiretape serve` as a user runs it, in a subprocess, on ports it picks itself
    (`--listen 127.0.0.1:0`): no other test can take them between choosing and binding.
    The ports are known once `ready()` has read them from the start-up log line."""

    def __init__(self, db_url: str, *args: str, workdir: Path | None = None,
                 env: dict[str, str] | None = None, confdir: Path | None = None,
                 listen: str = "127.0.0.1:0", admin: str = "127.0.0.1:0") -> None:
        self.proxy_port = 0
        self.admin_port = 0
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="wiretape-test-"))
        self.confdir = confdir or self.workdir / "conf"
        self.log_path = Path(tempfile.mkstemp(prefix="serve-", suffix=".log",
                                              dir=self.workdir)[1])
        self.args = [
            *WIRETAPE, "serve", "--db", db_url, "--listen", listen, "--admin", admin,
            "--confdir", str(self.confdir), *args,
        ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            full_env.pop(k, None)
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, cwd=self.workdir, env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.headers: dict[str, str] = {}

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self, timeout: float = 30.0) -> Serve:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wiretape serve exited early:\n{self.log()}")
            if not self.admin_port:
                found = LISTENING.search(self.log())
                if found is None:
                    return False
                self.proxy_port, self.admin_port = int(found["pport"]), int(found["aport"])
            if not port_open(self.proxy_port):
                return False
            try:
                return httpx.get(f"{self.admin}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, "wiretape serve to answer")
        return self

    def client(self, **kw: Any) -> httpx.Client:
        """An httpx client that sends everything through the proxy."""
        return httpx.Client(proxy=self.proxy, timeout=10, trust_env=False, **kw)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return httpx.request(method, f"{self.admin}{path}", headers=headers, timeout=10,
                             trust_env=False, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def stored_recordings(url: str, tape: str | None = None) -> list[Any]:
    """Every recording in the store at `url` (of one tape if given), in id order."""
    from sqlalchemy import select
    from wiretape.storage import db
    from wiretape.storage import models as m

    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine)() as s:
            stmt = select(m.Recording).order_by(m.Recording.id)
            if tape is not None:
                stmt = stmt.join(m.Tape).where(m.Tape.name == tape)
            return list(s.scalars(stmt))
    finally:
        engine.dispose()
