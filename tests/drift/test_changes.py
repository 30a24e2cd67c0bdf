"""Exchange diffs: what changed, part by part, with exact paths."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import replace
from typing import Any

import brotli
import pytest
from wiretape.drift.changes import diff_exchanges
from wiretape.storage.exchange import BigBody, Failure, FailureKind

from tests.drift.factories import JSON, changes, make_exchange


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


# -- streams and big bodies ------------------------------------------------------------------

SSE = (("Content-Type", "text/event-stream; charset=utf-8"),)


def test_an_event_stream_is_compared_event_by_event_and_field_by_field() -> None:
    a = make_exchange(headers=SSE, body=(
        b': keep-alive\n\nid: 1\nevent: delta\ndata: {"text": "Hel", "n": 1}\n\n'
        b'data: first line\ndata: second line\n\nretry: 3000\ndata: [DONE]\n\n'))
    b = make_exchange(headers=SSE, body=(
        b'id: 1\r\nevent: delta\r\ndata: {"text": "Hello", "n": 1}\r\n\r\n'
        b'data: first line\ndata: second line\n\nretry: 3000\ndata: [DONE]\n\n'
        b'data: {"partial": tr'))  # a stream stored before its end keeps its last piece
    assert changes(a, b) == [
        {"path": "response.body[0].data.text", "kind": "value_changed", "old": "Hel",
         "new": "Hello"},
        {"path": "response.body[3]", "kind": "added", "old": None,
         "new": {"data": '{"partial": tr'}},
    ]
    # comments, line endings and how the events were cut into chunks make no difference
    same = make_exchange(headers=SSE, body=(
        b'id: 1\nevent: delta\ndata: {"n": 1, "text": "Hel"}\n\n'
        b'data: first line\ndata: second line\n\n: ping\n\nretry: 3000\ndata: [DONE]\n\n'))
    assert changes(a, same) == []


def test_bodies_too_big_to_hold_are_compared_by_digest() -> None:
    big = BigBody(10_000_000, "ab" * 32)
    a = make_exchange(body=b"")
    a = a.with_(response=replace(a.response, big=big))
    assert changes(a, a) == []
    other = a.with_(response=replace(a.response, big=BigBody(10_000_000, "cd" * 32)))
    assert changes(a, other) == [{"path": "response.body", "kind": "value_changed",
                                  "old": "sha256:" + "ab" * 32, "new": "sha256:" + "cd" * 32}]
    # against a body held in memory (a live answer): the digest of its bytes as sent
    inline = make_exchange(body=b"x" * 10)
    assert changes(inline, a)[0]["old"] == "sha256:" + hashlib.sha256(b"x" * 10).hexdigest()
