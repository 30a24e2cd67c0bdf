"""The image's entrypoint run outside Docker (no engine runs here): its exact command line
and variables, and those compose.yaml adds, with the container's paths mapped into a temp
folder; driven as Docker and the compose services drive it (health check, token, CA on the
volume, the example app through the proxy, SIGTERM)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, select, text
from wiretape.cli.main import serve
from wiretape.storage import db, har
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


@pytest.fixture
def pg_database(pg_admin_url: str) -> str:
    """A new, empty PostgreSQL database: compose's `postgres` service, here."""
    name = f"wt_docker_{uuid.uuid4().hex[:10]}"
    engine = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return pg_admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Wiretape]]:
    running: list[Wiretape] = []
    yield running
    for w in running:
        w.stop()


def recordings(url: str, tape: str) -> list[m.Recording]:
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine)() as s:
            return list(s.scalars(select(m.Recording).join(m.Tape).where(m.Tape.name == tape)))
    finally:
        engine.dispose()


# -- the image on its own: `docker run -e WIRETAPE_TOKEN=... wiretape` ---------------------

def test_refuses_a_network_admin_api_without_a_token(tmp_path: Path):
    container = Container.make(tmp_path)
    # the image's own WIRETAPE_ADMIN host (0.0.0.0), on a free port; no WIRETAPE_TOKEN
    admin_host = IMAGE.env()["WIRETAPE_ADMIN"].rpartition(":")[0]
    env = container.env({"WIRETAPE_LISTEN": "127.0.0.1:0",
                         "WIRETAPE_ADMIN": f"{admin_host}:0"})
    proc = start_entrypoint(container, env, tmp_path / "serve.log")
    assert proc.wait(20) == 2
    lines = (tmp_path / "serve.log").read_text().strip().splitlines()
    assert len(lines) == 1 and "token" in lines[0].lower() and "Traceback" not in lines[0]


def test_image_defaults_serve_and_stop_cleanly(tmp_path: Path, started: list[Wiretape]):
    container = Container.make(tmp_path)
    data = Path(container.mapping["/data"])
    wiretape = Wiretape(container, {"WIRETAPE_TOKEN": TOKEN})
    started.append(wiretape)
    wiretape.wait_healthy()

    # a proxy in the container's environment (GitLab passes job variables to services) is
    # not used by the health check: nothing listens on port 9
    nowhere = "http://127.0.0.1:9"
    assert wiretape.healthcheck(HTTP_PROXY=nowhere, http_proxy=nowhere) == 0

    health = wiretape.api("GET", "/api/health", token=None)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # the token guards everything else
    assert wiretape.api("GET", "/api/mode", token=None).status_code == 401
    assert wiretape.api("GET", "/api/mode", token="wrong").status_code == 401
    assert wiretape.api("GET", "/api/mode").status_code == 200

    # store and CA on the volume; the certificate readable by the app containers, the
    # key by wiretape alone
    assert (data / "wiretape.db").is_file()
    confdir = Path(container.path(IMAGE.env()["WIRETAPE_CONFDIR"]))
    cert, key = confdir / "mitmproxy-ca-cert.pem", confdir / "mitmproxy-ca.pem"
    assert cert.is_file() and cert.stat().st_mode & 0o004
    assert confdir.stat().st_mode & 0o005 == 0o005
    assert key.stat().st_mode & 0o777 == 0o600

    assert wiretape.stop() == 0, wiretape.log()
    assert wiretape.healthcheck() != 0


# -- the compose services --------------------------------------------------------------------

