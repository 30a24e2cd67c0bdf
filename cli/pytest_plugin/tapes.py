"""Which tape a test uses: its name in the store, its HAR file, and the marker's options."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wiretape.storage.names import InvalidTapeName, check_tape_name

# room for a hash suffix, so a shortened name stays unique
_SHORT = 180
# characters a file name cannot hold on some system (Windows' list and control characters)
_UNSAFE_FILE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')

MATCHING_KEYS = ("ignore_query", "ignore_body_paths", "match_headers", "ignore_host")
REDACT_KEYS = ("redact_headers", "redact_query", "redact_json")
MARKER_KEYS = ("tape", *MATCHING_KEYS, *REDACT_KEYS)


class MarkerError(ValueError):
    """A `@pytest.mark.wiretape(...)` the plugin cannot use; the message says why."""


def valid_tape_name(name: str) -> bool:
    """The store's one rule (storage/names.py, which imports nothing heavy)."""
    try:
        check_tape_name(name)
    except InvalidTapeName:
        return False
    return True


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def tape_name_for(nodeid: str) -> str:
    """A tape name for a test, stable across runs and machines: the node id with `/` and
    `::` as dots (`tests/test_app.py::test_login` -> `tests.test_app.test_login`); a node
    id that does not fit the tape-name rule as it is (parameters, long names) is cleaned
    and gets a short hash of itself, so that two tests never share a name by accident."""
    plain = nodeid.replace(".py::", "::").replace("/", ".").replace("::", ".")
    if valid_tape_name(plain):
        return plain
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", plain)
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    cleaned = re.sub(r"[-.]*\.[-.]*", ".", cleaned)  # no "-." runs that read as one
    cleaned = cleaned.strip(".-_")[:_SHORT].rstrip(".-_") or "test"
    return f"{cleaned}-{_digest(nodeid)}"


def _file_part(text: str) -> str:
    cleaned = _UNSAFE_FILE.sub("_", text).strip(" .") or "_"
    if len(cleaned) > 150:
        cleaned = f"{cleaned[:140]}-{_digest(text)}"
    return cleaned


def tape_file_for(nodeid: str, module: Path, tapes_dir: Path, rootdir: Path) -> Path:
    """`<tapes dir>/<module path>/<test name>.har`. The module path is taken relative to the
    folder that holds the tapes folder when the module lives there (tests/test_app.py and
    tests/tapes -> `tests/tapes/test_app/`), else relative to the root directory."""
    base = tapes_dir.parent
    try:
        relative = module.relative_to(base)
    except ValueError:
        try:
            relative = module.relative_to(rootdir)
        except ValueError:
            relative = Path(module.name)
    folder = tapes_dir.joinpath(*(_file_part(p) for p in relative.with_suffix("").parts))
    test = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    return folder / f"{_file_part(test.replace('::', '.'))}.har"


def shared_tape_file(name: str, tapes_dir: Path) -> Path:
    return tapes_dir / f"{name}.har"


@dataclass(frozen=True, slots=True)
class MarkerOptions:
    """`@pytest.mark.wiretape(...)` options of a test, the closest marker winning per key
    (a function's marker over its class's over its module's `pytestmark`)."""

    tape: str | None = None
    matching: Mapping[str, Any] = field(default_factory=dict)
    redact: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        isinstance(v, str) and v for v in value
    ):
        raise MarkerError(f"wiretape marker: {key} must be a list of non-empty strings")
    return tuple(value)


def marker_options(markers: Iterable[Any]) -> MarkerOptions:
    """Merge the `wiretape` markers of a test, closest first (as `item.iter_markers` gives
    them). Raises MarkerError naming the bad option."""
    merged: dict[str, Any] = {}
    for mark in markers:
        if mark.args:
            if len(mark.args) > 1 or not isinstance(mark.args[0], str):
                raise MarkerError("wiretape marker: the only positional argument is the tape "
                                  "name, e.g. @pytest.mark.wiretape('payments')")
            merged.setdefault("tape", mark.args[0])
        for key, value in mark.kwargs.items():
            if key not in MARKER_KEYS:
                raise MarkerError(f"wiretape marker: unknown option {key!r} (options: "
                                  + ", ".join(MARKER_KEYS) + ")")
            merged.setdefault(key, value)
    tape = merged.get("tape")
    if tape is not None and (not isinstance(tape, str) or not valid_tape_name(tape)):
        raise MarkerError(
            f"wiretape marker: tape {tape!r} must be 1-200 letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    matching: dict[str, Any] = {}
    for key in MATCHING_KEYS:
        if key not in merged:
            continue
        if key == "ignore_host":
            if not isinstance(merged[key], bool):
                raise MarkerError("wiretape marker: ignore_host must be True or False")
            matching[key] = merged[key]
        else:
            matching[key] = list(_names(key, merged[key]))
    redact = {key: _names(key, merged[key]) for key in REDACT_KEYS if key in merged}
    return MarkerOptions(tape=tape, matching=matching, redact=redact)
