"""Reports of tape diffs and audits: text to read at a glance, JUnit XML for CI."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .changes import Change, ChangeKind, short_value
from .classify import DriftFinding, at_or_above, worst
from .kinds import DriftClass, parse_drift_class
from .tapes import ErrorRate, TapeDiff

_SYMBOL = {ChangeKind.ADDED: "+", ChangeKind.REMOVED: "-", ChangeKind.VALUE_CHANGED: "~",
           ChangeKind.TYPE_CHANGED: "!"}


def change_line(c: Change) -> str:
    """`~ response.body.items[0].price: 10 -> 12` (+ added, - removed, ! type changed)."""
    if c.kind is ChangeKind.ADDED:
        detail = short_value(c.new)
    elif c.kind is ChangeKind.REMOVED:
        detail = short_value(c.old)
    else:
        detail = f"{short_value(c.old)} -> {short_value(c.new)}"
    return f"{_SYMBOL[c.kind]} {c.path}: {detail}"


def _ms(v: float | None, sign: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1f}" if sign else f"{v:.1f}"


def _rate(e: ErrorRate) -> str:
    return f"{e.rate * 100:.1f}% ({e.errors}/{e.total})"


def _key(endpoint: str, key: str, seq: int) -> str:
    return f"{endpoint}  key {key[:12]} #{seq}"


def render_text(result: TapeDiff) -> str:
    """A tape diff to read at a glance: counts first, then each difference."""
    lines = [
        f"{len(result.changed)} changed, {len(result.added)} added, "
        f"{len(result.removed)} removed, {result.unchanged} unchanged",
        f"error rate: A {_rate(result.error_rate_a)}, B {_rate(result.error_rate_b)}",
    ]
    if result.changed:
        lines += ["", "changed:"]
        for p in result.changed:
            lines.append(f"  {_key(p.endpoint, p.match_key, p.seq)}  "
                         f"recording {p.a_id} -> {p.b_id}")
            lines += [f"    {change_line(c)}" for c in p.diff.changes]
    for title, entries in (("added (only in B):", result.added),
                           ("removed (only in A):", result.removed)):
        if entries:
            lines += ["", title]
            for e in entries:
                outcome = e.failure if e.status is None else str(e.status)
                lines.append(f"  {_key(e.endpoint, e.match_key, e.seq)}  "
                             f"recording {e.id}  {outcome}")
    if result.status_class_changes:
        lines += ["", "status class changes:"]
        for p in result.status_class_changes:
            lines.append(f"  {_key(p.endpoint, p.match_key, p.seq)}  "
                         f"{p.a_status} -> {p.b_status}")
    if result.latency:
        lines += ["", "latency ms (p50 / p95):"]
        for s in result.latency:
            lines.append(f"  {s.endpoint}  A {_ms(s.a.p50)} / {_ms(s.a.p95)}  "
                         f"B {_ms(s.b.p50)} / {_ms(s.b.p95)}  "
                         f"change {_ms(s.p50_change, True)} / {_ms(s.p95_change, True)}")
    return "\n".join(lines) + "\n"


_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text with the characters XML 1.0 cannot hold (NUL, most controls) replaced."""
    return _XML_INVALID.sub("\ufffd", text)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_junit(result: TapeDiff, suite_name: str = "wiretape diff") -> str:
    """JUnit XML: one testcase per match key and seq; changed and removed ones fail."""
    cases: list[tuple[tuple[str, str, int], ET.Element]] = []

    def case(endpoint: str, key: str, seq: int) -> ET.Element:
        el = ET.Element("testcase", classname=xml_safe(suite_name),
                        name=xml_safe(f"{endpoint} [{key[:12]}#{seq}]"))
        cases.append(((endpoint, key, seq), el))
        return el

    failures = 0
    for p in result.pairs:
        el = case(p.endpoint, p.match_key, p.seq)
        if not p.diff.identical:
            failures += 1
            n = len(p.diff.changes)
            f = ET.SubElement(el, "failure", type="changed",
                              message=xml_safe(f"{n} change{'s' if n != 1 else ''} "
                                               f"(recording {p.a_id} -> {p.b_id})"))
            f.text = xml_safe("\n".join(change_line(c) for c in p.diff.changes))
    for e in result.removed:
        failures += 1
        el = case(e.endpoint, e.match_key, e.seq)
        ET.SubElement(el, "failure", type="removed",
                      message=xml_safe(f"only in A (recording {e.id}): {e.url}"))
    for e in result.added:
        el = case(e.endpoint, e.match_key, e.seq)
        ET.SubElement(el, "system-out").text = xml_safe(f"only in B (recording {e.id}): {e.url}")

    cases.sort(key=lambda c: c[0])
    attrs = {"name": xml_safe(suite_name), "tests": str(len(cases)),
             "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for name, value in (("error_rate_a", result.error_rate_a.rate),
                        ("error_rate_b", result.error_rate_b.rate)):
        ET.SubElement(props, "property", name=name, value=str(value))
    suite.extend(el for _, el in cases)
    return _xml(root)


