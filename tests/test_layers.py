"""The dependency direction stays honest: cli -> proxy, api -> drift -> storage.

proxy/ and api/ never import each other; drift/ uses storage/ only; storage/ imports
nothing above it; the migrations import no runtime module at all (Alembic's env.py reads
the models, nothing above them); nothing imports cli/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("storage", "drift", "proxy", "api", "cli", "migrations")

FRAMEWORKS = ("mitmproxy", "fastapi", "starlette", "uvicorn")
ABOVE_STORAGE = ("wiretape.drift", "wiretape.proxy", "wiretape.api", "wiretape.cli")
# (folder, files in it, what they must not import)
FORBIDDEN = {
    "storage": ("storage", "*.py", (*FRAMEWORKS, *ABOVE_STORAGE)),
    "drift": ("drift", "*.py", (*FRAMEWORKS, "wiretape.proxy", "wiretape.api", "wiretape.cli")),
    "proxy": ("proxy", "*.py", ("fastapi", "starlette", "uvicorn", "wiretape.api",
                                "wiretape.cli")),
    "api": ("api", "*.py", ("mitmproxy", "wiretape.proxy", "wiretape.cli")),
    # a migration is a fixed step of the schema's history: it must not change when the
    # runtime code does, so it imports none of it (op.* and sa.* only)
    "migrations": ("migrations/versions", "*.py", ("wiretape",)),
    # Alembic's environment reads the models for autogenerate, and nothing above storage
    "migrations/env.py": ("migrations", "env.py", (*FRAMEWORKS, *ABOVE_STORAGE)),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offences(folder: str, files: str, banned: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / folder).rglob(files))
        for name in sorted(imports_of(path))
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_layers_import_only_downwards(part: str) -> None:
    assert offences(*FORBIDDEN[part]) == []


def test_the_rule_sees_a_real_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""x."""\nfrom wiretape.api.app import create_app\nimport mitmproxy.http\n')
    assert imports_of(bad) == {"wiretape.api.app", "mitmproxy.http"}


def test_every_module_starts_with_a_docstring() -> None:
    missing = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            if "versions" in path.parts and path.name != "__init__.py":
                continue
            if ast.get_docstring(ast.parse(path.read_text())) is None:
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []
