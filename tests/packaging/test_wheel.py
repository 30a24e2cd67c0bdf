"""The built sdist and wheel, as users install them: every source file is in them, every
module imports from a plain (non-editable) install, the commands start, metadata is valid."""

from __future__ import annotations

import subprocess
import sys
import tarfile

from tests.artifacts import ROOT, Artifacts, run, source_files

# runs in the wheel's virtualenv, from a folder that is not the checkout (so nothing in the
# repository can stand in for a module the wheel lacks)
IMPORT_ALL = """
import importlib, json, sys
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as e:
        failed[name] = f"{type(e).__name__}: {e}"
print(json.dumps(failed))
"""
# modules that run a program when imported: alembic's env.py (exercised by `wiretape db
# upgrade`) and `python -m wiretape.cli` (run below)
RUN_NOT_IMPORTED = {"wiretape.migrations.env", "wiretape.cli.__main__"}


def module_names(files: set[str]) -> list[str]:
    names = []
    for f in sorted(files):
        if f.endswith(".py"):
            name = f.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            names.append(name)
    return names


def test_the_wheel_holds_exactly_the_source_tree(artifacts: Artifacts):
    wheel = artifacts.wheel_files()
    expected = source_files()
    assert {f for f in expected if f.endswith(".py")} <= wheel, "modules missing from the wheel"
    assert expected - wheel == set(), "files missing from the wheel"
    assert wheel - expected == set(), "files in the wheel that the source tree does not have"
    # the packaging fault this test exists for: a subpackage left out of a hand-kept list
    assert "wiretape/api/routes/__init__.py" in wheel
    assert "wiretape/migrations/script.py.mako" in wheel


def test_the_sdist_holds_the_source_tree(artifacts: Artifacts):
    with tarfile.open(artifacts.sdist) as t:
        top = t.getnames()[0].split("/")[0]
        names = {n.removeprefix(f"{top}/") for n in t.getnames()}
    missing = {f.removeprefix("wiretape/") for f in source_files()} - names
    assert missing == set()
    assert {"pyproject.toml", "setup.py", "README.md"} <= names


def test_every_module_imports_from_the_installed_wheel(artifacts: Artifacts, tmp_path):
    import json

    names = [n for n in module_names(artifacts.wheel_files()) if n not in RUN_NOT_IMPORTED]
    out = run(artifacts.python, "-I", "-c", IMPORT_ALL, json.dumps(names), cwd=tmp_path)
    assert json.loads(out) == {}
    # and it is the installed copy that was imported, not this checkout
    where = run(artifacts.python, "-I", "-c",
                "import wiretape.api.routes as m; print(m.__file__)", cwd=tmp_path)
    assert str(artifacts.venv) in where and str(ROOT) not in where


def test_the_console_script_runs(artifacts: Artifacts, tmp_path):
    assert run(artifacts.bin / "wiretape", "--version", cwd=tmp_path).strip() \
        == "wiretape, version 0.1.0"
    assert run(artifacts.python, "-m", "wiretape.cli", "--version", cwd=tmp_path).strip() \
        == "wiretape, version 0.1.0"
    help_text = run(artifacts.bin / "wiretape", "serve", "--help", cwd=tmp_path)
    assert "--listen" in help_text and "WIRETAPE_MODE" in help_text
    # the migrations (alembic's env.py and every version) run from the installed package
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert "upgraded to" in run(artifacts.bin / "wiretape", "db", "upgrade", "--db", url,
                                cwd=tmp_path)


def test_metadata_passes_twine_check(artifacts: Artifacts):
    p = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                        str(artifacts.sdist), str(artifacts.wheel)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
