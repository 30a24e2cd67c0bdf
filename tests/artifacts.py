"""The artifacts users install, built once per test run: the sdist, the wheel built from it,
and a fresh (non-editable) virtualenv holding that wheel.

xdist workers share one build through a file lock in pytest's shared temp folder, so the
suite pays for it once (about 20 s) however many workers ask.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
# top-level folders that are packages but not part of wiretape (setup.py's NOT_INSTALLED)
DEVELOPMENT_ONLY = frozenset({"tests", "bench"})
SKIPPED_PARTS = frozenset({"__pycache__", "node_modules"})


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path
    venv: Path  # a fresh virtualenv with the wheel installed (not editable)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def wheel_files(self) -> set[str]:
        """Paths in the wheel, without its .dist-info metadata."""
        with zipfile.ZipFile(self.wheel) as z:
            return {n for n in z.namelist() if ".dist-info/" not in n}


def source_files(root: Path = ROOT) -> set[str]:
    """Every file a user's install must hold, as the wheel names it (`wiretape/<folder>/...`):
    all files under each top-level folder that is a Python package, but for the
    development-only ones and caches. Read from the file system, independently of how
    setup.py selects them."""
    found = set()
    for top in sorted(root.iterdir()):
        if not (top / "__init__.py").is_file() or top.name in DEVELOPMENT_ONLY:
            continue
        for path in top.rglob("*"):
            rel = path.relative_to(root)
            if path.is_file() and not SKIPPED_PARTS.intersection(rel.parts) \
                    and path.suffix not in (".pyc", ".pyo"):
                found.add(f"wiretape/{rel.as_posix()}")
    return found


def run(*cmd: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n"
                           f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p.stdout


def build(out: Path, source: Path = ROOT) -> tuple[Path, Path]:
    """`python -m build`: the sdist, then the wheel built from that sdist (so a file the
    sdist leaves out is missing from the wheel too)."""
    run(sys.executable, "-m", "build", "--outdir", out, source)
    (sdist,) = out.glob("wiretape-*.tar.gz")
    (wheel,) = out.glob("wiretape-*.whl")
    return sdist, wheel


def install(wheel: Path, venv: Path, *extra: str) -> None:
    """A new virtualenv (the test run's Python, 3.12) with the wheel and its dependencies
    from the package index, as `pip install wiretape` gives them."""
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--disable-pip-version-check", wheel, *extra)


def shared_artifacts(shared_tmp: Path) -> Artifacts:
    """Build and install once for every xdist worker of this run."""
    home = shared_tmp / "wiretape-artifacts"
    home.mkdir(exist_ok=True)
    done = home / "artifacts.json"
    with FileLock(str(home / "build.lock")):
        if not done.exists():
            sdist, wheel = build(home / "dist")
            # pytest: the plugin's entry point is part of what users import
            install(wheel, home / "venv", "pytest")
            done.write_text(json.dumps({"sdist": str(sdist), "wheel": str(wheel)}))
        paths = json.loads(done.read_text())
    return Artifacts(Path(paths["sdist"]), Path(paths["wheel"]), home / "venv")
