"""Secrets sent through the real proxy, in every place and encoding redaction covers (and
echoed back by the upstream), appear nowhere: not in any table of the store, not in an
export, not in the misses journal, not in the log."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import random
import re
import socket
import subprocess
import zlib
from collections.abc import Iterator

import brotli
import httpx
import pytest
from sqlalchemy import inspect, select, text
from wiretape.storage import db
from wiretape.storage import models as m

from tests.helpers import WIRETAPE_BIN, Serve
from tests.proxy.upstreams import Handler, Origin

# one distinct value per place a secret is planted; none is a substring of another
SECRETS = {name: f"S{n:02d}x{name.replace('_', '')}Q7" for n, name in enumerate((
    "authorization", "proxy_basic_password", "cookie", "x_api_key", "x_auth_token",
    "x_goog_api_key", "private_token", "x_amz_security_token", "x_csrf_token",
    "q_token", "q_access_token", "q_refresh_token", "q_client_secret", "q_code", "q_api_key",
    "q_apikey", "q_x_amz_signature", "q_x_amz_credential", "q_sig", "q_x_amz_security_token",
    "json_password", "json_escaped_key", "json_utf16_token", "json_utf32_secret",
    "form_client_secret", "multipart_password", "multipart_json_token", "multipart_api_key",
    "gzip_json_refresh_token", "deep_json_password", "referer_access_token",
    "set_cookie_session", "response_access_token", "response_id_token", "location_code",
    "miss_query_token", "miss_authorization", "userinfo_password", "connect_password",
    "big_json_password", "big_gzip_token", "big_echo_authorization",
))}
S = SECRETS


def echo(h: Handler) -> None:
    """What some upstreams do: say back everything they were sent (compressed, too), and
    hand out fresh secrets of their own."""
    body = h.body()
    said = {"url": h.path, "headers": dict(h.headers.items()), "body": body.decode("latin-1"),
            "access_token": S["response_access_token"],
            "nested": {"id_token": S["response_id_token"]}}
    data = json.dumps(said).encode()
    enc = "br" if "br" in (h.headers.get("accept-encoding") or "") else "gzip"
    packed = brotli.compress(data) if enc == "br" else gzip.compress(data)
    h.reply(200, packed, [("Content-Type", "application/json"), ("Content-Encoding", enc),
                          ("Set-Cookie", f"session={S['set_cookie_session']}; HttpOnly; Path=/"),
                          ("X-Echo-Auth", h.headers.get("authorization") or "")])


def redirect(h: Handler) -> None:
    h.body()
    # an OAuth server's redirect with a code of its own, and a token the client sent
    h.reply(302, b"", [("Location", f"https://app.test/cb?code={S['location_code']}&state=1"
                                    f"&echo={S['q_access_token']}")])


def big(h: Handler) -> None:
    """Over 4 MiB on the wire (so streamed and spooled, never held whole): JSON with a
    secret field deep in it and the request's token echoed; gzip filled with random text
    so that it stays that big compressed."""
    h.body()
    gzipped = h.path.startswith("/big-gzip")
    rows: list[dict[str, object]] = [{"id": i, "note": "n" * 40} for i in range(90_000)]
    rows[45_000]["auth"] = {"password": S["big_json_password"]}
    rows[89_000]["token"] = S["big_gzip_token"]
    rows[10]["echo"] = h.headers.get("authorization") or ""
    if gzipped:
        rows[20]["filler"] = base64.b64encode(random.randbytes(4_000_000)).decode()
    data = json.dumps(rows).encode()
    headers = [("Content-Type", "application/json")]
    if gzipped:
        data = gzip.compress(data, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    assert len(data) > 4 * 1024 * 1024
    h.reply(200, data, headers)


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    o.route("GET /echo", echo)
    o.route("POST /echo", echo)
    o.route("GET /login", redirect)
    o.route("GET /big-json", big)
    o.route("GET /big-gzip", big)
    yield o.start()
    o.stop()


def multipart() -> tuple[bytes, str]:
    boundary = "b0und4ry"
    parts = [('name="user"', "", b"alice"),
             ('name="password"', "", S["multipart_password"].encode()),
             ('name="meta"', "Content-Type: application/json\r\n",
              json.dumps({"token": S["multipart_json_token"]}).encode()),
             ('name="api_key"', "", S["multipart_api_key"].encode())]
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; {d}\r\n{t}\r\n".encode()
                    + content + b"\r\n" for d, t, content in parts)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def plant(proxy: str, origin: Origin) -> None:
    base = f"http://127.0.0.1:{origin.port}"
    basic = base64.b64encode(f"proxyuser:{S['proxy_basic_password']}".encode()).decode()
    headers = {
        "Authorization": f"Bearer {S['authorization']}",
        "Proxy-Authorization": f"Basic {basic}",
        "Cookie": f"sid={S['cookie']}; theme=dark",
        "X-Api-Key": S["x_api_key"], "X-Auth-Token": S["x_auth_token"],
        "X-Goog-Api-Key": S["x_goog_api_key"], "Private-Token": S["private_token"],
        "X-Amz-Security-Token": S["x_amz_security_token"], "X-Csrf-Token": S["x_csrf_token"],
        "Referer": f"https://app.test/page?access_token={S['referer_access_token']}",
    }
    query = {k.removeprefix("q_").replace("x_amz_", "X-Amz-").replace("_", "-")
             if k.startswith("q_x_amz") else k.removeprefix("q_"): v
             for k, v in S.items() if k.startswith("q_")}
    json_type = {"Content-Type": "application/json"}
    with httpx.Client(proxy=proxy, trust_env=False, timeout=20) as c:
        assert c.get(f"{base}/echo", params=query, headers=headers).status_code == 200
        assert c.get(f"{base}/login", params=query).status_code == 302
        sends = [
            (json.dumps({"user": "u", "auth": {"password": S["json_password"]}}).encode(),
             json_type),
            (b'{"pass\\u0077ord": "%s"}' % S["json_escaped_key"].encode(), json_type),
            (json.dumps({"token": S["json_utf16_token"]}).encode("utf-16"),
             {"Content-Type": "application/json; charset=utf-16"}),
            (b"\xff\xfe\x00\x00" + json.dumps({"secret": S["json_utf32_secret"]}).encode(
                "utf-32-le"), json_type),
            (f"grant_type=x&client_secret={S['form_client_secret']}".encode(),
             {"Content-Type": "application/x-www-form-urlencoded"}),
            (gzip.compress(json.dumps({"refresh_token": S["gzip_json_refresh_token"]}).encode()),
             {**json_type, "Content-Encoding": "gzip"}),
            (("{\"a\":" * 300 + json.dumps({"password": S["deep_json_password"]})
              + "}" * 300).encode(), json_type),
        ]
        body, ctype = multipart()
        sends.append((body, {"Content-Type": ctype}))
        for content, extra in sends:
            r = c.post(f"{base}/echo", content=content,
                       headers={**extra, "Accept-Encoding": "br"})
            assert r.status_code == 200, r.text
    for raw in (f"GET http://user:{S['userinfo_password']}@127.0.0.1:{origin.port}/echo "
                "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                f"CONNECT user:{S['connect_password']}@127.0.0.1:{origin.port} HTTP/1.1\r\n"
                "\r\n"):
        port = int(proxy.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(raw.encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 400 ")


def miss(proxy: str, origin: Origin) -> httpx.Response:
    with httpx.Client(proxy=proxy, trust_env=False, timeout=20) as c:
        return c.get(f"http://127.0.0.1:{origin.port}/nothing-recorded",
                     params={"token": S["miss_query_token"]},
                     headers={"Authorization": f"Bearer {S['miss_authorization']}"})


# -- looking for them ------------------------------------------------------------------------

def _expansions(data: bytes, depth: int = 0) -> Iterator[bytes]:
    """The bytes, and what they decompress or base64-decode to."""
    yield data
    if depth > 2:
        return
    for unpack in (gzip.decompress, brotli.decompress, zlib.decompress):
        try:
            yield from _expansions(unpack(data), depth + 1)
        except Exception:  # noqa: BLE001, S112 - not that kind of data
            continue
    for token in re.findall(rb"[A-Za-z0-9+/=]{16,}", data):
        try:
            yield from _expansions(base64.b64decode(token, validate=True), depth + 1)
        except (binascii.Error, ValueError):
            continue


def leaked(data: bytes | str) -> set[str]:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    found = set()
    for blob in _expansions(raw):
        for name, secret in SECRETS.items():
            for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
                if secret.encode(codec) in blob:
                    found.add(name)
    return found


def big_bodies(url: str) -> Iterator[bytes]:
    """Each big body the store holds in parts, whole, and decompressed when gzipped."""
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine)() as s:
            bodies: dict[int, list[bytes]] = {}
            for part in s.scalars(select(m.BodyPart).order_by(m.BodyPart.idx)):
                bodies.setdefault(part.recording_id, []).append(bytes(part.data))
    finally:
        engine.dispose()
    for parts in bodies.values():
        body = b"".join(parts)
        yield gzip.decompress(body) if body.startswith(b"\x1f\x8b") else body


def leaked_big(data: bytes) -> set[str]:
    """leaked() without looking into base64 (slow on megabytes of it)."""
    return {name for name, secret in SECRETS.items() if secret.encode() in data}


def stored_values(url: str, skip: tuple[str, ...] = ()) -> Iterator[bytes | str]:
    """Every value of every table but those in `skip`."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            for table in set(inspect(conn).get_table_names()) - set(skip):
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        if isinstance(value, bytes | memoryview):
                            yield bytes(value)
                        elif value is not None:
                            yield value if isinstance(value, str) else json.dumps(
                                value, default=str)
    finally:
        engine.dispose()


