"""Redaction: secrets become REDACTED before anything is stored."""

from __future__ import annotations

import base64
import gzip
import json

import brotli
import pytest
from wiretape.storage.codec import MAX_JSON_DEPTH, parse_json
from wiretape.storage.exchange import Exchange, Request, Response
from wiretape.storage.redact import (
    DEFAULT_HEADERS,
    DEFAULT_JSON,
    DEFAULT_QUERY,
    Redactor,
    is_redacted,
)
from wiretape.storage.scrub import REDACTED


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
        "Authorization": "REDACTED", "cookie": "a=REDACTED", "X-Api-Key": "REDACTED",
        "X-Auth-Token": "REDACTED", "Proxy-Authorization": "REDACTED", "Accept": "*/*",
        "Content-Type": "application/json"}
    assert json.loads(r.body) == {"user": "u", "password": "REDACTED", "nested": [
        {"client_secret": "REDACTED", "ok": 1}], "refresh_token": "REDACTED"}
    assert p.header("set-cookie") == "s=REDACTED"
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


# -- issue 13: what redaction let through --------------------------------------------------

SECRET = "s3cr3t-Value-0123456789"


def _post(body: bytes, ctype: str, target: str = "/", headers: tuple = ()) -> Request:
    return Request("POST", "https", "api.test", 443, target,
                   (("Content-Type", ctype), *headers), body)


def _no_secret(ex: Exchange | Request | Response, secret: str = SECRET) -> None:
    """The secret in none of the forms it could take, anywhere in the value."""
    text = repr(ex)
    forms = {secret, secret.encode().hex()}
    for f in forms:
        assert f not in text, f
    for part in (ex.request, ex.response) if isinstance(ex, Exchange) else (ex,):
        if part is None:
            continue
        body = part.body
        enc = part.header("content-encoding")
        if enc == "gzip":
            body = gzip.decompress(body)
        elif enc == "br":
            body = brotli.decompress(body)
        for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            assert secret.encode(codec) not in body, codec


def test_the_default_lists_are_the_specs():
    assert set(DEFAULT_HEADERS) == {
        "authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token",
        "x-goog-api-key", "private-token", "x-amz-security-token", "x-csrf-token"}
    assert set(DEFAULT_QUERY) == {
        "token", "access_token", "refresh_token", "client_secret", "code", "api_key",
        "apikey", "key", "password", "secret", "signature", "sig", "x-amz-signature",
        "x-amz-credential", "x-amz-security-token"}
    assert set(DEFAULT_JSON) == {
        "password", "secret", "token", "access_token", "refresh_token", "id_token",
        "client_secret", "api_key"}
    req = Request("GET", "https", "s3.test", 443,
                  "/o?X-Amz-Signature=a1&X-Amz-Credential=c1&X-Amz-Security-Token=t1&sig=s1"
                  "&code=c2&client_secret=c3&refresh_token=r1&page=2",
                  (("X-Goog-Api-Key", "g"), ("Private-Token", "p"),
                   ("X-Amz-Security-Token", "t"), ("X-Csrf-Token", "x"), ("Accept", "a")))
    out = Redactor().request(req)
    assert out.target == ("/o?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED"
                          "&X-Amz-Security-Token=REDACTED&sig=REDACTED&code=REDACTED"
                          "&client_secret=REDACTED&refresh_token=REDACTED&page=2")
    assert out.headers == (("X-Goog-Api-Key", REDACTED), ("Private-Token", REDACTED),
                           ("X-Amz-Security-Token", REDACTED), ("X-Csrf-Token", REDACTED),
                           ("Accept", "a"))


