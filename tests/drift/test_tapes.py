"""Tape diffs: pairs by match key and seq, latency, error rates, noise."""

from __future__ import annotations

import json

from wiretape.drift.tapes import diff_tapes, percentile
from wiretape.storage.exchange import Failure, FailureKind

from tests.drift.factories import item


def test_diff_tapes_added_removed_changed_unchanged_and_status_class() -> None:
    a = [
        item("k-same", 1, target="/same"),
        item("k-price", 2, target="/price", body={"price": 10}),
        item("k-gone", 3, target="/gone"),
        item("k-pay", 4, target="/pay", method="POST", body={"state": "ok"}),
    ]
    b = [
        item("k-pay", 14, target="/pay", method="POST", status=503, body={"error": "down"}),
        item("k-new", 15, target="/new"),
        item("k-price", 12, target="/price", body={"price": 12}),
        item("k-same", 11, target="/same"),
    ]
    result = diff_tapes(a, b)
    out = result.to_dict()
    assert out["identical"] is False
    assert out["unchanged"] == 1
    assert out["added"] == [{"match_key": "k-new", "seq": 0, "id": 15,
                             "endpoint": "GET api.example.com/new",
                             "url": "https://api.example.com/new", "status": 200,
                             "failure": None}]
    assert [(e["match_key"], e["id"]) for e in out["removed"]] == [("k-gone", 3)]
    assert [(c["endpoint"], c["a_id"], c["b_id"], c["changes"]) for c in out["changed"]] == [
        ("GET api.example.com/price", 2, 12,
         [{"path": "response.body.price", "kind": "value_changed", "old": 10, "new": 12}]),
        ("POST api.example.com/pay", 4, 14,
         [{"path": "response.status", "kind": "value_changed", "old": 200, "new": 503},
          {"path": "response.body.error", "kind": "added", "old": None, "new": "down"},
          {"path": "response.body.state", "kind": "removed", "old": "ok", "new": None}]),
    ]
    assert out["status_class_changes"] == [
        {"match_key": "k-pay", "seq": 0, "endpoint": "POST api.example.com/pay", "a_id": 4,
         "b_id": 14, "from": "2xx", "to": "5xx"},
    ]
    assert out["error_rate"] == {"a": {"total": 4, "errors": 0, "rate": 0.0},
                                 "b": {"total": 4, "errors": 1, "rate": 0.25}, "change": 0.25}
    json.dumps(out)  # serialisable as is


def test_diff_tapes_pairs_by_seq_within_a_key() -> None:
    a = [item("k", 1, body={"state": "pending"}), item("k", 2, body={"state": "done"})]
    b = [item("k", 11, body={"state": "pending"})]
    result = diff_tapes(a, b, auto_noise=False)
    assert result.unchanged == 1
    assert [(e.match_key, e.seq, e.id) for e in result.removed] == [("k", 1, 2)]
    assert diff_tapes(a, a).identical


def test_diff_tapes_noise_detected_in_one_key_covers_its_endpoint() -> None:
    a = [item("k1", 1, target="/items?page=1", body={"at": 1, "page": 1}),
         item("k1", 2, target="/items?page=1", body={"at": 2, "page": 1}),
         item("k2", 3, target="/items?page=2", body={"at": 3, "page": 2})]
    b = [item("k1", 11, target="/items?page=1", body={"at": 7, "page": 1}),
         item("k1", 12, target="/items?page=1", body={"at": 8, "page": 1}),
         item("k2", 13, target="/items?page=2", body={"at": 9, "page": 2})]
    result = diff_tapes(a, b)
    assert result.identical
    assert result.to_dict()["noise"] == {
        "given": [], "detected": {"GET api.example.com/items": ["response.body.at"]}}
    strict = diff_tapes(a, b, strict=True)
    assert len(strict.changed) == 3
    assert diff_tapes(a, b, auto_noise=False).unchanged == 0
    assert diff_tapes(a, b, noise=["$.at"], auto_noise=False).identical


def test_latency_percentiles_per_endpoint() -> None:
    assert percentile([10, 20, 30, 40], 0.5) == 25.0
    assert percentile([10, 20, 30, 40], 0.95) == 38.5
    assert percentile([7], 0.95) == 7
    assert percentile([], 0.5) is None
    a = [item(f"p{i}", i, target=f"/items?page={i}", duration_ms=d)
         for i, d in enumerate([40.0, 10.0, 30.0, 20.0])]
    a.append(item("slow", 9, target="/slow", duration_ms=5000.0,
                   failure=Failure(FailureKind.TIMEOUT, "timed out")))
    b = [item("p0", 10, target="/items?page=0", duration_ms=100.0)]
    lat = diff_tapes(a, b).to_dict()["latency"]
    assert lat == [
        {"endpoint": "GET api.example.com/items", "a": {"count": 4, "p50": 25.0, "p95": 38.5},
         "b": {"count": 1, "p50": 100.0, "p95": 100.0}, "p50_change": 75.0,
         "p95_change": 61.5},
        {"endpoint": "GET api.example.com/slow", "a": {"count": 0, "p50": None, "p95": None},
         "b": {"count": 0, "p50": None, "p95": None}, "p50_change": None,
         "p95_change": None},
    ]


def test_endpoint_noise_is_applied_pair_by_pair() -> None:
    a = [item("k", 1, target="/x", body={"v": 1, "ts": 1}),
         item("j", 2, target="/y", body={"ts": 1})]
    b = [item("k", 3, target="/x", body={"v": 2, "ts": 2}),
         item("j", 4, target="/y", body={"ts": 2})]
    result = diff_tapes(a, b).with_endpoint_noise({"GET api.example.com/x": ["response.body.ts"]})
    changed = {p.url: [c.path for c in p.diff.changes] for p in result.changed}
    assert changed == {"https://api.example.com/x": ["response.body.v"],
                       "https://api.example.com/y": ["response.body.ts"]}
    assert dict(result.noise_detected) == {"GET api.example.com/x": ("response.body.ts",)}