def test_no_planted_secret_is_stored_exported_journaled_or_logged(db_url, origin, serve):
    assert len(SECRETS) >= 33
    rec: Serve = serve(db_url, "--log-level", "debug")
    plant(rec.proxy, origin)
    # the upstream did see them: what is stored is redacted, not what was sent
    assert leaked(json.dumps(origin.requests)) >= {"authorization", "q_token", "cookie"}
    assert rec.api("GET", "/api/recordings").json()["items"]
    rec.stop()
    rep: Serve = serve(db_url, "--mode", "replay", "--log-level", "debug")
    answer = miss(rep.proxy, origin)
    assert answer.status_code == 502 and answer.headers["wiretape"] == "miss"
    misses = rep.api("GET", "/api/misses").text
    export = rep.api("GET", "/api/tapes/default/export").text
    rep.stop()
    cli_export = subprocess.run(
        [WIRETAPE_BIN, "export", "--db", db_url, "--tape", "default"],
        capture_output=True, check=True).stdout

    assert "REDACTED" in export and "REDACTED" in misses
    places = {
        "the 502 miss answer": leaked(answer.content),
        "GET /api/misses": leaked(misses),
        "GET /api/tapes/default/export": leaked(export),
        "wiretape export": leaked(cli_export),
        "the record log": leaked(rec.log()),
        "the replay log": leaked(rep.log()),
    }
    for value in stored_values(db_url):
        places.setdefault("the store", set()).update(leaked(value))
    assert {where: names for where, names in places.items() if names} == {}
    # and recordings are there to look through: every send above was stored
    engine = db.make_engine(db_url)
    try:
        with db.make_sessions(engine)() as s:
            assert len(s.scalars(select(m.Recording)).all()) == 10
    finally:
        engine.dispose()