def test_cookies_keep_their_names_and_attributes():
    req = Request("GET", "http", "h", 80, "/", (("Cookie", "a=1; b=two;c=3"),))
    assert Redactor().request(req).headers == (("Cookie", "a=REDACTED; b=REDACTED;c=REDACTED"),)
    resp = Response(200, (("Set-Cookie", "session=abc; HttpOnly; Path=/"),
                          ("Set-Cookie", "theme=dark; Max-Age=3600; Secure; SameSite=Lax")))
    assert Redactor().response(resp).headers == (
        ("Set-Cookie", "session=REDACTED; HttpOnly; Path=/"),
        ("Set-Cookie", "theme=REDACTED; Max-Age=3600; Secure; SameSite=Lax"))
    # redacting again changes nothing; the audit knows these values are not to be re-sent
    again = Redactor().response(Redactor().response(resp))
    assert again.headers[0] == ("Set-Cookie", "session=REDACTED; HttpOnly; Path=/")
    assert is_redacted("Cookie", "a=REDACTED; b=REDACTED")
    assert is_redacted("set-cookie", "session=REDACTED; HttpOnly; Path=/")
    assert not is_redacted("Cookie", "a=REDACTED; b=1")


@pytest.mark.parametrize("body", [
    b'{"pass\\u0077ord": "%s"}',
    b'{"\\u0070\\u0061\\u0073\\u0073\\u0077\\u006f\\u0072\\u0064": "%s"}',
    b'{"user": {"Client_Secre\\u0074": "%s"}}',
])
def test_escaped_keys_are_redacted(body):
    out = Redactor().request(_post(body % SECRET.encode(), "application/json"))
    _no_secret(out)
    assert json.dumps(json.loads(out.body)).count(REDACTED) == 1


@pytest.mark.parametrize("codec,bom,ctype", [
    ("utf-16-le", b"\xff\xfe", "application/json"),
    ("utf-16-be", b"\xfe\xff", "application/json"),
    ("utf-16-le", b"", "application/json; charset=utf-16"),
    ("utf-16-be", b"", "application/json; charset=UTF-16"),
    ("utf-16-le", b"", "application/json"),
    ("utf-16-le", b"", "application/json; charset=utf-8"),  # mislabelled
    ("utf-32-le", b"\xff\xfe\x00\x00", "application/json"),
    ("utf-32-be", b"", "application/json; charset=utf-32"),
    ("latin-1", b"", "application/json; charset=iso-8859-1"),
    ("utf-8", b"\xef\xbb\xbf", "application/json"),
])
def test_json_in_other_charsets_is_redacted_and_stays_in_its_charset(codec, bom, ctype):
    doc = {"user": "zoë", "password": SECRET, "n": [1, {"token": SECRET}]}
    body = bom + json.dumps(doc, ensure_ascii=False).encode(codec)
    out = Redactor().request(_post(body, ctype))
    _no_secret(out)
    assert out.body.startswith(bom)
    assert json.loads(out.body[len(bom):].decode(codec)) == {
        "user": "zoë", "password": REDACTED, "n": [1, {"token": REDACTED}]}


def test_multipart_fields_are_redacted_by_name():
    boundary = "----wiretape-7MA4YWxk"
    parts = [
        ('form-data; name="user"', None, b"alice"),
        ('form-data; name="password"', None, SECRET.encode()),
        ('form-data; name=client_secret', None, SECRET.encode() + b"2"),
        ('form-data; name="meta"', "application/json", json.dumps({"token": SECRET}).encode()),
        ('form-data; name="file"; filename="a.bin"', "application/octet-stream",
         bytes(range(256))),
    ]
    body = b""
    for disposition, ctype, content in parts:
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            body += f"Content-Type: {ctype}\r\n".encode()
        body += b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = _post(body, f'multipart/form-data; boundary="{boundary}"',
                headers=(("Content-Length", str(len(body))),))
    out = Redactor().request(req)
    _no_secret(out)
    assert out.header("content-length") == str(len(out.body))
    assert b'name="user"\r\n\r\nalice\r\n' in out.body
    assert b'name="password"\r\n\r\nREDACTED\r\n' in out.body
    assert b"name=client_secret\r\n\r\nREDACTED\r\n" in out.body
    assert b'{"token":"REDACTED"}' in out.body
    assert bytes(range(256)) in out.body  # a file stays byte for byte
    assert out.body.endswith(f"--{boundary}--\r\n".encode())