class _Upstream(BaseHTTPRequestHandler):
    """Stands for httpbin.org, which this machine cannot reach: answers like it does."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._reply({"slideshow": {"title": "Sample Slide Show"}})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._reply({"json": json.loads(body)})


def test_record_profile_records_the_example_app(tmp_path: Path, started: list[Wiretape],
                                                pg_database: str):
    # compose's own store URL names the `postgres` service; this test's PostgreSQL stands in
    record_env = compose_env("wiretape-record") | {"WIRETAPE_DB": pg_database}
    container = Container.make(tmp_path, compose_binds("wiretape-record"))
    wiretape = Wiretape(container, record_env)
    started.append(wiretape)
    wiretape.wait_healthy()

    # 127.0.0.2, not 127.0.0.1: the app's NO_PROXY rightly sends 127.0.0.1 around the proxy
    upstream = ThreadingHTTPServer(("127.0.0.2", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        app = run_example_app(container, wiretape, "app-record",
                              EXAMPLE_API=f"http://127.0.0.2:{upstream.server_address[1]}")
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert app.returncode == 0, app.stdout + app.stderr + wiretape.log()
    assert app.stdout.count("(live)") == 2
    tape = record_env["WIRETAPE_TAPE"]
    wait_for(lambda: len(recordings(pg_database, tape)) == 2, 10, "the recordings")

    # the README's export: `docker compose exec -T wiretape-record wiretape export --tape app`
    # runs in the container, with its environment (WIRETAPE_DB among it)
    export = subprocess.run(
        [str(VENV_BIN / "wiretape"), "export", "--tape", tape], env=wiretape.env,
        cwd=container.path(IMAGE.last("WORKDIR").args()), capture_output=True, timeout=30)
    assert export.returncode == 0, export.stderr
    exported = har.loads(export.stdout)
    assert sorted(ex.request.method for ex in exported.exchanges) == ["GET", "POST"]

    assert wiretape.stop() == 0, wiretape.log()


def test_replay_profile_answers_the_example_app_from_the_tape_file(
        tmp_path: Path, started: list[Wiretape], pg_database: str):
    replay_env = compose_env("wiretape-replay") | {"WIRETAPE_DB": pg_database}
    binds = compose_binds("wiretape-replay")
    container = Container.make(tmp_path, binds)
    assert Path(container.path(replay_env["WIRETAPE_TAPE_FILE"])) == HAR.resolve()
    wiretape = Wiretape(container, replay_env)
    started.append(wiretape)
    wiretape.wait_healthy()
    tape = replay_env["WIRETAPE_TAPE"]
    entries = json.loads(HAR.read_text())["log"]["entries"]
    assert len(recordings(pg_database, tape)) == len(entries)

    # HTTPS to httpbin.org through the proxy, trusting the CA from the volume; this machine
    # has no route to httpbin.org, so every answer comes from the tape
    app = run_example_app(container, wiretape, "app-replay")
    assert app.returncode == 0, app.stdout + app.stderr + wiretape.log()
    assert app.stdout.count("replayed from recording") == 2

    # and what is not on the tape fails loudly
    with httpx.Client(proxy=wiretape.proxy, trust_env=False, timeout=10) as client:
        miss = client.get("http://httpbin.org/status/418")
    assert miss.status_code == 502 and miss.headers["wiretape"] == "miss"
    assert miss.json()["error"] == "no recording matches"

    assert wiretape.stop() == 0, wiretape.log()


# -- the CI examples in the README's "In CI" section --------------------------------------------
def readme_section(title: str) -> str:
    """One `## title` section of the top-level README (up to the next `## ` heading)."""
    text = (DOCKER.parent / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]

SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


def readme_yaml(key: str) -> dict[str, Any]:
    """The README's YAML example whose top level has `key` (jobs: GitHub, test: GitLab)."""
    blocks = re.findall(r"```yaml\n(.*?)```", readme_section("In CI"), re.S)
    docs = [yaml.safe_load(b) for b in blocks]
    found = [d for d in docs if isinstance(d, dict) and key in d]
    assert len(found) == 1, f"one YAML example with `{key}:` in the README's In CI section"
    return found[0]


def test_ci_examples_configure_the_same_replay_service():
    github = readme_yaml("jobs")["jobs"]["test"]["services"]["wiretape"]
    gitlab = readme_yaml("test")["test"]["services"][0]
    assert gitlab["alias"] == "wiretape"
    github_env = {k: v for k, v in github["env"].items() if k != "WIRETAPE_TOKEN"}
    assert gitlab["variables"] == github_env
    assert github_env["WIRETAPE_MODE"] == "replay"
    assert set(github["env"]) <= {v for p in serve.params
                                  for v in ([p.envvar] if isinstance(p.envvar, str)
                                            else p.envvar or [])}


def shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A CI script step, as a runner runs it: bash, stopping at the first failure, in the
    checkout (where `@docker/tapes/app.har` is)."""
    if shutil.which("curl") is None:
        pytest.fail("the CI examples use curl: apt-get install curl")
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_ci_example_scripts_are_plain_strings():
    # a `key: value` inside an unquoted command turns a YAML list item into a mapping
    github = readme_yaml("jobs")["jobs"]["test"]
    assert all(isinstance(step.get("run", ""), str) for step in github["steps"])
    gitlab = readme_yaml("test")["test"]
    for part in ("before_script", "script", "after_script"):
        assert all(isinstance(line, str) for line in gitlab[part]), part


def test_ci_examples_as_their_runners_would_run_them(tmp_path: Path,
                                                     started: list[Wiretape]):
    """One replay service configured as both examples configure it (the same, as
    test_ci_examples_configure_the_same_replay_service checks), then the GitHub Actions
    steps and the GitLab CI scripts, each with the example app standing in for
    `make test`, the service's ports mapped to loopback."""
    github = readme_yaml("jobs")["jobs"]["test"]
    service_env = {k: str(v).replace("${{ secrets.WIRETAPE_TOKEN }}", TOKEN)
                   for k, v in github["services"]["wiretape"]["env"].items()}
    container = Container.make(tmp_path)
    wiretape = Wiretape(container, service_env)  # no WIRETAPE_DB: the image's SQLite
    started.append(wiretape)
    wiretape.wait_healthy()
    entries = len(json.loads(HAR.read_text())["log"]["entries"])

    # GitHub Actions: the steps' `run:` scripts and the test step's `env:`
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()

    def on_the_runner(text: str) -> str:
        return (text.replace("${{ runner.temp }}", str(runner_temp))
                .replace("localhost:8080", f"127.0.0.1:{wiretape.proxy_port}")
                .replace("localhost:8081", f"127.0.0.1:{wiretape.admin_port}"))

    job_env = {k: str(v).replace("${{ secrets.WIRETAPE_TOKEN }}", TOKEN)
               for k, v in github["env"].items()}
    base = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(runner_temp), **job_env}
    steps = {step.get("name"): step for step in github["steps"]}
    loaded = shell(on_the_runner(steps["Load the tape, fetch the CA"]["run"]), base)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr + wiretape.log()
    assert f'"imported":{entries},' in loaded.stdout.replace(" ", ""), loaded.stdout
    test_env = {k: on_the_runner(str(v))
                for k, v in steps["Test against the tape"]["env"].items()}
    app = subprocess.run([sys.executable, str(EXAMPLE_APP)], capture_output=True, text=True,
                         env={"PATH": DOCKER_DEFAULT_PATH, **test_env}, timeout=60)
    assert app.returncode == 0, app.stdout + app.stderr + wiretape.log()
    assert app.stdout.count("replayed from recording") == 2
    misses = shell(on_the_runner(steps["What was not on the tape"]["run"]), base)
    assert misses.returncode == 0 and json.loads(misses.stdout) == []

    # GitLab CI: before_script, the app, after_script in one shell, as GitLab runs them;
    # the import replaces the tape, so loading it again changes nothing
    gitlab = readme_yaml("test")["test"]
    alias = gitlab["services"][0]["alias"]
    job_tmp = tmp_path / "job-tmp"
    job_tmp.mkdir()

    def in_the_job(text: str) -> str:
        return (text.replace(f"{alias}:8080", f"127.0.0.1:{wiretape.proxy_port}")
                .replace("/tmp/", f"{job_tmp}/"))

    # curl reaches the admin API by the alias, as in the job: the name stays in the URL
    # and the Host header (the admin API answers only to names it is told of), and the
    # connection goes to loopback
    curl_home = tmp_path / "curl-home"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text(
        f'connect-to = "{alias}:8081:127.0.0.1:{wiretape.admin_port}"\n')
    script = "\n".join(in_the_job(line) for line in gitlab["before_script"])
    script += f"\n{shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLE_APP))}\n"
    script += "\n".join(in_the_job(line) for line in gitlab["after_script"])
    result = shell(script, {"PATH": os.environ["PATH"], "WIRETAPE_TOKEN": TOKEN,
                            "CURL_HOME": str(curl_home)})
    assert result.returncode == 0, result.stdout + result.stderr + wiretape.log()
    assert f'"imported":{entries},' in result.stdout.replace(" ", "")
    assert result.stdout.count("replayed from recording") == 2
    assert result.stdout.rstrip().endswith("[]")  # after_script: no misses

    assert wiretape.stop() == 0, wiretape.log()
