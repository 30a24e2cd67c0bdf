"""Readers for docker/: the Dockerfile's stages, .dockerignore rules, compose.yaml with
Compose's variable interpolation and profiles. Just enough of each format for the tests."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


# -- Dockerfile ----------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV...
    rest: str  # the arguments as written, continuation lines joined
    comments: list[str] = field(default_factory=list)  # comment lines just above it

    def flags(self) -> dict[str, str]:
        """`--name=value` options at the start (COPY --from=build, HEALTHCHECK --interval=5s)."""
        found: dict[str, str] = {}
        for word in self.rest.split():
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def args(self) -> str:
        """The arguments after the `--flags`."""
        words = self.rest.split(" ")
        while words and (words[0].startswith("--") or words[0] == ""):
            words.pop(0)
        return " ".join(words).strip()

    def exec_form(self) -> list[str]:
        """A JSON-array argument (ENTRYPOINT ["a", "b"]); fails on the shell form."""
        value = json.loads(self.args())
        assert isinstance(value, list), f"{self.keyword} is not in exec (JSON array) form"
        return [str(v) for v in value]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.base}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """ENV values, in order, with ${VAR} references to earlier ones expanded."""
        values: dict[str, str] = {}
        for ins in self.all("ENV"):
            for word in shlex.split(ins.rest):
                name, sep, value = word.partition("=")
                assert sep, f"ENV {word!r}: use the NAME=value form"
                values[name] = re.sub(
                    r"\$\{(\w+)\}|\$(\w+)",
                    lambda m: values.get(m[1] or m[2], "${" + (m[1] or m[2]) + "}"),
                    value,
                )
        return values


def instructions(path: Path) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comment lines kept aside."""
    result: list[Instruction] = []
    comments: list[str] = []
    current: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if not current:
                comments.append(line.lstrip("#").strip())
            continue  # Docker drops comment lines, even inside a continued instruction
        if not line and not current:
            comments = []
            continue
        current.append(line[:-1].rstrip() if line.endswith("\\") else line)
        if not line.endswith("\\"):
            text = " ".join(part for part in current if part)
            keyword, _, rest = text.partition(" ")
            result.append(Instruction(keyword.upper(), rest.strip(), comments))
            current, comments = [], []
    return result


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The build stages, `FROM ${ARG}` resolved with the ARG defaults declared before it."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for ins in instructions(path):
        if ins.keyword == "ARG" and not found:
            name, _, default = ins.rest.partition("=")
            args[name] = default
        elif ins.keyword == "FROM":
            words = ins.args().split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base, name, []))
        elif found:
            found[-1].instructions.append(ins)
    return found


def copy_sources(stage: Stage) -> list[tuple[str, str]]:
    """(source, destination) of each COPY/ADD from the build context (not --from a stage)."""
    pairs = []
    for ins in stage.all("COPY") + stage.all("ADD"):
        if "from" in ins.flags():
            continue
        words = ins.args().split()
        pairs += [(src, words[-1]) for src in words[:-1]]
    return pairs


# -- .dockerignore ---------------------------------------------------------------------------

def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match syntax plus `**` (any number of folders), as .dockerignore has."""
    out = []
    for token in re.findall(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|.", pattern):
        out.append({"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token)
                   or (token if token.startswith("[") and len(token) > 1 else re.escape(token)))
    return re.compile("".join(out) + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negated, _glob_regex(pattern)))
    return rules


def in_build_context(relpath: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker sends `relpath` to the builder: as in moby's patternmatcher, the last
    rule that matches the path or one of its parent folders decides."""
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negated
    return not excluded


# -- compose.yaml ----------------------------------------------------------------------------

class MissingVariable(LookupError):
    """A `${NAME:?message}` variable is not set: Compose refuses the file."""


_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    `${VAR:?error}`, `${VAR?error}` and `$$`, applied to every string in the document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        if m["plain"]:
            return env.get(m["plain"], "")
        expr = m["braced"]
        op = re.search(r":?[-?]", expr)
        if not op:
            return env.get(expr, "")
        name, word = expr[:op.start()], expr[op.end():]
        unset = name not in env or (op[0].startswith(":") and env[name] == "")
        if op[0].endswith("-"):
            return interpolate(word, env) if unset else env[name]
        if unset:
            raise MissingVariable(f"{name}: {word}")
        return env[name]

    return _VAR.sub(one, value)


def compose_text() -> str:
    return COMPOSE.read_text()


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml as Compose sees it: YAML (with `<<` merge keys) and interpolation."""
    return interpolate(yaml.safe_load(compose_text()), env or {})


def enabled_services(doc: dict[str, Any], profiles: set[str]) -> dict[str, dict[str, Any]]:
    """The services Compose starts for `--profile ...`: those without profiles and those
    in an active one."""
    return {
        name: svc for name, svc in doc["services"].items()
        if not svc.get("profiles") or profiles & set(svc["profiles"])
    }


def depends_on(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {"condition": "service_started"} for d in deps}
    return {d: (spec or {"condition": "service_started"}) for d, spec in deps.items()}


def networks_of(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nets = svc.get("networks") or {}
    if isinstance(nets, list):
        return {n: {} for n in nets}
    return {n: (spec or {}) for n, spec in nets.items()}


@dataclass(frozen=True)
class Mount:
    source: str  # a volume name, or a host path (relative to the compose file) for a bind
    target: str
    read_only: bool
    bind: bool


def mounts(svc: dict[str, Any]) -> list[Mount]:
    found = []
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
            read_only = bool(entry.get("read_only"))
            bind = entry.get("type") == "bind"
        else:
            parts = entry.split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            bind = source.startswith((".", "/", "~"))
        found.append(Mount(source, target, read_only, bind))
    return found


def healthcheck_of(svc: dict[str, Any], compose_dir: Path = DOCKER) -> list[str] | None:
    """The health test a service gets: its own `healthcheck`, else its built image's."""
    own = svc.get("healthcheck")
    if own is not None:
        return None if own.get("disable") else list(own["test"])
    build = svc.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    dockerfile = (compose_dir / build["context"] / build.get("dockerfile", "Dockerfile"))
    for ins in stages(dockerfile.resolve())[-1].all("HEALTHCHECK"):
        return healthcheck_command(ins)
    return None


def healthcheck_command(ins: Instruction) -> list[str] | None:
    """["CMD", argv...] of a HEALTHCHECK instruction, None for HEALTHCHECK NONE."""
    kind, _, command = ins.args().partition(" ")
    if kind.upper() == "NONE":
        return None
    assert kind.upper() == "CMD", f"HEALTHCHECK {ins.args()!r}"
    argv = json.loads(command)
    assert isinstance(argv, list), "HEALTHCHECK CMD must be in exec (JSON array) form"
    return ["CMD", *map(str, argv)]