# -- audits -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditCase:
    """One audited recording and what drifted."""

    recording_id: int
    endpoint: str
    url: str
    findings: tuple[DriftFinding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        w = worst(self.findings)
        return {"recording_id": self.recording_id, "endpoint": self.endpoint, "url": self.url,
                "worst": str(w) if w else None,
                "findings": [f.to_dict() for f in self.findings]}


def _finding_line(f: DriftFinding) -> str:
    return f"{f.drift_class}: {f.message}"


def render_audit_text(cases: Sequence[AuditCase],
                      fail_on: str | DriftClass = DriftClass.BREAKING) -> str:
    """Counts by class first, then each drifted recording with its findings."""
    threshold = parse_drift_class(fail_on)
    counts = {c: 0 for c in DriftClass}
    for case in cases:
        for f in case.findings:
            counts[f.drift_class] += 1
    drifted = [c for c in cases if c.findings]
    failing = sum(1 for c in cases if at_or_above(c.findings, threshold))
    lines = [
        f"{len(cases)} recordings audited, {len(drifted)} drifted, "
        f"{failing} at or above {threshold}",
        ", ".join(f"{cls}: {n}" for cls, n in counts.items()),
    ]
    for case in drifted:
        lines += ["", f"{case.endpoint}  recording {case.recording_id}  {case.url}"]
        lines += [f"  {_finding_line(f)}" for f in case.findings]
    return "\n".join(lines) + "\n"


def render_audit_junit(
    cases: Sequence[AuditCase], suite_name: str = "wiretape audit",
    fail_on: str | DriftClass = DriftClass.BREAKING,
) -> str:
    """JUnit XML: one testcase per recording; findings at or above `fail_on` fail it, the
    others are listed in its system-out."""
    threshold = parse_drift_class(fail_on)
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=xml_safe(suite_name))
    failures = 0
    for case in cases:
        el = ET.SubElement(suite, "testcase", classname=xml_safe(suite_name),
                           name=xml_safe(f"{case.endpoint} [recording {case.recording_id}]"))
        bad = [f for f in case.findings if f.drift_class.rank >= threshold.rank]
        rest = [f for f in case.findings if f.drift_class.rank < threshold.rank]
        if bad:
            failures += 1
            fl = ET.SubElement(el, "failure", type=str(worst(bad)),
                               message=xml_safe(f"{len(bad)} finding(s) at or above "
                                                f"{threshold}: {bad[0].message}"))
            fl.text = xml_safe("\n".join(_finding_line(f) for f in bad))
        if rest:
            ET.SubElement(el, "system-out").text = xml_safe(
                "\n".join(_finding_line(f) for f in rest)
            )
    for el in (root, suite):
        el.set("tests", str(len(cases)))
        el.set("failures", str(failures))
        el.set("errors", "0")
    root.set("name", xml_safe(suite_name))
    return _xml(root)
