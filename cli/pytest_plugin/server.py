"""The session's `wiretape serve`: a subprocess on free ports, and the client environment.

A subprocess rather than the proxy on a thread of the test process: the suite's process
keeps its imports, signal handlers and event loops to itself, any client (a Go binary, a
service the suite starts) reaches the same proxy, and SIGTERM gives serve's own clean
shutdown. It costs the start-up of a Python process, measured in bench/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .admin import Admin, Counters, ServeError, parse_counters, wait_until

# the start-up line `serve` logs with the addresses it really bound (README: port 0)
LISTENING = re.compile(r"proxy on (?P<proxy>\S+):(?P<pport>\d+), admin API on "
                       r"http://(?P<admin>\S+):(?P<aport>\d+),")
CA_CERT_FILE = "mitmproxy-ca-cert.pem"  # what serve writes into --confdir
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
BUNDLE_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
SESSION_VARS = (*PROXY_VARS, *NO_PROXY_VARS, *BUNDLE_VARS, "NODE_EXTRA_CA_CERTS")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def system_ca_bundle(env: Mapping[str, str]) -> Path | None:
    """The CAs clients trusted before this session: the bundle the environment already
    named, else certifi's (what requests and httpx use), else the system's."""
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        given = env.get(var)
        if given and Path(given).is_file():
            return Path(given)
    try:
        import certifi

        return Path(certifi.where())
    except ImportError:
        pass
    import ssl

    cafile = ssl.get_default_verify_paths().cafile
    return Path(cafile) if cafile and Path(cafile).is_file() else None


def cache_dir() -> Path | None:
    """Where sessions keep a migrated empty store and a CA, per wiretape version and set
    of migrations: `$XDG_CACHE_HOME/wiretape/` (`~/.cache/wiretape/`)."""
    try:
        import importlib.util
        from importlib.metadata import version

        spec = importlib.util.find_spec("wiretape.migrations")
        folders = list(spec.submodule_search_locations or []) if spec else []
        if not folders:
            return None
        migrations = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                            for p in (Path(folders[0]) / "versions").glob("*.py"))
        key = hashlib.sha1(repr((version("wiretape"), migrations)).encode()).hexdigest()[:12]
    except (ImportError, OSError, ValueError):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wiretape" / f"pytest-{key}"


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, SIGTERM for serve when pytest dies without cleaning up (pytest-timeout's
    thread method ends with os._exit, a CI runner kills the job): no proxy left behind."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


def _listening_socket(address: str) -> socket.socket:
    """A listening TCP socket on HOST:PORT for serve to inherit (IPPROTO_TCP: asyncio sets
    TCP_NODELAY only on sockets that say they are TCP)."""
    host, _, port = address.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve_command() -> list[str]:
    # the interpreter running pytest, so serve is the wiretape installed next to the plugin
    return [sys.executable, "-m", "wiretape.cli"]


class ServeProcess:
    """One `wiretape serve` for the session: a temporary SQLite store and CA folder, free
    ports; `environ()` is what clients need to go through it and trust it."""

    def __init__(self, extra_args: Iterable[str] = (), workdir: Path | None = None,
                 cache: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="wiretape-pytest-"))
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.confdir = self.workdir / "conf"
        self.store = self.workdir / "store.db"
        self.db_url = f"sqlite:///{self.store}"
        self.extra_args = list(extra_args)
        self.cache = cache
        self.proc: subprocess.Popen[bytes] | None = None
        self.proxy_port = 0
        self.admin_port = 0
        self.admin: Admin | None = None
        self._log_file: Any = None
        self._log_offset = 0
        self.log_path = self.workdir / "serve.log"
        # the listening sockets, bound here and handed to serve (`fd:N`) where the platform
        # can: the ports are known at once, so clients are set up while serve starts
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        # serve's environment is the one from before the session's (its own WIRETAPE_*
        # variables would override the flags given here)
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, listen: str = "127.0.0.1:0", admin: str = "127.0.0.1:0") -> None:
        """Start serve; it is ready once `wait_ready` returns (or the first `api()`)."""
        if not self.store.exists():
            self._from_cache()
        fds: tuple[int, ...] = ()
        if os.name == "posix":
            if self._sockets is None:
                self._sockets = (_listening_socket(listen), _listening_socket(admin))
            proxy_sock, admin_sock = self._sockets
            fds = (proxy_sock.fileno(), admin_sock.fileno())
            listen, admin = f"fd:{fds[0]}", f"fd:{fds[1]}"
            self.proxy_port = proxy_sock.getsockname()[1]
            self.admin_port = admin_sock.getsockname()[1]
        else:
            self.proxy_port = self.admin_port = 0  # told by serve's log line
        args = [*serve_command(), "serve", "--db", self.db_url, "--listen", listen,
                "--admin", admin, "--confdir", str(self.confdir), *self.extra_args]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, env=self._env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent(),
            pass_fds=fds,
        )

    @property
    def ports_known(self) -> bool:
        """The proxy's and admin API's ports are known before serve is ready (fd:N)."""
        return bool(self.proxy_port and self.admin_port)

    # A new store needs the migrations (alembic: a fifth of serve's start-up) and a new
    # confdir a new CA (an RSA key): both are kept in the user's cache and copied into the
    # session's folder, so only the first session pays for them.
    def _from_cache(self) -> None:
        if self.cache is None:
            return
        try:
            template = self.cache / "store.db"
            if template.is_file():
                shutil.copyfile(template, self.store)
                os.chmod(self.store, 0o600)
            ca = self.cache / "ca"
            if (ca / CA_CERT_FILE).is_file():
                self.confdir.mkdir(mode=0o700, exist_ok=True)
                for f in ca.iterdir():
                    shutil.copyfile(f, self.confdir / f.name)
                    os.chmod(self.confdir / f.name, 0o600)
        except OSError:
            pass  # serve makes them itself

    def _to_cache(self) -> None:
        """After serve started on a store and confdir of its own making, before any test
        has used them: keep copies for the next sessions."""
        if self.cache is None:
            return
        try:
            self.cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            template = self.cache / "store.db"
            if not template.exists():
                tmp = self.cache / f".store.{os.getpid()}.db"
                # the backup API copies a consistent snapshot, WAL included
                with sqlite3.connect(self.store) as src, sqlite3.connect(tmp) as dst:
                    src.backup(dst)
                os.chmod(tmp, 0o600)
                os.replace(tmp, template)
            ca = self.cache / "ca"
            if not (ca / CA_CERT_FILE).exists():
                tmp_ca = self.cache / f".ca.{os.getpid()}"
                shutil.copytree(self.confdir, tmp_ca)
                os.chmod(tmp_ca, 0o700)
                try:
                    os.replace(tmp_ca, ca)
                except OSError:  # another session cached one meanwhile
                    shutil.rmtree(tmp_ca, ignore_errors=True)
        except (OSError, sqlite3.Error):
            pass  # no cache: every session makes its own

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[self._log_offset:]
        except OSError:
            return ""

    def _listening(self) -> tuple[int, int] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = "\n".join(self.log().strip().splitlines()[-15:])
            raise ServeError(f"wiretape serve exited with status {self.proc.returncode}:\n"
                             f"{tail}")
        found = LISTENING.search(self.log())
        return (int(found["pport"]), int(found["aport"])) if found else None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until serve has logged the ports it bound and its admin API answers."""
        if self.admin is not None:
            return
        try:
            self.proxy_port, self.admin_port = wait_until(
                self._listening, timeout, "wiretape serve to start")
        except TimeoutError as e:
            self.stop()
            raise ServeError(f"{e}; its log:\n{self.log()[-3000:]}") from e
        admin = Admin("127.0.0.1", self.admin_port)

        def answers() -> bool | None:
            # the log line comes just before the admin API's server starts listening
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._listening()  # raises with the log
            try:
                return admin.request("GET", "/api/health", timeout=2)[0] == 200 or None
            except ServeError:
                return None

        try:
            wait_until(answers, timeout, "the admin API to answer")
        except TimeoutError as e:
            self.stop()
            raise ServeError(f"{e}; its log:\n{self.log()[-3000:]}") from e
        self.admin = admin
        self._to_cache()

    def stop(self, timeout: float = STOP_TIMEOUT, *, kill: bool = False,
             keep_ports: bool = False) -> int | None:
        """SIGTERM: serve writes what it captured and exits; killed if it hangs. With
        `kill`, at once: for the end of a session whose tapes are all exported already,
        when nothing serve still holds is worth its clean shutdown. With `keep_ports`, the
        listening sockets stay open for the next serve (clients wait in their backlog)."""
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                if kill:
                    self.proc.kill()
                else:
                    self.proc.terminate()  # SIGTERM
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._sockets is not None and not keep_ports:
            for sock in self._sockets:
                sock.close()
            self._sockets = None
        return code

    def signal_stop(self) -> None:
        """Ask serve to stop without waiting (the wait comes later in stop())."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def restart(self, extra_args: Iterable[str]) -> None:
        """The same store and CA, other flags, the same ports (clients keep their env)."""
        self.stop(keep_ports=True)
        self.extra_args = list(extra_args)
        self.start(f"127.0.0.1:{self.proxy_port}", f"127.0.0.1:{self.admin_port}")
        self.wait_ready()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- for clients ---------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def ca_cert(self) -> Path:
        return self.confdir / CA_CERT_FILE

    def write_bundle(self, base: Path | None, name: str = "ca-bundle.pem") -> Path:
        """The CAs clients trusted before, plus wiretape's: hosts tunnelled untouched
        (--ignore-host) still verify."""
        bundle = self.workdir / name
        parts = []
        if base is not None:
            parts.append(base.read_bytes().rstrip(b"\n") + b"\n")
        parts.append(self.ca_cert.read_bytes())
        bundle.write_bytes(b"".join(parts))
        return bundle

    def environ(self, env: Mapping[str, str]) -> dict[str, str]:
        """The variables the session's clients need, given the environment before it."""
        bundle = self.write_bundle(system_ca_bundle(env))
        # Node adds NODE_EXTRA_CA_CERTS to its own store: keep the extra CAs it had
        extra = env.get("NODE_EXTRA_CA_CERTS")
        node = (self.write_bundle(Path(extra), "node-extra-ca.pem")
                if extra and Path(extra).is_file() else self.ca_cert)
        # NO_PROXY names the admin API only: the suite's own dependencies on localhost go
        # through the proxy like any other host. Not every client reads a port in NO_PROXY
        # (httpx and requests do for host names); the plugin's own calls never use the env.
        admin = f"127.0.0.1:{self.admin_port},localhost:{self.admin_port}"
        out = {var: self.proxy_url for var in PROXY_VARS}
        out.update({var: admin for var in NO_PROXY_VARS})
        out.update({var: str(bundle) for var in BUNDLE_VARS})
        out["NODE_EXTRA_CA_CERTS"] = str(node)
        return out

    # -- admin API helpers ---------------------------------------------------------------
    def api(self) -> Admin:
        if self.admin is None and self.proc is not None and self._log_file is not None:
            self.wait_ready()  # started, not yet waited for
        if self.admin is None:
            raise ServeError("wiretape serve is not running")
        return self.admin

    def counters(self) -> Counters:
        status, data = self.api().request("GET", "/metrics")
        if status != 200:
            raise ServeError(f"admin API GET /metrics answered {status}")
        return parse_counters(data.decode("utf-8", "replace"))


class EnvPatch:
    """Set variables for the session and put back exactly what was there before."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()
