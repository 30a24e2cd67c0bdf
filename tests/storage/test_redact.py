"""Redaction: secrets become REDACTED before anything is stored."""

from __future__ import annotations

import gzip
import json

from wiretape.storage.exchange import Exchange, Request, Response
from wiretape.storage.redact import Redactor


def test_default_names_are_redacted_everywhere():
    req = Request(
        "POST", "https", "api.test", 443,
        "/login?Token=abc&page=2&api_key=k&signature=s",
        (("Authorization", "Bearer x"), ("cookie", "a=b"), ("X-Api-Key", "k"),
         ("X-Auth-Token", "t"), ("Proxy-Authorization", "p"), ("Accept", "*/*"),
         ("Content-Type", "application/json")),
        json.dumps({"user": "u", "password": "p", "nested": [{"client_secret": "c",
                    "ok": 1}], "refresh_token": "r"}).encode(),
    )
    body = gzip.compress(json.dumps({"access_token": "AT", "id_token": "IT", "n": 1}).encode())
    resp = Response(200, (("Set-Cookie", "s=1"), ("Content-Encoding", "gzip"),
                          ("Content-Type", "application/json"),
                          ("Content-Length", str(len(body)))), body)
    ex = Redactor().exchange(Exchange(req, resp))
    r, p = ex.request, ex.response
    assert p is not None
    assert r.target == "/login?Token=REDACTED&page=2&api_key=REDACTED&signature=REDACTED"
    assert dict(r.headers) == {
        "Authorization": "REDACTED", "cookie": "REDACTED", "X-Api-Key": "REDACTED",
        "X-Auth-Token": "REDACTED", "Proxy-Authorization": "REDACTED", "Accept": "*/*",
        "Content-Type": "application/json"}
    assert json.loads(r.body) == {"user": "u", "password": "REDACTED", "nested": [
        {"client_secret": "REDACTED", "ok": 1}], "refresh_token": "REDACTED"}
    assert p.header("set-cookie") == "REDACTED"
    assert json.loads(gzip.decompress(p.body)) == {"access_token": "REDACTED",
                                                   "id_token": "REDACTED", "n": 1}
    assert p.header("content-length") == str(len(p.body))


def test_extra_names_and_untouched_bodies():
    red = Redactor.with_extra(headers=["X-Tenant"], query=["sig2"], json_fields=["pin"])
    req = Request("GET", "http", "h", 80, "/?sig2=1&a=2", (("x-tenant", "t"),),
                  b'{"pin": 1234, "x": {"PIN": 1}}')
    out = red.request(req)
    assert out.target == "/?sig2=REDACTED&a=2"
    assert out.headers == (("x-tenant", "REDACTED"),)
    assert json.loads(out.body) == {"pin": "REDACTED", "x": {"PIN": "REDACTED"}}
    # nothing secret: the very same bytes (whitespace kept), not a re-serialisation
    plain = Request("POST", "http", "h", 80, "/", (), b'{ "a" : 1 }')
    assert red.request(plain) is plain
    binary = Request("POST", "http", "h", 80, "/", (), b"\xff\x00password")
    assert red.request(binary).body == b"\xff\x00password"


def test_form_bodies_are_redacted():
    req = Request("POST", "http", "h", 80, "/",
                  (("Content-Type", "application/x-www-form-urlencoded"),),
                  b"user=u&password=hunter2&token=t")
    assert Redactor().request(req).body == b"user=u&password=REDACTED&token=REDACTED"
