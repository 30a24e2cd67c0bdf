"""Texts for people: a miss explained in a test's report, and the session's summary."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any


def plain_nodeid(nodeid: str) -> str:
    """A test's id without the `@group` xdist adds under loadgroup (as pytest takes it)."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") and at > nodeid.rfind("::") else nodeid


def rerecord_hint(nodeid: str) -> str:
    quoted = shlex.quote(plain_nodeid(nodeid))
    return (f"record what is missing:  pytest --wiretape=once {quoted}\n"
            f"record the test afresh:  pytest --wiretape=record {quoted}")


def _request(miss: Mapping[str, Any]) -> str:
    req = miss.get("request") or {}
    return f"{req.get('method', '?')} {req.get('url', '?')}"


def explain_misses(misses: Sequence[Mapping[str, Any]], *, tape: str, file: str,
                   file_existed: bool, nodeid: str) -> str:
    """What a failing test's report shows: each request that missed, the closest recordings
    of the tape and what differs (the same words as the proxy's 502 body)."""
    n = len(misses)
    lines = [f"wiretape: {n} request{'s' if n != 1 else ''} did not match any recording of "
             f"tape {tape} ({file})"]
    if not file_existed:
        lines.append("the tape file does not exist: this test was never recorded")
    for miss in misses:
        lines.append("")
        lines.append(f"  {_request(miss)}")
        closest = miss.get("closest") or []
        if not closest:
            lines.append("    the tape holds no recording to compare it with")
            continue
        lines.append("    closest recordings:")
        for c in closest:
            lines.append(f"      {c.get('url')}")
            for d in c.get("differences") or ["(the same request: every recording of it "
                                              "was already served, see --sequence)"]:
                lines.append(f"        - {d}")
    lines.append("")
    lines.append(rerecord_hint(nodeid))
    return "\n".join(lines)


def summary_lines(missed: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """The terminal summary's list: per test, the requests that missed."""
    total = sum(len(v) for v in missed.values())
    lines = [f"{total} request{'s' if total != 1 else ''} matched no recording, "
             f"in {len(missed)} test{'s' if len(missed) != 1 else ''}:"]
    for nodeid, misses in missed.items():
        lines.append(plain_nodeid(nodeid))
        for miss in misses:
            closest = miss.get("closest") or []
            why = ""
            if closest and closest[0].get("differences"):
                why = f"  ({'; '.join(closest[0]['differences'][:2])})"
            lines.append(f"  {_request(miss)}{why}")
    lines.append("")
    if len(missed) == 1:
        lines.extend(rerecord_hint(next(iter(missed))).splitlines())
    else:
        lines.append("record what is missing:  pytest --wiretape=once " + " ".join(
            shlex.quote(n) for n in list(missed)[:5]) + (" ..." if len(missed) > 5 else ""))
    return lines


def drift_text(result: Mapping[str, Any]) -> str:
    return str(result.get("text") or "").rstrip("\n")
