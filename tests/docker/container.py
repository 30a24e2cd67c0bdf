"""A container outside Docker for the entrypoint tests: the image's paths, environment, commands.

Container maps the container's paths into a temp folder; Wiretape starts `wiretape serve` with
the image's ENTRYPOINT, WORKDIR and environment (compose's `environment:` layered on top) and
runs its HEALTHCHECK as Docker does; run_example_app runs docker/example-app as compose does."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from wiretape.storage import db
from wiretape.storage import models as m

from tests.docker.files import (
    DOCKER,
    ROOT,
    copy_sources,
    healthcheck_command,
    load_compose,
    mounts,
    stages,
)
from tests.helpers import LISTENING, wait_for

IMAGE = stages()[-1]
TOKEN = "ci-token-" + uuid.uuid4().hex[:8]
COMPOSE = load_compose({"WIRETAPE_TOKEN": TOKEN})
VENV_BIN = Path(sys.executable).parent  # stands for the image's /opt/wiretape/bin
DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HAR = DOCKER / "tapes" / "app.har"
EXAMPLE_APP = DOCKER / "example-app" / "app.py"


def _host_path_of_copies() -> dict[str, str]:
    """Where the files the image COPYs from the build context are in this checkout."""
    return {dest: str(ROOT / src) for stage in stages() for src, dest in copy_sources(stage)
            if dest.startswith("/")}


@dataclass
class Container:
    """One container's view of the file system and its environment, outside Docker."""

    root: Path
    mapping: dict[str, str]  # container path -> host path

    @classmethod
    def make(cls, root: Path, binds: dict[str, Path] | None = None) -> Container:
        data = root / "data"
        # what the image's RUN does for the volume: /data and /data/ca, the CA folder 0755
        confdir = Path(str(data) + IMAGE.env()["WIRETAPE_CONFDIR"].removeprefix("/data"))
        confdir.mkdir(parents=True)
        os.chmod(data, 0o755)
        os.chmod(confdir, 0o755)
        mapping = {"/opt/wiretape/bin": str(VENV_BIN), "/data": str(data),
                   **_host_path_of_copies()}
        mapping.update({k: str(v) for k, v in (binds or {}).items()})
        return cls(root, mapping)

    def path(self, value: str) -> str:
        """Rewrite every container path in `value` to its host path."""
        for inside in sorted(self.mapping, key=len, reverse=True):
            value = re.sub(rf"(?<![\w.]){re.escape(inside)}(?=/|$|:|,)",
                           lambda _m, i=inside: self.mapping[i], value)
        return value

    def env(self, *layers: dict[str, Any]) -> dict[str, str]:
        """The image's ENV, then each layer (compose's `environment:`), paths mapped. The
        host's variables are not inherited, as they are not in a container."""
        image_env = {k: v.replace("${PATH}", DOCKER_DEFAULT_PATH) for k, v in IMAGE.env().items()}
        merged: dict[str, str] = {}
        for layer in (image_env, *layers):
            merged.update({k: self.path(str(v)) for k, v in layer.items()})
        return merged


class Wiretape:
    """`wiretape serve` started with the image's ENTRYPOINT, WORKDIR and environment."""

    def __init__(self, container: Container, *layers: dict[str, Any]) -> None:
        self.container = container
        # The one change from the image: the proxy and the admin API listen on loopback
        # ports the system picks (port 0, read back from the start-up log line), not
        # 0.0.0.0:8080/8081. In a container 0.0.0.0 is the container's own network
        # namespace; here it would be every interface of a shared CI machine, and fixed
        # ports collide with parallel test workers. The non-loopback admin address is
        # exercised by test_refuses_a_network_admin_api_without_a_token.
        self.proxy_port = self.admin_port = 0
        self.env = container.env(*layers, {"WIRETAPE_LISTEN": "127.0.0.1:0",
                                           "WIRETAPE_ADMIN": "127.0.0.1:0"})
        self.log_path = container.root / f"serve-{uuid.uuid4().hex[:8]}.log"
        self.proc = start_entrypoint(container, self.env, self.log_path)

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthcheck(self, **extra_env: str) -> int:
        """The image's HEALTHCHECK command, as Docker runs it inside the container."""
        return run_healthcheck(self.container, self.env | extra_env)

    def wait_healthy(self, timeout: float = 25.0) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"wiretape exited with {self.proc.returncode}:\n{self.log()}")
            if not self.admin_port:
                found = LISTENING.search(self.log())
                if found is None:
                    return False
                self.proxy_port, self.admin_port = int(found["pport"]), int(found["aport"])
                # the HEALTHCHECK finds the admin API through WIRETAPE_ADMIN, which in the
                # image names the port it listens on
                self.env |= {"WIRETAPE_LISTEN": f"127.0.0.1:{self.proxy_port}",
                             "WIRETAPE_ADMIN": f"127.0.0.1:{self.admin_port}"}
            return self.healthcheck() == 0

        wait_for(healthy, timeout, "the image's HEALTHCHECK to pass")

    def api(self, method: str, path: str, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.admin + path, headers=headers, timeout=10,
                             trust_env=False)

    def stop(self) -> int:
        """`docker stop`: SIGTERM to the entrypoint process."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_entrypoint(container: Container, env: dict[str, str],
                     log_path: Path) -> subprocess.Popen[bytes]:
    argv = IMAGE.last("ENTRYPOINT").exec_form()
    # resolved through the image's PATH, as Docker resolves an exec-form entrypoint
    program = shutil.which(argv[0], path=env["PATH"])
    assert program == str(VENV_BIN / argv[0]), program
    workdir = container.path(IMAGE.last("WORKDIR").args())
    with open(log_path, "wb") as log:
        return subprocess.Popen([program, *argv[1:]], env=env, cwd=workdir,
                                stdout=log, stderr=subprocess.STDOUT)


def run_healthcheck(container: Container, env: dict[str, str]) -> int:
    command = healthcheck_command(IMAGE.last("HEALTHCHECK"))
    assert command is not None
    argv = [container.path(a) for a in command[1:]]
    argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    return subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode


def compose_env(service: str) -> dict[str, Any]:
    return dict(COMPOSE["services"][service]["environment"])


def compose_binds(service: str) -> dict[str, Path]:
    return {mt.target: (DOCKER / mt.source).resolve()
            for mt in mounts(COMPOSE["services"][service]) if mt.bind}


def run_example_app(container: Container, wiretape: Wiretape, service: str,
                    **extra: str) -> subprocess.CompletedProcess[str]:
    """docker/example-app as compose runs it: its `environment:` with `wiretape:8080`
    pointing at the proxy and the shared volume's mount point at the data folder."""
    app = COMPOSE["services"][service]
    volume = next(mt for mt in mounts(app) if not mt.bind)
    app_view = Container(container.root, {volume.target: container.mapping["/data"]})
    proxy = f"127.0.0.1:{wiretape.proxy_port}"
    env = {k: app_view.path(str(v).replace("wiretape:8080", proxy))
           for k, v in app["environment"].items()}
    env |= {"PATH": DOCKER_DEFAULT_PATH, **extra}
    return subprocess.run([sys.executable, str(EXAMPLE_APP)], env=env, capture_output=True,
                          text=True, timeout=60)


def recordings(url: str, tape: str) -> list[m.Recording]:
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine)() as s:
            return list(s.scalars(select(m.Recording).join(m.Tape).where(m.Tape.name == tape)))
    finally:
        engine.dispose()
