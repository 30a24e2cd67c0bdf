"""HAR 1.2: exports follow the format's shape, imports give back the exact bytes."""

from __future__ import annotations

import base64
import gzip
import json

import brotli
import jsonschema_rs
import pytest
from wiretape.storage import har
from wiretape.storage.exchange import (
    Exchange,
    Failure,
    FailureKind,
    Request,
    Response,
    Stream,
    Truncation,
)

NS = 1_700_000_000_123_456_789

_PAIR = {"type": "object", "required": ["name", "value"],
         "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}
_PAIRS = {"type": "array", "items": _PAIR}
_ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"

# The HAR 1.2 format (http://www.softwareishard.com/blog/har-12-spec/): every field it calls
# required, with its type. Browsers' dev tools and HAR viewers read files of this shape.
HAR_12 = {
    "type": "object", "required": ["log"],
    "properties": {"log": {
        "type": "object", "required": ["version", "creator", "entries"],
        "properties": {
            "version": {"const": "1.2"},
            "creator": {"type": "object", "required": ["name", "version"],
                        "properties": {"name": {"type": "string"},
                                       "version": {"type": "string"}}},
            "entries": {"type": "array", "items": {
                "type": "object",
                "required": ["startedDateTime", "time", "request", "response", "cache",
                             "timings"],
                "properties": {
                    "startedDateTime": {"type": "string", "pattern": _ISO},
                    "time": {"type": "number", "minimum": 0},
                    "request": {
                        "type": "object",
                        "required": ["method", "url", "httpVersion", "cookies", "headers",
                                     "queryString", "headersSize", "bodySize"],
                        "properties": {
                            "method": {"type": "string"}, "url": {"type": "string"},
                            "httpVersion": {"type": "string"}, "cookies": _PAIRS,
                            "headers": _PAIRS, "queryString": _PAIRS,
                            "headersSize": {"type": "integer"}, "bodySize": {"type": "integer"},
                            "postData": {
                                "type": "object", "required": ["mimeType"],
                                "properties": {"mimeType": {"type": "string"},
                                               "text": {"type": "string"},
                                               "params": {"type": "array", "items": {
                                                   "type": "object", "required": ["name"]}}},
                            },
                        },
                    },
                    "response": {
                        "type": "object",
                        "required": ["status", "statusText", "httpVersion", "cookies", "headers",
                                     "content", "redirectURL", "headersSize", "bodySize"],
                        "properties": {
                            "status": {"type": "integer"}, "statusText": {"type": "string"},
                            "httpVersion": {"type": "string"}, "cookies": _PAIRS,
                            "headers": _PAIRS, "redirectURL": {"type": "string"},
                            "headersSize": {"type": "integer"}, "bodySize": {"type": "integer"},
                            "content": {
                                "type": "object", "required": ["size", "mimeType"],
                                "properties": {"size": {"type": "integer"},
                                               "mimeType": {"type": "string"},
                                               "text": {"type": "string"},
                                               "encoding": {"type": "string"},
                                               "compression": {"type": "integer"}},
                            },
                        },
                    },
                    "cache": {"type": "object"},
                    "timings": {
                        "type": "object", "required": ["send", "wait", "receive"],
                        "properties": {k: {"type": "number", "minimum": -1}
                                       for k in ("send", "wait", "receive")},
                    },
                },
            }},
        },
    }},
}


def exchanges() -> list[Exchange]:
    doc = json.dumps({"items": [1, 2], "name": "Zoë", "pad": "x" * 200}).encode()
    return [
        Exchange(  # gzip JSON answer to a JSON POST, with cookies
            Request("POST", "https", "Api.Example.com", 443, "/orders?page=2&q=a+b",
                    (("Host", "Api.Example.com"), ("Content-Type", "application/json"),
                     ("Cookie", "a=1; b=2")), b'{"sku": "A-1"}', "HTTP/2.0"),
            Response(201, (("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
                           ("Set-Cookie", "sid=REDACTED; Path=/"),
                           ("Content-Length", str(len(gzip.compress(doc, 9))))),
                     gzip.compress(doc, 9), "Created", "HTTP/2.0"),
            captured_ns=NS, duration_ms=42.25, note="first",
        ),
        Exchange(  # binary body on a non-default port, form request
            Request("PUT", "http", "127.0.0.1", 8080, "/upload",
                    (("Content-Type", "application/x-www-form-urlencoded"),), b"a=1&b=x+y"),
            Response(200, (("Content-Type", "image/png"),), b"\x89PNG\r\n\x00\xff\xfe", "OK"),
            captured_ns=NS + 1000, duration_ms=1.0,
        ),
        Exchange(  # br text, binary request body
            Request("POST", "http", "h.test", 80, "/bin",
                    (("Content-Type", "application/octet-stream"),), b"\x00\x01\xff"),
            Response(200, (("Content-Encoding", "br"),), brotli.compress(b"hello"), "OK"),
            captured_ns=NS + 2000,
        ),
        Exchange(  # an upstream failure
            Request("GET", "http", "down.test", 80, "/"),
            None, Failure(FailureKind.REFUSED, "connection refused"), NS + 3000, 3.0,
        ),
        Exchange(  # empty bodies, IPv6 literal
            Request("DELETE", "http", "::1", 9000, "/s/1"),
            Response(204, (), b"", "No Content"), captured_ns=NS + 4000,
        ),
    ]


def export(exs: list[Exchange], **kw) -> dict:
    text = "".join(har.dump("t", (har.entry(e, rid=i + 1, seq=0, match_key="k")
                                  for i, e in enumerate(exs)),
                            creator_version="0.1.0", **kw))
    return json.loads(text)


def test_export_has_the_har_12_shape():
    doc = export(exchanges(), matching={"ignore_query": ["ts"]})
    jsonschema_rs.validator_for(HAR_12).validate(doc)
    log = doc["log"]
    assert log["creator"] == {"name": "wiretape", "version": "0.1.0"}
    assert log["_wiretape"]["matching"] == {"ignore_query": ["ts"]}
    first = log["entries"][0]
    assert first["startedDateTime"] == "2023-11-14T22:13:20.123+00:00"
    assert first["time"] == 42.25 and first["timings"]["wait"] == 42.25
    req, resp = first["request"], first["response"]
    assert req["url"] == "https://Api.Example.com/orders?page=2&q=a+b"
    assert req["queryString"] == [{"name": "page", "value": "2"}, {"name": "q", "value": "a b"}]
    assert req["cookies"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert req["postData"] == {"mimeType": "application/json", "text": '{"sku": "A-1"}'}
    # what a browser shows: the decoded JSON, its size, the bytes saved by gzip
    assert json.loads(resp["content"]["text"])["name"] == "Zoë"
    assert "encoding" not in resp["content"]
    assert resp["content"]["size"] > resp["bodySize"] > 0
    assert resp["cookies"] == [{"name": "sid", "value": "REDACTED"}]
    assert first["_wiretape"]["note"] == "first" and first["_wiretape"]["id"] == 1
    png = log["entries"][1]["response"]["content"]
    assert png["encoding"] == "base64"
    assert base64.b64decode(png["text"]) == b"\x89PNG\r\n\x00\xff\xfe"
    assert log["entries"][1]["request"]["postData"]["params"] == [
        {"name": "a", "value": "1"}, {"name": "b", "value": "x y"}]
    failed = log["entries"][3]
    assert failed["response"]["status"] == 0 and failed["response"]["_error"]
    assert failed["_wiretape"]["failure"] == {"kind": "refused",
                                              "message": "connection refused"}


def test_round_trip_is_byte_exact():
    original = exchanges()
    back = har.parse(export(original)).exchanges
    assert len(back) == len(original)
    for a, b in zip(original, back, strict=True):
        assert b.request == a.request
        assert b.response == a.response
        assert b.failure == a.failure
        assert b.captured_ns == a.captured_ns and b.note == a.note
        assert b.duration_ms == pytest.approx(a.duration_ms)


def test_a_stream_keeps_its_timings_and_the_body_stays_whole():
    body = b'data: {"n": 0}\n\ndata: {"n": 1}\n\n'
    stream = Stream(2.5, ((3.0, 16), (1003.25, 16)), Truncation.CLIENT)
    ex = Exchange(Request("GET", "http", "h", 80, "/events"),
                  Response(200, (("Content-Type", "text/event-stream"),), body, "OK",
                           stream=stream), captured_ns=NS)
    doc = export([ex])
    entry = doc["log"]["entries"][0]
    assert entry["response"]["content"]["text"] == body.decode()
    assert entry["_wiretape"]["stream"] == {"headMs": 2.5, "chunks": [[3.0, 16], [1003.25, 16]],
                                           "truncated": "client"}
    jsonschema_rs.validator_for(HAR_12).validate(doc)
    [back] = har.parse(doc).exchanges
    assert back.response == ex.response


def test_edited_text_of_an_encoded_body_is_encoded_afresh():
    doc = export(exchanges()[:1])
    content = doc["log"]["entries"][0]["response"]["content"]
    content["text"] = '{"edited": true}'
    resp = har.parse(doc).exchanges[0].response
    assert gzip.decompress(resp.body) == b'{"edited": true}'
    assert resp.header("content-length") == str(len(resp.body))


BROWSER_ENTRY = {
    "startedDateTime": "2026-11-02T09:00:00.250Z",
    "time": 158.5,
    "request": {
        "method": "GET", "url": "https://shop.test/api/cart?id=7#frag", "httpVersion": "h2",
        "headers": [{"name": ":authority", "value": "shop.test"},
                    {"name": "accept", "value": "application/json"}],
        "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0,
    },
    "response": {
        "status": 200, "statusText": "", "httpVersion": "h2",
        "headers": [{"name": "content-type", "value": "application/json"},
                    {"name": "content-encoding", "value": "gzip"},
                    {"name": "content-length", "value": "9999"}],
        "cookies": [], "content": {"size": 11, "mimeType": "application/json",
                                   "text": '{"cart":[]}'},
        "redirectURL": "", "headersSize": -1, "bodySize": -1,
    },
    "cache": {}, "timings": {"send": 0, "wait": 158.5, "receive": 0},
}


def test_a_browser_export_imports():
    other = json.loads(json.dumps(BROWSER_ENTRY))
    other["response"]["headers"][1]["value"] = "zstd"
    failed = json.loads(json.dumps(BROWSER_ENTRY))
    failed["response"] = {"status": 0, "statusText": "", "httpVersion": "", "headers": [],
                          "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                          "redirectURL": "", "headersSize": -1, "bodySize": -1,
                          "_error": "net::ERR_CONNECTION_REFUSED"}
    tape = har.parse({"log": {"version": "1.2", "entries": [BROWSER_ENTRY, other, failed]}})
    a, b, c = tape.exchanges
    assert tape.matching is None
    assert a.request.url == "https://shop.test/api/cart?id=7"
    assert a.request.headers == (("accept", "application/json"),)  # pseudo-headers dropped
    assert a.request.http_version == "HTTP/2.0"
    # content.text is the decoded body: stored with the encoding the headers name
    assert gzip.decompress(a.response.body) == b'{"cart":[]}'
    assert a.response.header("content-length") == str(len(a.response.body))
    assert a.captured_ns == 1_793_610_000_250_000_000 and a.duration_ms == 158.5
    # an encoding wiretape cannot produce: stored plain, the header dropped
    assert b.response.body == b'{"cart":[]}' and b.response.header("content-encoding") is None
    assert b.captured_ns == a.captured_ns + 1  # same start time: file order kept
    assert c.response is None and c.failure.message == "net::ERR_CONNECTION_REFUSED"


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.pop("request"), "log.entries[1].request must be an object"),
    (lambda e: e["request"].update(url="/relative"), "absolute http:// or https:// URL"),
    (lambda e: e["request"].update(method="GET /x"), "is not an HTTP method"),
    (lambda e: e["response"].update(status="200"), "response.status must be an integer"),
    (lambda e: e["response"].update(status=42), "must be between 100 and 999"),
    (lambda e: e["response"]["content"].update(encoding="base64", text="%%%"),
     "not valid base64"),
    (lambda e: e["response"]["content"].update(encoding="utf-7"), "is not supported"),
    (lambda e: e["request"]["headers"].append({"name": "X", "value": "a\r\nb"}),
     "line break"),
    (lambda e: e["request"]["headers"].append({"name": "bad name", "value": "x"}),
     "not a valid header name"),
    (lambda e: e.update(startedDateTime="yesterday"), "not an ISO 8601"),
    (lambda e: e.update(time="slow"), "time must be a number"),
    (lambda e: e.update(_wiretape={"failure": {"kind": "explode"}}), "failure.kind"),
    (lambda e: e.update(_wiretape={"stream": {"chunks": [[1.0]]}}), "stream.chunks must be"),
    (lambda e: e.update(_wiretape={"stream": {"truncated": "bored"}}), "stream.truncated"),
])
def test_a_bad_entry_names_itself(mutate, message):
    bad = json.loads(json.dumps(BROWSER_ENTRY))
    mutate(bad)
    with pytest.raises(har.HarError, match=message.replace("(", r"\(").replace("[", r"\[")):
        har.parse({"log": {"entries": [BROWSER_ENTRY, bad]}})


@pytest.mark.parametrize("doc", [None, [], {"log": None}, {"log": {}},
                                 {"log": {"entries": {}}}, {"log": {"entries": [1]}}])
def test_not_a_har_document(doc):
    with pytest.raises(har.HarError):
        har.parse(doc)


def test_bad_matching_rules_in_the_file():
    with pytest.raises(har.HarError, match="matching"):
        har.parse({"log": {"entries": [], "_wiretape": {"matching": {"ignore_query": 5}}}})
    with pytest.raises(har.HarError, match="not a HAR file"):
        har.loads("{not json")
