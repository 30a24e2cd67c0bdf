"""The README's "In CI" examples (GitHub Actions, GitLab CI) run as their runners would run them.

One replay service configured as the examples configure it, started with the image's entrypoint
outside Docker (tests/docker/container.py), then the steps and scripts against it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from wiretape.cli.main import serve

from tests.docker.container import DOCKER_DEFAULT_PATH, EXAMPLE_APP, HAR, TOKEN, Container, Wiretape
from tests.docker.files import DOCKER, ROOT


def readme_section(title: str) -> str:
    """One `## title` section of the top-level README (up to the next `## ` heading)."""
    text = (DOCKER.parent / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]



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
