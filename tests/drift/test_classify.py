"""Drift classification: breaking, additive, value, latency."""

from __future__ import annotations

from typing import Any

import pytest
from wiretape.drift.classify import at_or_above, classify
from wiretape.drift.kinds import DriftClass, InvalidDriftClass
from wiretape.storage.exchange import Exchange, Failure, FailureKind

from tests.drift.factories import JSON, make_exchange


def _findings(recorded: Exchange, live: Exchange, **kw: Any) -> list[tuple[str, str]]:
    return [(str(f.drift_class), f.path) for f in classify(recorded, live, **kw)]


def test_classify_json_changes() -> None:
    rec = make_exchange(body={"id": 1, "name": "a", "price": 10, "tags": ["x"], "note": None,
                              "count": 3})
    live = make_exchange(body={"id": 1, "price": 11, "tags": ["x", "y"], "note": "hi",
                               "count": "3", "extra": True})
    assert _findings(rec, live) == [
        ("breaking", "response.body.count"),  # type changed
        ("breaking", "response.body.name"),  # field removed
        ("additive", "response.body.extra"),
        ("value", "response.body.note"),  # null -> value: consumers already handle null
        ("value", "response.body.price"),
        ("value", "response.body.tags[1]"),  # a list item, not a field
    ]
    f = classify(rec, live)[0]
    assert f.to_dict() == {"class": "breaking", "path": "response.body.count", "old": 3,
                           "new": "3", "message": "type of response.body.count changed: "
                                                  "number -> string"}


def test_classify_value_turning_null_is_breaking() -> None:
    assert _findings(make_exchange(body={"a": 1}), make_exchange(body={"a": None})) == [
        ("breaking", "response.body.a")]


def test_classify_status_headers_and_failures() -> None:
    rec = make_exchange(headers=(*JSON, ("ETag", "1"), ("X-Old", "o")))
    assert _findings(rec, make_exchange(status=503, headers=(*JSON, ("ETag", "2"),
                                                              ("X-New", "n")))) == [
        ("breaking", "response.status"),
        ("breaking", "response.headers.x-old"),
        ("additive", "response.headers.x-new"),
        ("value", "response.headers.etag"),
    ]
    assert _findings(make_exchange(status=200), make_exchange(status=201)) == [
        ("value", "response.status")]
    down = make_exchange(failure=Failure(FailureKind.REFUSED, "connection refused"))
    found = classify(make_exchange(), down)
    assert [(str(f.drift_class), f.path, f.message) for f in found] == [
        ("breaking", "response.failure",
         "live request failed (refused: connection refused) where the recording has status 200"),
    ]
    assert _findings(down, make_exchange()) == [("value", "response.failure")]
    assert _findings(make_exchange(body={"a": 1}),
                     make_exchange(headers=(("Content-Type", "text/html"),), body=b"<p>")) == [
        ("breaking", "response.headers.content-type"),
        ("breaking", "response.body"),
    ]
    assert _findings(make_exchange(headers=(("Content-Type", "application/json"),)),
                     make_exchange(headers=(("Content-Type", "application/json; charset=utf-8"),
                                            ))) == [("value", "response.headers.content-type")]


def test_classify_latency_is_lowest() -> None:
    rec = make_exchange(duration_ms=100.0, body={"a": 1})
    assert classify(rec, make_exchange(duration_ms=200.0, body={"a": 1})) == []
    found = classify(rec, make_exchange(duration_ms=250.0, body={"a": 2}))
    assert [(str(f.drift_class), f.path, f.old, f.new) for f in found] == [
        ("value", "response.body.a", 1, 2),
        ("latency", "duration_ms", 100.0, 250.0),
    ]
    assert found[1].message == "live took 250 ms, 2.5x the recorded 100 ms"
    # an unknown recorded duration (0) never counts as slow
    assert classify(make_exchange(duration_ms=0.0), make_exchange(duration_ms=50.0)) == []


def test_classify_leaves_noise_out_unless_strict() -> None:
    rec = make_exchange(body={"ts": 1, "a": 1})
    live = make_exchange(body={"ts": 2, "a": 1, "b": 2})
    assert _findings(rec, live, noise=["response.body.ts"]) == [
        ("additive", "response.body.b")]
    assert _findings(rec, live, noise=["response.body.ts"], strict=True) == [
        ("additive", "response.body.b"), ("value", "response.body.ts")]


def test_at_or_above() -> None:
    rec = make_exchange(body={"a": 1}, duration_ms=10.0)
    value_and_latency = classify(rec, make_exchange(body={"a": 2}, duration_ms=100.0))
    assert not at_or_above(value_and_latency, "breaking")
    assert not at_or_above(value_and_latency, "additive")
    assert at_or_above(value_and_latency, "value")
    assert at_or_above(value_and_latency, DriftClass.LATENCY)
    breaking = classify(rec, make_exchange(body={}))
    assert all(at_or_above(breaking, c) for c in DriftClass)
    assert not at_or_above([], "latency")
    with pytest.raises(InvalidDriftClass, match="breaking, additive, value or latency"):
        at_or_above([], "severe")