def test_url_userinfo_is_not_logged(sqlite_url, origin, serve):
    """mitmproxy quotes a refused request line, `user:password@` and all, at INFO."""
    s: Serve = serve(sqlite_url, "--log-level", "debug")
    for raw in (f"GET http://alice:{S['userinfo_password']}@127.0.0.1:{origin.port}/echo"
                f"?token={S['q_token']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                f"CONNECT alice:{S['connect_password']}@127.0.0.1:{origin.port} HTTP/1.1\r\n"
                "\r\n"):
        with socket.create_connection(("127.0.0.1", s.proxy_port), timeout=10) as c:
            c.sendall(raw.encode())
            assert c.recv(65536).startswith(b"HTTP/1.1 400 ")
    s.stop()
    log = s.log()
    assert "Bad HTTP request line" in log  # the line is logged, without its credentials
    assert "alice:" not in log and leaked(log) == set(), log
    assert "REDACTED@127.0.0.1" in log


def test_a_body_too_big_to_hold_is_redacted_like_any_other(sqlite_url, origin, serve):
    rec: Serve = serve(sqlite_url)
    base = f"http://127.0.0.1:{origin.port}"
    auth = {"Authorization": f"Bearer {S['big_echo_authorization']}"}
    with httpx.Client(proxy=rec.proxy, trust_env=False, timeout=60) as c:
        live = {path: c.get(f"{base}{path}", headers=auth) for path in ("/big-json",
                                                                       "/big-gzip")}
    # the client got what the upstream sent, secrets and all: redaction is for the store
    assert leaked_big(live["/big-json"].content) == {"big_json_password", "big_gzip_token",
                                                 "big_echo_authorization"}
    rec.stop()
    rep: Serve = serve(sqlite_url, "--mode", "replay")
    with httpx.Client(proxy=rep.proxy, trust_env=False, timeout=60) as c:
        replayed = {path: c.get(f"{base}{path}", headers=auth) for path in live}
    export = rep.api("GET", "/api/tapes/default/export").text
    rep.stop()
    for path, answer in replayed.items():
        assert answer.status_code == 200 and "wiretape-recording" in answer.headers
        rows = answer.json()  # still JSON, decompressed by httpx where gzipped
        expected = live[path].json()
        expected[45_000]["auth"]["password"] = "REDACTED"
        expected[89_000]["token"] = "REDACTED"
        expected[10]["echo"] = "REDACTED"  # the header value, scrubbed where echoed
        assert rows == expected
        if path == "/big-gzip":
            assert answer.headers["content-encoding"] == "gzip"
    assert leaked_big(export.encode()) == set()
    found: set[str] = set()
    for body in big_bodies(sqlite_url):
        assert b'"REDACTED"' in body
        found |= leaked_big(body)
    for value in stored_values(sqlite_url, skip=("body_parts",)):
        found |= leaked_big(value if isinstance(value, bytes) else value.encode())
    assert found == set()
