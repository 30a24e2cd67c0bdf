"""What pyproject.toml cannot say: the source folders installed under the `wiretape.` namespace.

Each top-level folder that is a Python package (has an `__init__.py`) is installed as
`wiretape.<folder>`, with every subfolder and every file in it, found here at build time:
nobody keeps a list of packages or data files in step (a hand-kept list once left
`wiretape.api.routes` out of the wheel). `tests/` and `bench/` are the development
folders that are not installed. tests/packaging checks the built wheel against the tree.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
NOT_INSTALLED = frozenset({"tests", "bench", "build", "dist"})
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def source_roots() -> list[str]:
    return sorted(
        p.name
        for p in HERE.iterdir()
        if p.is_dir() and (p / "__init__.py").is_file() and p.name not in NOT_INSTALLED
    )


def package_tree(root: str) -> dict[str, list[str]]:
    """Every folder below `root` as a package name, with the non-Python files directly in it."""
    found: dict[str, list[str]] = {}
    for folder in [HERE / root, *sorted((HERE / root).rglob("*"))]:
        if not folder.is_dir() or SKIPPED_DIRS.intersection(folder.relative_to(HERE).parts):
            continue
        name = ".".join(("wiretape", *folder.relative_to(HERE).parts))
        found[name] = sorted(
            f.name
            for f in folder.iterdir()
            if f.is_file() and f.suffix != ".py" and not f.name.endswith(SKIPPED_SUFFIXES)
        )
    return found


packages: dict[str, list[str]] = {}
for root in source_roots():
    packages.update(package_tree(root))

setup(
    packages=list(packages),
    package_dir={f"wiretape.{root}": root for root in source_roots()},
    package_data={name: files for name, files in packages.items() if files},
    include_package_data=False,
)
