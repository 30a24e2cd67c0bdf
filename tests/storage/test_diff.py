"""Exchange and tape diffs, noise, and drift classification (pure: no database, no proxy)."""

from __future__ import annotations

import gzip
import hashlib
import json
import xml.etree.ElementTree as ET
from typing import Any

import brotli
import pytest
from wiretape.storage.diff import (
    InvalidPath,
    NoiseMatcher,
    Wild,
    detect_noise,
    diff_exchanges,
    diff_tapes,
    format_path,
    parse_path,
    path_matches,
    percentile,
    render_junit,
    render_text,
)
from wiretape.storage.drift import (
    AuditCase,
    DriftClass,
    InvalidDriftClass,
    at_or_above,
    classify,
    render_audit_junit,
    render_audit_text,
)
from wiretape.storage.exchange import Exchange, Failure, FailureKind, Request, Response

JSON = (("Content-Type", "application/json"),)


def make_exchange(
    *,
    method: str = "GET",
    host: str = "api.example.com",
    target: str = "/items",
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = JSON,
    body: Any = None,
    failure: Failure | None = None,
    duration_ms: float = 10.0,
) -> Exchange:
    """An exchange; `body` may be bytes or anything JSON (default `{"items": []}`)."""
    if body is None:
        body = {"items": []}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(
        request=Request(method=method, scheme="https", host=host, port=443, target=target),
        response=None if failure else Response(status=status, headers=headers, body=raw),
        failure=failure,
        duration_ms=duration_ms,
    )


def changes(a: Exchange, b: Exchange, **kw: Any) -> list[dict[str, Any]]:
    return diff_exchanges(a, b, **kw).to_dict()["changes"]  # type: ignore[no-any-return]


# -- diff_exchanges -----------------------------------------------------------------------


def test_identical_exchanges() -> None:
    a = make_exchange(body={"items": [{"id": 1}]})
    d = diff_exchanges(a, make_exchange(body={"items": [{"id": 1}]}))
    assert d.identical is True
    assert d.to_dict() == {"identical": True, "changes": [], "ignored": 0}


def test_json_fields_added_removed_value_and_type_changes_with_exact_paths() -> None:
    a = make_exchange(body={"items": [{"id": 1, "price": 10, "name": "a"}], "count": 1,
                            "meta": {"page": 1}})
    b = make_exchange(body={"meta": {"page": 1}, "count": "1",
                            "items": [{"id": 1, "price": 12, "currency": "EUR"}]})
    d = diff_exchanges(a, b)
    assert d.identical is False
    assert d.to_dict()["changes"] == [
        {"path": "response.body.count", "kind": "type_changed", "old": 1, "new": "1"},
        {"path": "response.body.items[0].currency", "kind": "added", "old": None, "new": "EUR"},
        {"path": "response.body.items[0].name", "kind": "removed", "old": "a", "new": None},
        {"path": "response.body.items[0].price", "kind": "value_changed", "old": 10, "new": 12},
    ]


def test_json_list_items_and_numbers() -> None:
    a = make_exchange(body={"ids": [1, 2, 3], "n": 1, "flag": 1, "x": None})
    b = make_exchange(body={"ids": [1, 2, 3, 4], "n": 1.0, "flag": True, "x": {"y": 1}})
    assert changes(a, b) == [
        {"path": "response.body.flag", "kind": "type_changed", "old": 1, "new": True},
        {"path": "response.body.ids[3]", "kind": "added", "old": None, "new": 4},
        {"path": "response.body.x", "kind": "type_changed", "old": None, "new": {"y": 1}},
    ]  # 1 and 1.0 are one JSON number; true is not 1


def test_json_keys_that_are_not_identifiers_are_quoted_and_nested_dicts_go_deep() -> None:
    a = make_exchange(body={"a.b": 1, "it's": 1, "__private": 1, "m": {"old": 1}})
    b = make_exchange(body={"a.b": 2, "it's": 2, "__private": 2, "m": {"new": 1}})
    assert [c["path"] for c in changes(a, b)] == [
        "response.body.__private",
        "response.body['a.b']",
        'response.body["it\'s"]',
        "response.body.m.new",
        "response.body.m.old",
    ]


def test_root_json_list_and_order_is_deterministic() -> None:
    a = make_exchange(body=[{"v": i} for i in range(12)])
    b = make_exchange(body=[{"v": i if i not in (2, 10) else -1} for i in range(12)])
    first = changes(a, b)
    assert [c["path"] for c in first] == ["response.body[2].v", "response.body[10].v"]
    assert changes(a, b) == first