def test_a_secret_removed_once_is_scrubbed_everywhere_in_the_exchange():
    """An upstream echoing what it was sent: headers, body (compressed too), Location."""
    token = "tok-" + SECRET
    basic = base64.b64encode(f"alice:{SECRET}B".encode()).decode()
    req = Request("POST", "https", "api.test", 443, f"/login?state=1&token={token}Q",
                  (("Authorization", f"Bearer {token}"), ("Proxy-Authorization", f"Basic {basic}"),
                   ("Content-Type", "application/x-www-form-urlencoded"),
                   ("X-Trace", f"echo {token}")),
                  f"user=alice&password={SECRET}P&note=my+token+is+{token}".encode())
    echoed = json.dumps({"auth": f"Bearer {token}", "query": f"{token}Q", "pw": f"{SECRET}P",
                         "basic": f"alice:{SECRET}B"})
    for enc, pack in (("gzip", gzip.compress), ("br", brotli.compress)):
        body = pack(echoed.encode())
        resp = Response(302, (("Location", f"https://app.test/cb?t={token}&pw={SECRET}P"),
                              ("Content-Type", "application/json"), ("Content-Encoding", enc),
                              ("X-Echo", f"Bearer {token}"),
                              ("Link", f"<https://x.test/?a={token.replace('-', '%2D')}>"),
                              ("Content-Length", str(len(body)))), body)
        out = Redactor().exchange(Exchange(req, resp))
        _no_secret(out)
        assert out.response is not None
        assert out.response.header("content-length") == str(len(out.response.body))
        assert out.response.header("location") == "https://app.test/cb?t=REDACTED&pw=REDACTED"
        assert out.request.header("x-trace") == "echo REDACTED"
        assert out.request.body == b"user=alice&password=REDACTED&note=my+token+is+REDACTED"
    # a request alone (how replay matches) is redacted exactly as in the whole exchange
    assert Redactor().request(req) == Redactor().exchange(Exchange(req, resp)).request


def test_response_secrets_and_oauth_redirects():
    resp = Response(302, (("Location", "https://app.test/cb?code=abcdef123456&state=xyz"),
                          ("Content-Type", "application/json")),
                    json.dumps({"access_token": "at-0123456789", "echo": "at-0123456789"}).encode())
    out = Redactor().response(resp)
    assert out.header("location") == "https://app.test/cb?code=REDACTED&state=xyz"
    assert json.loads(out.body) == {"access_token": REDACTED, "echo": REDACTED}
    # a Set-Cookie that deletes its cookie carries a tombstone, not a secret: "deleted"
    # elsewhere in the body stays
    gone = Response(200, (("Set-Cookie", "sid=deleted; Max-Age=0; Path=/"),),
                    b'{"status": "deleted"}')
    assert Redactor().response(gone).body == b'{"status": "deleted"}'


def test_deep_json_is_redacted_without_recursion():
    """A body nested far beyond the tree walk's bound (and beyond json.loads' own) is not
    JSON for matching or display, and its secret fields are still replaced."""
    for depth in (MAX_JSON_DEPTH + 1, 1_200, 100_000):
        doc = '{"a":' * depth + f'{{"password": "{SECRET}", "x": [1]}}' + "}" * depth
        assert parse_json(doc.encode()) == (False, None)
        out = Redactor().request(_post(doc.encode(), "application/json"))
        _no_secret(out)
        assert out.body == doc.replace(SECRET, REDACTED).encode()
    nested = f'{{"token": {{"a": ["{SECRET}", {{"b": "{SECRET}"}}]}}, "ok": 1}}'
    deep = '[' * 2000 + nested + ']' * 2000
    out = Redactor().request(_post(deep.encode(), "application/json"))
    _no_secret(out)
    assert out.body == ('[' * 2000 + '{"token": "REDACTED", "ok": 1}' + ']' * 2000).encode()
    ok, value = parse_json(('{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH).encode())
    assert ok


def test_malformed_json_is_scanned_for_secret_fields():
    body = b'{"user": "u", "password": "%s", "cut off' % SECRET.encode()
    out = Redactor().request(_post(body, "application/json"))
    assert out.body == b'{"user": "u", "password": "REDACTED", "cut off'
