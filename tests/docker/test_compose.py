"""docker/compose.yaml read as Compose reads it: every service, variable, network, volume,
build and health check it names exists and fits together, in each profile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from wiretape.cli.main import serve
from wiretape.storage import har

from tests.docker.files import (
    COMPOSE,
    DOCKER,
    DOCKERFILE,
    MissingVariable,
    compose_text,
    depends_on,
    enabled_services,
    healthcheck_of,
    load_compose,
    mounts,
    networks_of,
    stages,
)

ENV = {"WIRETAPE_TOKEN": "t0ken"}
DOC = load_compose(ENV)
SERVICES = DOC["services"]
PROFILES = {"record", "replay"}
SERVE_ENV_VARS = {v for p in serve.params
                  for v in ([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])}
IMAGE_ENV = stages(DOCKERFILE)[-1].env()
APP_KEYS = ("build", "image", "environment", "volumes", "networks", "command", "entrypoint")


def wiretape_services() -> dict[str, dict]:
    return {n: s for n, s in SERVICES.items() if n.startswith("wiretape-")}


def app_services() -> dict[str, dict]:
    return {n: s for n, s in SERVICES.items() if n.startswith("app-")}


def test_a_record_and_a_replay_profile():
    declared = {p for s in SERVICES.values() for p in s.get("profiles", [])}
    assert declared == PROFILES
    for profile in PROFILES:
        assert set(enabled_services(DOC, {profile})) == {
            "postgres", f"wiretape-{profile}", f"app-{profile}"}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_dependencies_are_enabled_in_the_same_profile(profile):
    # Compose rejects the whole project when an enabled service depends on one that the
    # active profiles leave out ("depends on undefined service")
    enabled = enabled_services(DOC, {profile})
    for name, svc in enabled.items():
        for dep in depends_on(svc):
            assert dep in enabled, f"--profile {profile}: {name} depends on disabled {dep}"


def test_the_token_is_required_not_defaulted():
    with pytest.raises(MissingVariable, match="WIRETAPE_TOKEN"):
        load_compose({})
    with pytest.raises(MissingVariable):
        load_compose({"WIRETAPE_TOKEN": ""})
    for svc in wiretape_services().values():
        assert svc["environment"]["WIRETAPE_TOKEN"] == ENV["WIRETAPE_TOKEN"]


def test_networks_and_volumes_are_declared():
    for name, svc in SERVICES.items():
        for net in networks_of(svc):
            assert net in DOC["networks"], f"{name}: undeclared network {net}"
        for m in mounts(svc):
            if m.bind:
                assert (DOCKER / m.source).exists(), f"{name}: no {m.source} beside compose.yaml"
            else:
                assert m.source in DOC["volumes"], f"{name}: undeclared volume {m.source}"
    used_nets = {n for s in SERVICES.values() for n in networks_of(s)}
    used_vols = {m.source for s in SERVICES.values() for m in mounts(s) if not m.bind}
    assert used_nets == set(DOC["networks"]) and used_vols == set(DOC["volumes"])


def test_builds_point_at_existing_dockerfiles():
    for name, svc in SERVICES.items():
        build = svc.get("build")
        if build is None:
            assert svc.get("image"), f"{name}: neither image nor build"
            continue
        build = {"context": build} if isinstance(build, str) else build
        dockerfile = (DOCKER / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile.is_file(), f"{name}: no {dockerfile}"
    for svc in wiretape_services().values():
        build = svc["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_health_conditions_have_health_checks():
    waited = {dep for s in SERVICES.values() for dep, spec in depends_on(s).items()
              if spec.get("condition") == "service_healthy"}
    assert waited == {"postgres", "wiretape-record", "wiretape-replay"}
    for name in waited:
        test = healthcheck_of(SERVICES[name])
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    pg = SERVICES["postgres"]
    check = healthcheck_of(pg)
    assert "pg_isready" in check
    assert check[check.index("-U") + 1] == pg["environment"]["POSTGRES_USER"]
    assert check[check.index("-d") + 1] == pg["environment"]["POSTGRES_DB"]


def test_wiretape_variables_are_serve_flags_and_fit_each_profile():
    for name, svc in wiretape_services().items():
        env = svc["environment"]
        unknown = {k for k in env if k.startswith("WIRETAPE_")} - SERVE_ENV_VARS
        assert not unknown, f"{name}: not `wiretape serve` variables: {unknown}"
        assert env["WIRETAPE_MODE"] == name.removeprefix("wiretape-")
    assert SERVICES["wiretape-replay"]["environment"]["WIRETAPE_ON_MISS"] == "error"


def test_store_is_the_postgres_service():
    pg = SERVICES["postgres"]["environment"]
    for name, svc in wiretape_services().items():
        url = urlsplit(svc["environment"]["WIRETAPE_DB"])
        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.username, url.password, url.path.lstrip("/")) == (
            "postgres", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
        shared = set(networks_of(svc)) & set(networks_of(SERVICES["postgres"]))
        assert shared, f"{name} cannot reach postgres"


def test_tape_file_is_a_har_in_the_repository():
    svc = SERVICES["wiretape-replay"]
    path = PurePosixPath(svc["environment"]["WIRETAPE_TAPE_FILE"])
    mount = next(m for m in mounts(svc) if path.is_relative_to(m.target))
    assert mount.bind and mount.read_only
    har_file = DOCKER / mount.source / path.relative_to(mount.target)
    # what wiretape's own importer makes of it (all or nothing: HarError on a bad entry)
    tape = har.loads(har_file.read_text())
    assert tape.exchanges and all(ex.response is not None for ex in tape.exchanges)
    assert json.loads(har_file.read_text())["log"]["version"] == "1.2"


def test_app_reaches_only_wiretape_and_replay_reaches_nothing_outside():
    nets = DOC["networks"]
    for name, svc in app_services().items():
        assert all(nets[n].get("internal") for n in networks_of(svc)), name
    assert all(nets[n].get("internal") for n in networks_of(SERVICES["wiretape-replay"]))
    assert any(not nets[n].get("internal") for n in networks_of(SERVICES["wiretape-record"]))


def test_app_proxy_variables_point_at_wiretape():
    listen_port = IMAGE_ENV["WIRETAPE_LISTEN"].rpartition(":")[2]
    for name, app in app_services().items():
        env = app["environment"]
        profile = name.removeprefix("app-")
        wiretape = SERVICES[f"wiretape-{profile}"]
        # the host name in the proxy URL is wiretape's alias on a network the app is on
        aliases = {a for net in set(networks_of(app)) & set(networks_of(wiretape))
                   for a in networks_of(wiretape)[net].get("aliases", [])}
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            url = urlsplit(env[var])
            assert url.scheme == "http" and url.hostname in aliases, f"{name} {var}"
            assert str(url.port) == listen_port, f"{name} {var}"
        for var in ("NO_PROXY", "no_proxy"):
            assert aliases & set(env[var].split(",")), f"{name} {var}: admin API via the proxy"


def test_wiretape_answers_to_the_name_the_app_reaches_it_by():
    """The README tells the app to call the admin API as http://wiretape:8081; the admin
    API answers only to host names it is told of (DNS rebinding), so that alias is one."""
    for name, app in app_services().items():
        wiretape = SERVICES[f"wiretape-{name.removeprefix('app-')}"]
        aliases = {a for net in set(networks_of(app)) & set(networks_of(wiretape))
                   for a in networks_of(wiretape)[net].get("aliases", [])}
        hosts = set(re.split(r"[\s,]+", wiretape["environment"]["WIRETAPE_ADMIN_HOSTS"]))
        assert aliases <= hosts, (name, aliases, hosts)


def test_app_trusts_the_ca_wiretape_writes_to_the_shared_volume():
    confdir = PurePosixPath(IMAGE_ENV["WIRETAPE_CONFDIR"])
    for name, app in app_services().items():
        wiretape = SERVICES[f"wiretape-{name.removeprefix('app-')}"]
        assert "WIRETAPE_CONFDIR" not in wiretape["environment"]  # the image's is the one
        ca_mount = next(m for m in mounts(wiretape) if confdir.is_relative_to(m.target))
        app_mount = next(m for m in mounts(app) if m.source == ca_mount.source)
        assert app_mount.read_only, f"{name} may write wiretape's volume"
        expected = (PurePosixPath(app_mount.target) / confdir.relative_to(ca_mount.target)
                    / "mitmproxy-ca-cert.pem")
        for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
            assert app["environment"][var] == str(expected), f"{name} {var}"


def test_one_line_changes_the_app_under_test():
    # the app services differ only in profile and in which wiretape they wait for
    first, *others = app_services().values()
    for other in others:
        assert {k: other.get(k) for k in APP_KEYS} == {k: first.get(k) for k in APP_KEYS}
    marked = [line for line in compose_text().splitlines()
              if "YOUR APP" in line and not line.lstrip().startswith("#")]
    assert len(marked) == 1, marked
    key = marked[0].split(":")[0].strip()
    assert key in ("build", "image") and key in first
    # and that line is the only place the example app is named
    assert compose_text().count("example-app") == 1


def test_admin_port_is_published_on_loopback_only():
    admin_port = IMAGE_ENV["WIRETAPE_ADMIN"].rpartition(":")[2]
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            host_ip, _, rest = str(port).partition(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond this machine"
            assert rest.rpartition(":")[2] == admin_port


def test_docker_compose_v1_accepts_the_file(tmp_path: Path):
    """Compose's own schema validation, where a Compose is installed (Debian's
    docker-compose 1.29 is; it predates the top-level `name`, which is dropped for it)."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    copy = DOCKER / f".compose-v1-check-{tmp_path.name}.yaml"  # beside: relative paths hold
    copy.write_text(re.sub(r"(?m)^name:.*\n", "", compose_text()))
    try:
        for profile in sorted(PROFILES):
            result = subprocess.run(
                [compose, "-f", str(copy), "--profile", profile, "config"],
                capture_output=True, text=True, timeout=60,
                env={"WIRETAPE_TOKEN": "t0ken", "PATH": "/usr/bin:/bin"})
            assert result.returncode == 0, result.stderr
            assert yaml.safe_load(result.stdout)["services"]
    finally:
        copy.unlink()


def test_compose_file_is_where_the_readme_says():
    text = (DOCKER.parent / "README.md").read_text().split("\n## In CI\n", 1)[1]
    assert "docker/compose.yaml" in text and COMPOSE.exists()
    for profile in PROFILES:
        assert f"--profile {profile}" in text