def test_headers_case_insensitive_and_ignored_headers() -> None:
    a = make_exchange(headers=(
        ("Content-Type", "application/json"), ("X-Trace", "1"), ("ETag", '"v1"'),
        ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Content-Length", "14"),
        ("Connection", "keep-alive, X-Hop"), ("X-Hop", "a"), ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"), ("Old", "x"),
    ))
    b = make_exchange(headers=(
        ("content-type", "application/json"), ("x-trace", "2"), ("etag", '"v1"'),
        ("date", "Tue, 02 Jan 2024 00:00:00 GMT"), ("content-length", "99"),
        ("X-Hop", "b"), ("Wiretape-Recording", "17"), ("Proxy-Authenticate", "Basic"),
        ("X-New", "y"),
    ))
    assert changes(a, b) == [
        {"path": "response.headers.old", "kind": "removed", "old": "x", "new": None},
        {"path": "response.headers.x-new", "kind": "added", "old": None, "new": "y"},
        {"path": "response.headers.x-trace", "kind": "value_changed", "old": "1", "new": "2"},
    ]


def test_repeated_header_values_are_joined() -> None:
    a = make_exchange(headers=(*JSON, ("Vary", "Accept"), ("Vary", "Origin")))
    b = make_exchange(headers=(*JSON, ("Vary", "Accept")))
    assert changes(a, b) == [{"path": "response.headers.vary", "kind": "value_changed",
                              "old": "Accept, Origin", "new": "Accept"}]


def test_status_change() -> None:
    assert changes(make_exchange(status=200), make_exchange(status=201)) == [
        {"path": "response.status", "kind": "value_changed", "old": 200, "new": 201}
    ]


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress),
                                               ("br", brotli.compress)])
def test_compressed_body_equals_plain_body_with_same_json(encoding: str, compress: Any) -> None:
    doc = {"items": [{"id": 1, "price": 10}]}
    plain = make_exchange(body=json.dumps(doc).encode())
    packed = make_exchange(
        headers=(*JSON, ("Content-Encoding", encoding)),
        body=compress(json.dumps(doc, indent=2).encode()),
    )
    assert diff_exchanges(plain, packed).to_dict() == {"identical": True, "changes": [],
                                                       "ignored": 0}
    changed = make_exchange(headers=(*JSON, ("Content-Encoding", encoding)),
                            body=compress(b'{"items": [{"id": 1, "price": 11}]}'))
    assert changes(plain, changed) == [{"path": "response.body.items[0].price",
                                        "kind": "value_changed", "old": 10, "new": 11}]


def test_text_bodies_by_line() -> None:
    text = (("Content-Type", "text/plain"),)
    a = make_exchange(headers=text, body=b"alpha\nbeta\ngamma\nomega\n")
    b = make_exchange(headers=text, body=b"alpha\nBETA\ngamma\nomega\nextra\n")
    assert changes(a, b) == [
        {"path": "response.body[2]", "kind": "value_changed", "old": "beta\n", "new": "BETA\n"},
        {"path": "response.body[5]", "kind": "added", "old": None, "new": "extra\n"},
    ]
    c = make_exchange(headers=text, body=b"alpha\ngamma\nomega\n")
    assert changes(a, c) == [
        {"path": "response.body[2]", "kind": "removed", "old": "beta\n", "new": None},
    ]


def test_binary_bodies_by_digest() -> None:
    png = (("Content-Type", "image/png"),)
    one, two = b"\x89PNG\r\n\x1a\n\x00\xff\xfe", b"\x89PNG\r\n\x1a\n\x00\xff\xfd"
    assert diff_exchanges(make_exchange(headers=png, body=one),
                          make_exchange(headers=png, body=one)).identical
    assert changes(make_exchange(headers=png, body=one), make_exchange(headers=png, body=two)) == [
        {"path": "response.body", "kind": "value_changed",
         "old": "sha256:" + hashlib.sha256(one).hexdigest(),
         "new": "sha256:" + hashlib.sha256(two).hexdigest()},
    ]


def test_body_kind_changes_and_empty_bodies() -> None:
    a = make_exchange(body={"ok": True})
    html = make_exchange(headers=(("Content-Type", "text/html"),), body=b"<h1>oops</h1>")
    assert changes(a, html) == [
        {"path": "response.headers.content-type", "kind": "value_changed",
         "old": "application/json", "new": "text/html"},
        {"path": "response.body", "kind": "type_changed", "old": {"ok": True},
         "new": "<h1>oops</h1>"},
    ]
    empty = make_exchange(status=204, body=b"")
    assert changes(empty, a) == [
        {"path": "response.status", "kind": "value_changed", "old": 204, "new": 200},
        {"path": "response.body", "kind": "added", "old": None, "new": {"ok": True}},
    ]


