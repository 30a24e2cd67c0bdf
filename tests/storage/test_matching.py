"""Match keys: what makes two requests the same request, and explanations when they differ."""

from __future__ import annotations

import gzip
import json

import pytest
from wiretape.storage.exchange import Request
from wiretape.storage.matching import InvalidRule, MatchRules, explain, match_key
from wiretape.storage.redact import Redactor


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
