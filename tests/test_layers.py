"""The dependency direction stays honest: storage imports neither mitmproxy nor FastAPI;
proxy/ and api/ never import each other; nothing imports cli/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "storage": ("mitmproxy", "fastapi", "starlette", "uvicorn", "wiretape.proxy",
                "wiretape.api", "wiretape.cli"),
    "proxy": ("wiretape.api", "wiretape.cli", "fastapi"),
    "api": ("wiretape.proxy", "wiretape.cli", "mitmproxy"),
    "migrations": ("wiretape.proxy", "wiretape.api", "wiretape.cli"),
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


def test_layers_import_only_downwards():
    offences = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((ROOT / layer).rglob("*.py")):
            for name in imports_of(path):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offences == []


def test_every_module_starts_with_a_docstring():
    missing = []
    for layer in ("storage", "proxy", "api", "cli", "migrations"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            if "versions" in path.parts and path.name != "__init__.py":
                continue
            if ast.get_docstring(ast.parse(path.read_text())) is None:
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []
