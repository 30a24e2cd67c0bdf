"""The image's entrypoint run outside Docker (no engine runs here): its exact command line
and variables, and those compose.yaml adds, with the container's paths mapped into a temp
folder; driven as Docker and the compose services drive it (health check, token, CA on the
volume, the example app through the proxy, SIGTERM)."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from wiretape.storage import har

from tests.docker.container import (
    HAR,
    IMAGE,
    TOKEN,
    VENV_BIN,
    Container,
    Wiretape,
    compose_binds,
    compose_env,
    recordings,
    run_example_app,
    start_entrypoint,
)
from tests.helpers import wait_for

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
