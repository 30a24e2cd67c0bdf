"""Match keys: what makes two requests the same request, and explanations when they differ."""

from __future__ import annotations

import gzip
import json

import pytest
from wiretape.storage.exchange import Request
from wiretape.storage.explain import explain
from wiretape.storage.matching import (
    InvalidRule,
    MatchRules,
    match_key,
    match_keys,
    required_codings,
)
from wiretape.storage.redact import Redactor
from wiretape.storage.scrub import REDACTED


def make_request(**overrides: object) -> Request:
    fields: dict[str, object] = {
        "method": "GET", "scheme": "http", "host": "api.test", "port": 80,
        "target": "/items?page=1&size=10", "headers": (), "body": b"",
    }
    fields.update(overrides)
    return Request(**fields)  # type: ignore[arg-type]


RULES = MatchRules()


def key(**kw: object) -> str:
    rules = kw.pop("rules", RULES)
    assert isinstance(rules, MatchRules)
    return match_key(make_request(**kw), rules)


def test_query_order_does_not_matter_but_repeated_names_keep_their_order():
    assert key(target="/items?page=1&size=10") == key(target="/items?size=10&page=1")
    assert key(target="/i?tag=a&tag=b&x=1") == key(target="/i?x=1&tag=a&tag=b")
    assert key(target="/i?tag=a&tag=b") != key(target="/i?tag=b&tag=a")


def test_each_part_of_the_request_is_in_the_key():
    base = key()
    assert key(method="POST") != base
    assert key(scheme="https", port=443) != base
    assert key(host="other.test") != base
    assert key(port=8080) != base
    assert key(target="/items2?page=1&size=10") != base
    assert key(target="/items?page=2&size=10") != base
    assert key(headers=(("X-Trace", "1"),)) == base  # headers are not in the key by default


def test_json_bodies_compare_canonically():
    ct = (("Content-Type", "application/json"),)
    a = key(method="POST", headers=ct, body=b'{"a": 1, "b": [1, 2]}')
    assert a == key(method="POST", headers=ct, body=b'{\n  "b": [1,2],\n  "a": 1\n}')
    assert a != key(method="POST", headers=ct, body=b'{"a": 1, "b": [2, 1]}')
    gz = (("Content-Type", "application/json"), ("Content-Encoding", "gzip"))
    assert a == key(method="POST", headers=gz, body=gzip.compress(b'{"b":[1,2],"a":1}'))


def test_form_bodies_are_order_insensitive_and_others_byte_for_byte():
    form = (("Content-Type", "application/x-www-form-urlencoded"),)
    assert key(method="POST", headers=form, body=b"a=1&b=2") == key(
        method="POST", headers=form, body=b"b=2&a=1")
    assert key(method="POST", body=b"\x00\x01") != key(method="POST", body=b"\x01\x00")


def test_rules_ignore_query_body_paths_host_and_match_headers():
    rules = MatchRules.create(ignore_query=["ts"], ignore_body_paths=["$.timestamp",
                              "$.items[*].id"], match_headers=["X-Tenant"], ignore_host=True)
    ct = ("Content-Type", "application/json")
    a = dict(method="POST", target="/o?ts=1", headers=(ct, ("X-Tenant", "a")),
             body=json.dumps({"timestamp": 1, "items": [{"id": 1, "n": 2}]}).encode())
    b = dict(a, target="/o?ts=2", host="elsewhere", port=81,
             body=json.dumps({"timestamp": 2, "items": [{"id": 9, "n": 2}]}).encode())
    assert key(rules=rules, **a) == key(rules=rules, **b)
    assert key(rules=rules, **a) != key(rules=rules, **dict(a, headers=(ct, ("X-Tenant", "b"))))
    assert key(**a) != key(**b)  # without the rules they differ


def test_rules_round_trip_and_reject_bad_paths():
    rules = MatchRules.create(ignore_query=["b", "a"], ignore_body_paths=["$.x['y z'][0]"])
    assert MatchRules.from_dict(rules.to_dict()) == rules
    with pytest.raises(InvalidRule):
        MatchRules.create(ignore_body_paths=["timestamp"])
    with pytest.raises(InvalidRule):
        MatchRules.create(ignore_body_paths=["$.a[x]"])
    with pytest.raises(InvalidRule):
        MatchRules.create(match_headers=["bad header"])


