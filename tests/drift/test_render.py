"""The text and JUnit reports of tape diffs and audits."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from wiretape.drift.classify import classify
from wiretape.drift.render import (
    AuditCase,
    render_audit_junit,
    render_audit_text,
    render_junit,
    render_text,
)
from wiretape.drift.tapes import diff_tapes

from tests.drift.factories import item, make_exchange


def _small_tape_diff() -> Any:
    a = [item("k-price-0000000", 2, target="/price", body={"price": 10}),
         item("k-gone", 3, target="/gone"), item("k-same", 1, target="/same")]
    b = [item("k-price-0000000", 12, target="/price", status=500, body={"price": 12},
               duration_ms=30.0),
         item("k-new", 15, target="/new"), item("k-same", 11, target="/same")]
    return diff_tapes(a, b)


def test_render_text() -> None:
    assert render_text(_small_tape_diff()) == """\
1 changed, 1 added, 1 removed, 1 unchanged
error rate: A 0.0% (0/3), B 33.3% (1/3)

changed:
  GET api.example.com/price  key k-price-0000 #0  recording 2 -> 12
    ~ response.status: 200 -> 500
    ~ response.body.price: 10 -> 12

added (only in B):
  GET api.example.com/new  key k-new #0  recording 15  200

removed (only in A):
  GET api.example.com/gone  key k-gone #0  recording 3  200

status class changes:
  GET api.example.com/price  key k-price-0000 #0  2xx -> 5xx

latency ms (p50 / p95):
  GET api.example.com/gone  A 10.0 / 10.0  B - / -  change - / -
  GET api.example.com/new  A - / -  B 10.0 / 10.0  change - / -
  GET api.example.com/price  A 10.0 / 10.0  B 30.0 / 30.0  change +20.0 / +20.0
  GET api.example.com/same  A 10.0 / 10.0  B 10.0 / 10.0  change +0.0 / +0.0
"""


def test_render_junit_is_valid_xml_with_failures() -> None:
    xml = render_junit(_small_tape_diff(), "baseline vs branch")
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == (
        "baseline vs branch", "4", "2")
    cases = {str(c.get("name")): c for c in suite.iter("testcase")}
    assert sorted(cases) == [
        "GET api.example.com/gone [k-gone#0]",
        "GET api.example.com/new [k-new#0]",
        "GET api.example.com/price [k-price-0000#0]",
        "GET api.example.com/same [k-same#0]",
    ]
    changed = cases["GET api.example.com/price [k-price-0000#0]"].find("failure")
    assert changed is not None and changed.get("type") == "changed"
    assert changed.text == "~ response.status: 200 -> 500\n~ response.body.price: 10 -> 12"
    removed = cases["GET api.example.com/gone [k-gone#0]"].find("failure")
    assert removed is not None and removed.get("type") == "removed"
    assert cases["GET api.example.com/same [k-same#0]"].find("failure") is None
    assert cases["GET api.example.com/new [k-new#0]"].find("failure") is None


def test_render_junit_survives_control_characters() -> None:
    text = (("Content-Type", "text/plain"),)
    a = [item("k", 1, headers=text, body=b"line\x01one\n")]
    b = [item("k", 2, headers=text, body=b"line\x02two\n")]
    root = ET.fromstring(render_junit(diff_tapes(a, b)))
    assert root.get("failures") == "1"


def test_audit_renderers() -> None:
    rec = make_exchange(body={"a": 1, "b": 1})
    cases = [
        AuditCase(1, "GET api.example.com/items", "https://api.example.com/items",
                  tuple(classify(rec, make_exchange(body={"a": 2})))),
        AuditCase(2, "GET api.example.com/ok", "https://api.example.com/ok", ()),
        AuditCase(3, "GET api.example.com/v", "https://api.example.com/v",
                  tuple(classify(rec, make_exchange(body={"a": 1, "b": 2})))),
    ]
    assert render_audit_text(cases) == """\
3 recordings audited, 2 drifted, 1 at or above breaking
breaking: 1, additive: 0, value: 2, latency: 0

GET api.example.com/items  recording 1  https://api.example.com/items
  breaking: field response.body.b removed (was 1)
  value: response.body.a changed: 1 -> 2

GET api.example.com/v  recording 3  https://api.example.com/v
  value: response.body.b changed: 1 -> 2
"""
    root = ET.fromstring(render_audit_junit(cases, "audit default"))
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert failed == ["GET api.example.com/items [recording 1]"]
    assert ET.fromstring(render_audit_junit(cases, fail_on="value")).get("failures") == "2"
    assert cases[0].to_dict()["worst"] == "breaking"