def test_failures() -> None:
    ok = make_exchange()
    refused = make_exchange(failure=Failure(FailureKind.REFUSED, "connection refused"))
    timeout = make_exchange(failure=Failure(FailureKind.TIMEOUT, "read timed out"))
    assert changes(ok, refused) == [
        {"path": "response.status", "kind": "removed", "old": 200, "new": None},
        {"path": "response.failure", "kind": "added", "old": None,
         "new": {"kind": "refused", "message": "connection refused"}},
    ]
    assert changes(refused, ok) == [
        {"path": "response.status", "kind": "added", "old": None, "new": 200},
        {"path": "response.failure", "kind": "removed",
         "old": {"kind": "refused", "message": "connection refused"}, "new": None},
    ]
    assert changes(refused, timeout) == [
        {"path": "response.failure.kind", "kind": "value_changed", "old": "refused",
         "new": "timeout"},
        {"path": "response.failure.message", "kind": "value_changed",
         "old": "connection refused", "new": "read timed out"},
    ]
    assert diff_exchanges(refused, refused).identical


def test_include_request() -> None:
    a = make_exchange(target="/items?page=1")
    b = make_exchange(target="/items?page=2")
    assert diff_exchanges(a, b).identical
    assert changes(a, b, include_request=True) == [
        {"path": "request.url", "kind": "value_changed",
         "old": "https://api.example.com/items?page=1",
         "new": "https://api.example.com/items?page=2"},
    ]


# -- paths and noise patterns -------------------------------------------------------------


def test_paths_parse_and_format() -> None:
    assert parse_path("response.body.items[*].updated_at") == (
        "response", "body", "items", Wild.INDEX, "updated_at")
    assert parse_path("response.headers.X-Request-Id") == ("response", "headers", "x-request-id")
    assert parse_path("$.items[0].id") == ("response", "body", "items", 0, "id")
    assert parse_path("response.body.*.id") == ("response", "body", Wild.KEY, "id")
    for tokens in [("response", "body", "a.b", 0, "it's", "", "x y", "$ref", "*")]:
        assert parse_path(format_path(tokens)) == tokens
    for bad in ["", "response.body[", "response..x", "response.body[x]", "9lives"]:
        with pytest.raises(InvalidPath):
            parse_path(bad)


def test_noise_matcher() -> None:
    noise = NoiseMatcher.compile(["response.body.items[*].updated_at",
                                  "response.headers.X-Request-Id", "$.meta"])
    assert noise("response.body.items[12].updated_at")
    assert noise("response.headers.x-request-id")
    assert noise("response.body.meta.trace.id")  # a pattern covers what is below it
    assert not noise("response.body.items[12].price")
    assert not noise("response.body.items.updated_at")  # [*] is an index, not a key
    assert not noise("response.body.metadata")
    assert path_matches("response.body.a.b", "response.body.*.b")
    assert not path_matches("response.body", "response.body.x")
    with pytest.raises(InvalidPath):
        NoiseMatcher.compile(["response.body[oops]"])


def _noisy(i: int, price: int = 10) -> Exchange:
    return make_exchange(
        headers=(*JSON, ("X-Request-Id", f"req-{i}")),
        body={"timestamp": f"2024-01-0{i}T00:00:00Z", "request_id": f"r{i}",
              "items": [{"id": 1, "price": price, "seen_at": i}, {"id": 2, "price": 5,
                                                                  "seen_at": i}]},
    )


def test_detect_noise_from_three_recordings_and_diff_leaves_it_out_unless_strict() -> None:
    noise = detect_noise([_noisy(1), _noisy(2), _noisy(3)])
    assert noise == {"response.body.timestamp", "response.body.request_id",
                     "response.body.items[*].seen_at", "response.headers.x-request-id"}
    assert detect_noise([_noisy(1)]) == set()

    d = diff_exchanges(_noisy(1), _noisy(4, price=12), noise)
    assert d.to_dict() == {
        "identical": False,
        "changes": [{"path": "response.body.items[0].price", "kind": "value_changed",
                     "old": 10, "new": 12}],
        "ignored": 5,
    }
    assert diff_exchanges(_noisy(1), _noisy(4), noise).identical
    strict = diff_exchanges(_noisy(1), _noisy(4, price=12), noise, strict=True)
    assert [c.path for c in strict.changes] == [
        "response.headers.x-request-id",
        "response.body.items[0].price",
        "response.body.items[0].seen_at",
        "response.body.items[1].seen_at",
        "response.body.request_id",
        "response.body.timestamp",
    ]