def test_redacted_values_do_not_take_part_in_matching():
    redact = Redactor().request
    ct = ("Content-Type", "application/json")
    a = redact(make_request(target="/x?token=one&q=1", method="POST", headers=(ct,),
                            body=b'{"password": "p1", "user": "u"}'))
    b = redact(make_request(target="/x?q=1&token=two", method="POST", headers=(ct,),
                            body=b'{"user": "u", "password": "p2"}'))
    c = redact(make_request(target="/x?q=1", method="POST", headers=(ct,), body=b'{"user": "u"}'))
    assert match_key(a, RULES) == match_key(b, RULES) == match_key(c, RULES)
    assert explain(c, a, RULES) == []


def test_explain_says_what_differs_live_value_first():
    live = make_request(target="/items?page=3&size=10&extra=1")
    recorded = make_request(target="/items?page=1&size=10&gone=2")
    assert explain(live, recorded, RULES) == [
        "query param 'extra' not recorded (sent '1')",
        "query param 'gone' missing (recorded '2')",
        "query param 'page': '3' != '1'",
    ]
    assert explain(make_request(method="POST", target="/a"), make_request(target="/b"),
                   RULES) == ["method: 'POST' != 'GET'", "path: '/a' != '/b'"]
    ct = (("Content-Type", "application/json"),)
    assert explain(
        make_request(method="POST", headers=ct, body=b'{"amount": 10, "cur": "EUR"}'),
        make_request(method="POST", headers=ct, body=b'{"amount": 12, "cur": "EUR"}'), RULES,
    ) == ["body field '$.amount': 10 != 12"]
    assert explain(make_request(), make_request(), RULES) == []


# -- headers that change what a response means --------------------------------------------

def test_conditional_and_range_headers_are_in_the_key_and_fall_back_to_the_plain_request():
    plain, none = match_keys(make_request(), RULES)
    assert none is None and plain == key()  # no such header: the key it always had
    r1, base1 = match_keys(make_request(headers=(("Range", "bytes=0-99"),)), RULES)
    r2, base2 = match_keys(make_request(headers=(("range", " bytes = 100-199"),)), RULES)
    assert len({plain, r1, r2}) == 3 and base1 == base2 == plain
    assert key(headers=(("Range", "Bytes=0-99"),)) == r1  # written differently, one range
    for name in ("If-None-Match", "If-Modified-Since", "If-Match", "If-Range"):
        assert key(headers=((name, '"v1"'),)) not in (plain, key(headers=((name, '"v2"'),)))
    assert key(headers=(("If-None-Match", '"a", "b"'),)) == key(
        headers=(("If-None-Match", '"a","b"'),))
    # a redacted value never takes part; a rule that matches the header keeps one copy
    assert key(headers=(("Range", REDACTED),)) == plain
    rules = MatchRules.create(match_headers=["range"])
    assert match_keys(make_request(headers=(("Range", "bytes=0-9"),)), rules)[1] is None


def test_explain_names_conditional_headers():
    live = make_request(headers=(("Range", "bytes=100-199"),))
    assert explain(live, make_request(headers=(("Range", "bytes=0-99"),)), RULES) == [
        "header 'range': 'bytes=100-199' != 'bytes=0-99'"]
    assert explain(make_request(), make_request(headers=(("If-None-Match", '"v1"'),)),
                   RULES) == ["header 'if-none-match' missing (recorded '\"v1\"')"]
    # the plain recording also answers a conditional request: no difference to report
    assert explain(live, make_request(), RULES) == []


def test_required_codings_are_those_the_recorded_client_offered():
    gz = (("Content-Encoding", "gzip"),)
    assert required_codings((("Accept-Encoding", "gzip, br"),), gz) == {"gzip"}
    assert required_codings((), gz) == frozenset()  # the upstream compressed unasked
    assert required_codings((("Accept-Encoding", "br"),), gz) == frozenset()
    assert required_codings((("Accept-Encoding", "gzip"),), (("Content-Encoding", "identity"),)
                            ) == frozenset()
    assert required_codings((("Accept-Encoding", "*"),), (("Content-Encoding", "x-gzip"),)
                            ) == {"gzip"}


def test_explain_names_content_negotiation():
    rec = make_request(headers=(("Accept-Encoding", "gzip, br"), ("Accept", "application/json")))
    resp = (("Content-Encoding", "gzip"), ("Content-Type", "application/json"))
    assert explain(make_request(), rec, RULES, response_headers=resp) == [
        "header 'accept-encoding' missing (recorded 'gzip, br') (the recorded response is gzip)"]
    live = make_request(headers=(("Accept-Encoding", "deflate"), ("Accept", "text/html")))
    assert explain(live, rec, RULES, response_headers=resp) == [
        "header 'accept-encoding': 'deflate' != 'gzip, br' (the recorded response is gzip)",
        "header 'accept': 'text/html' != 'application/json' (the recorded response is "
        "application/json)",
    ]
    fine = make_request(headers=(("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*")))
    assert explain(fine, rec, RULES, response_headers=resp) == []


