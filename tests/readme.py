"""The README's shell blocks, read as a user reads them (standard library only: `.ci/run`
runs this file with a bare python3 to get the set-up commands).

    python3 tests/readme.py setup 1     # prints the first set-up command, as written

A block's lines are commands; `# ...` lines right after a command are the output the README
promises for it (see `Expected`).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str, text: str | None = None) -> str:
    """One `## title` section, up to the next `## ` heading."""
    text = README.read_text() if text is None else text
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def setup_commands() -> list[str]:
    """The set-up commands: one per sh block of the "Set up" section."""
    return [b.strip() for b in sh_blocks(section("Set up"))]


@dataclass
class Expected:
    """What the README shows under a command: lines such as `HTTP/1.0 200 OK` or
    `Wiretape: miss` must be lines of the output (header names in any case); a JSON value
    (it may span several comment lines) must be contained in the JSON the command printed:
    every key shown has the value shown, keys not shown may hold anything (times, ids)."""

    lines: list[str] = field(default_factory=list)
    json_text: str = ""

    def problems(self, output: str) -> list[str]:
        found = []
        out_lines = [line.rstrip("\r") for line in output.splitlines()]
        lowered = {line.lower() for line in out_lines}
        for line in self.lines:
            if line.lower() not in lowered:
                found.append(f"line {line!r} not in the output")
        if self.json_text:
            want = json.loads(self.json_text)
            got = [v for v in map(_json_or_none, out_lines) if v is not None]
            if not any(contains(g, want) for g in got):
                found.append(f"no JSON in the output contains {want!r}")
        return found


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def contains(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and contains(got[k], v)
                                             for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) >= len(want) and all(
            contains(g, w) for g, w in zip(got, want, strict=False))
    return bool(got == want)


@dataclass
class Command:
    text: str
    expected: Expected


def commands(block: str) -> list[Command]:
    """A block as commands, each with the output the README shows under it."""
    found: list[Command] = []
    in_json = False
    for raw in block.splitlines():
        line = raw.rstrip()
        if not line.startswith("#"):
            if line.strip():
                found.append(Command(line, Expected()))
                in_json = False
            continue
        if not found:
            continue
        shown = line[1:].strip()
        exp = found[-1].expected
        if in_json or shown.startswith(("{", "[")):
            in_json = True
            exp.json_text += shown + " "
        elif shown:
            exp.lines.append(shown)
    return found


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "setup":
        print(setup_commands()[int(sys.argv[2]) - 1])
    else:
        sys.exit("usage: python3 tests/readme.py setup N")