def test_status_and_failures_are_never_noise() -> None:
    exchanges = [make_exchange(status=200), make_exchange(status=503),
                 make_exchange(failure=Failure(FailureKind.RESET, "reset"))]
    assert detect_noise(exchanges) == set()


def test_text_noise_keeps_its_line_number() -> None:
    text = (("Content-Type", "text/plain"),)
    noise = detect_noise([make_exchange(headers=text, body=b"report\ngenerated 1\nok\n"),
                          make_exchange(headers=text, body=b"report\ngenerated 2\nok\n")])
    assert noise == {"response.body[2]"}


# -- tapes --------------------------------------------------------------------------------


def _item(key: str, rid: int, **kw: Any) -> tuple[str, int, Exchange]:
    return (key, rid, make_exchange(**kw))


def test_diff_tapes_added_removed_changed_unchanged_and_status_class() -> None:
    a = [
        _item("k-same", 1, target="/same"),
        _item("k-price", 2, target="/price", body={"price": 10}),
        _item("k-gone", 3, target="/gone"),
        _item("k-pay", 4, target="/pay", method="POST", body={"state": "ok"}),
    ]
    b = [
        _item("k-pay", 14, target="/pay", method="POST", status=503, body={"error": "down"}),
        _item("k-new", 15, target="/new"),
        _item("k-price", 12, target="/price", body={"price": 12}),
        _item("k-same", 11, target="/same"),
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
    a = [_item("k", 1, body={"state": "pending"}), _item("k", 2, body={"state": "done"})]
    b = [_item("k", 11, body={"state": "pending"})]
    result = diff_tapes(a, b, auto_noise=False)
    assert result.unchanged == 1
    assert [(e.match_key, e.seq, e.id) for e in result.removed] == [("k", 1, 2)]
    assert diff_tapes(a, a).identical


def test_diff_tapes_noise_detected_in_one_key_covers_its_endpoint() -> None:
    a = [_item("k1", 1, target="/items?page=1", body={"at": 1, "page": 1}),
         _item("k1", 2, target="/items?page=1", body={"at": 2, "page": 1}),
         _item("k2", 3, target="/items?page=2", body={"at": 3, "page": 2})]
    b = [_item("k1", 11, target="/items?page=1", body={"at": 7, "page": 1}),
         _item("k1", 12, target="/items?page=1", body={"at": 8, "page": 1}),
         _item("k2", 13, target="/items?page=2", body={"at": 9, "page": 2})]
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
    a = [_item(f"p{i}", i, target=f"/items?page={i}", duration_ms=d)
         for i, d in enumerate([40.0, 10.0, 30.0, 20.0])]
    a.append(_item("slow", 9, target="/slow", duration_ms=5000.0,
                   failure=Failure(FailureKind.TIMEOUT, "timed out")))
    b = [_item("p0", 10, target="/items?page=0", duration_ms=100.0)]
    lat = diff_tapes(a, b).to_dict()["latency"]
    assert lat == [
        {"endpoint": "GET api.example.com/items", "a": {"count": 4, "p50": 25.0, "p95": 38.5},
         "b": {"count": 1, "p50": 100.0, "p95": 100.0}, "p50_change": 75.0,
         "p95_change": 61.5},
        {"endpoint": "GET api.example.com/slow", "a": {"count": 0, "p50": None, "p95": None},
         "b": {"count": 0, "p50": None, "p95": None}, "p50_change": None,
         "p95_change": None},
    ]


def _small_tape_diff() -> Any:
    a = [_item("k-price-0000000", 2, target="/price", body={"price": 10}),
         _item("k-gone", 3, target="/gone"), _item("k-same", 1, target="/same")]
    b = [_item("k-price-0000000", 12, target="/price", status=500, body={"price": 12},
               duration_ms=30.0),
         _item("k-new", 15, target="/new"), _item("k-same", 11, target="/same")]
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
    a = [_item("k", 1, headers=text, body=b"line\x01one\n")]
    b = [_item("k", 2, headers=text, body=b"line\x02two\n")]
    root = ET.fromstring(render_junit(diff_tapes(a, b)))
    assert root.get("failures") == "1"


# -- drift classification -----------------------------------------------------------------


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