# -- multipart bodies ---------------------------------------------------------------------

def multipart_body(parts: list[tuple[str, str | None, str | None, bytes]],
                   boundary: str) -> tuple[tuple[tuple[str, str], ...], bytes]:
    out = b""
    for name, filename, ctype, content in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return (("Content-Type", f"multipart/form-data; boundary={boundary}"),), out


UPLOAD = [("note", None, None, b"hello"), ("file", "a.bin", "application/octet-stream",
                                            bytes(range(256)) * 4),
          ("meta", None, "application/json", b'{"ts": 1, "kind": "x"}')]


def upload_key(parts: list[tuple[str, str | None, str | None, bytes]] = UPLOAD,
               boundary: str = "b1", rules: MatchRules = RULES) -> str:
    headers, body = multipart_body(parts, boundary)
    return key(method="POST", headers=headers, body=body, rules=rules)


def test_multipart_bodies_match_by_their_parts_whatever_the_boundary():
    base = upload_key()
    assert upload_key(boundary="------------------------d74496d66958873e") == base
    assert upload_key([UPLOAD[2], UPLOAD[0], UPLOAD[1]], boundary="x") == base  # part order
    changed = [
        [("note", None, None, b"hallo"), *UPLOAD[1:]],
        [UPLOAD[0], ("file", "b.bin", "application/octet-stream", UPLOAD[1][3]), UPLOAD[2]],
        [UPLOAD[0], ("file", "a.bin", "image/png", UPLOAD[1][3]), UPLOAD[2]],
        [UPLOAD[0], ("file", "a.bin", "application/octet-stream", b"other"), UPLOAD[2]],
        [("note2", None, None, b"hello"), *UPLOAD[1:]],
        UPLOAD[:2],
    ]
    assert len({upload_key(p) for p in changed} | {base}) == len(changed) + 1
    # JSON parts compare canonically
    assert upload_key([*UPLOAD[:2], ("meta", None, "application/json",
                                     b'{ "kind":"x","ts":1 }')]) == base
    # a body that does not parse as multipart is compared as bytes, and still works
    assert key(method="POST", headers=(("Content-Type", "multipart/form-data; boundary=z"),),
               body=b"not multipart") != base


def test_rules_ignore_a_part_or_a_field_inside_a_json_part():
    rules = MatchRules.create(ignore_body_paths=["$.note", "$.meta.ts"])
    other = [("note", None, None, b"changed"), UPLOAD[1],
             ("meta", None, "application/json", b'{"ts": 2, "kind": "x"}')]
    assert upload_key(other, rules=rules) == upload_key(rules=rules)
    assert upload_key(other) != upload_key()
    assert upload_key(UPLOAD[1:], rules=rules) == upload_key(rules=rules)  # note gone too
    # the same rule drops a form field
    form = (("Content-Type", "application/x-www-form-urlencoded"),)
    assert key(method="POST", headers=form, body=b"a=1&note=x", rules=rules) == key(
        method="POST", headers=form, body=b"a=1&note=y", rules=rules)
    # a redacted part never takes part
    assert upload_key([*UPLOAD, ("password", None, None, REDACTED.encode())]) == upload_key()


def test_explain_names_multipart_part_differences():
    live_h, live_b = multipart_body([
        ("note", None, None, b"hallo"), ("file", "b.bin", "image/png", b"\x00" * 10),
        ("meta", None, "application/json", b'{"ts": 2, "kind": "x"}'),
        ("extra", None, None, b"1")], "live")
    rec_h, rec_b = multipart_body(UPLOAD, "recorded")
    diffs = explain(make_request(method="POST", headers=live_h, body=live_b),
                    make_request(method="POST", headers=rec_h, body=rec_b), RULES)
    assert diffs == [
        "multipart part 'extra' not recorded",
        "multipart part 'file' filename: 'b.bin' != 'a.bin'",
        "multipart part 'file' content type: 'image/png' != 'application/octet-stream'",
        "multipart part 'file' content differs (10 bytes sent, 1024 recorded)",
        "multipart part 'meta' field '$.ts': 2 != 1",
        "multipart part 'note': 'hallo' != 'hello'",
    ]
