"""Redaction of bodies too big to hold, read a piece at a time: the same result as the
whole-body rules, wherever the pieces are cut, in every content coding."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import pytest
from wiretape.storage.bodies import PART_SIZE, SpooledBody
from wiretape.storage.exchange import BigBody, Response
from wiretape.storage.jsonscan import JsonFieldScan, redact_json_tokens
from wiretape.storage.redact import Redactor
from wiretape.storage.scrub import Scrubber

NAMES = frozenset({"password", "token"})

DOCUMENTS = [
    '{"user": "a", "password": "hunter2-pw", "n": 1}',
    '{"pass\\u0077ord": "esc\\"aped\\\\", "x": ["password", {"token": 12.5e3}]}',
    '[{"Token": {"a": ["inner-secret", {"b": "deeper"}]}, "z": true}, "token"]',
    '{"token" :\n  "spaced-out-value" , "password":null,"t":"REDACTED"}',
    '{"token": "REDACTED", "other": "x"}',
    '{"a": "no secret here", "b": [1, 2, {"c": "d"}]}',
    '{"password": {"never": "closed"',
    '{"token": "never closed',
]


def fed(text: str, cuts: list[int]) -> tuple[str | None, set[str]]:
    removed: set[str] = set()
    scan = JsonFieldScan(NAMES, removed)
    out, last = [], 0
    for cut in [*cuts, len(text)]:
        out.append(scan.feed(text[last:cut]))
        last = cut
    out.append(scan.end())
    return ("".join(out) if scan.changed else None), removed


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_json_fields_are_found_wherever_the_pieces_are_cut(doc: str) -> None:
    removed: set[str] = set()
    whole = redact_json_tokens(doc, NAMES, removed)
    for a in range(len(doc) + 1):
        for b in (a, a + 1, a + 2, a + 7):
            assert fed(doc, sorted({a, min(b, len(doc))})) == (whole, removed), (a, b)


def test_the_token_scan_replaces_what_the_tree_walk_would() -> None:
    removed: set[str] = set()
    out = redact_json_tokens(DOCUMENTS[1], NAMES, removed)
    assert out is not None
    assert json.loads(out) == {"pass\u0077ord": "REDACTED", "x": ["password",
                                                                 {"token": "REDACTED"}]}
    assert removed == {'esc"aped\\'}  # numbers are replaced, not hunted elsewhere
    assert redact_json_tokens(DOCUMENTS[4], NAMES, set()) is None  # already redacted
    assert redact_json_tokens(DOCUMENTS[5], NAMES, set()) is None


def test_a_value_cut_in_two_by_the_pieces_is_scrubbed() -> None:
    scrubber = Scrubber.of({"s3cret-value"})
    assert scrubber is not None
    text = "before s3cret-value after s3cret-value"
    for cut in range(len(text) + 1):
        step = scrubber.text_stream()
        assert step.feed(text[:cut]) + step.feed(text[cut:]) + step.end() == \
            "before REDACTED after REDACTED"
        assert step.hits == 2
        raw = text.encode()
        bstep = scrubber.data_stream()
        assert bstep.feed(raw[:cut]) + bstep.feed(raw[cut:]) + bstep.end() == \
            b"before REDACTED after REDACTED"


# -- whole bodies through Redactor.response -------------------------------------------------

def big_response(body: bytes, *headers: tuple[str, str]) -> Response:
    spool = SpooledBody()
    for i in range(0, len(body), 300_000):
        spool.write(body[i:i + 300_000])
    return Response(200, headers=(("Content-Length", str(len(body))), *headers), body=b"",
                    big=BigBody(spool.size, "", spool.preview, spool))


def stored(resp: Response) -> bytes:
    assert resp.big is not None and resp.big.source is not None
    data = b"".join(resp.big.source.parts())
    assert resp.big.size == len(data) and resp.header("content-length") == str(len(data))
    assert data.startswith(resp.big.preview)
    return data


def rows(secret_at: int) -> bytes:
    """A JSON list of about 2.5 MiB with a password right across the first part's end."""
    head = b'[{"pad": "' + b"p" * (secret_at - 30) + b'"}, {"password": "'
    tail = b'"}' + b', {"n": "' + b"x" * (PART_SIZE + 400_000) + b'"}]'
    return head + b"pw-across-the-part-end" + tail


CODINGS = {
    "identity": (lambda b: b, lambda b: b),
    "gzip": (gzip.compress, gzip.decompress),
    "deflate": (zlib.compress, zlib.decompress),
    "br": (lambda b: brotli.compress(b, quality=1), brotli.decompress),
}


@pytest.mark.parametrize("coding", list(CODINGS))
def test_a_big_json_body_has_its_fields_redacted_in_any_coding(coding: str) -> None:
    encode, decode = CODINGS[coding]
    body = rows(PART_SIZE)
    body = body.replace(b'"pad"', b'"echo": "Bearer tok-from-request-1", "pad"', 1)
    resp = big_response(encode(body), ("Content-Type", "application/json"),
                        ("Content-Encoding", coding))
    out = Redactor().response(resp, removed={"Bearer tok-from-request-1",
                                             "tok-from-request-1"})
    data = decode(stored(out))
    assert b"pw-across-the-part-end" not in data and b"tok-from-request-1" not in data
    doc = json.loads(data)
    assert doc[1] == {"password": "REDACTED"} and doc[0]["echo"] == "REDACTED"
    assert doc[2] == json.loads(tail_of(body))


def tail_of(body: bytes) -> bytes:
    return body[body.rindex(b'{"n"'):-1]


def test_a_value_a_field_held_is_scrubbed_before_the_field_too() -> None:
    body = rows(PART_SIZE).replace(b'"pad"', b'"said": "pw-across-the-part-end", "pad"', 1)
    out = Redactor().response(big_response(body, ("Content-Type", "application/json")))
    assert b"pw-across-the-part-end" not in stored(out)


def test_utf16_json_is_redacted_in_its_own_charset() -> None:
    text = '{"token": "wide-secret-token", "pad": "' + "w" * 3_000_000 + '"}'
    resp = big_response(text.encode("utf-16-le"),
                        ("Content-Type", "application/json; charset=utf-16"))
    data = stored(Redactor().response(resp))
    assert json.loads(data.decode("utf-16-le"))["token"] == "REDACTED"


def test_a_body_without_secrets_is_kept_as_it_came() -> None:
    body = rows(PART_SIZE).replace(b"password", b"passport")
    resp = big_response(body, ("Content-Type", "application/json"))
    out = Redactor().response(resp, removed={"not-in-the-body-at-all"})
    assert out is resp  # not rewritten: the same spool is stored


def test_an_undecodable_body_is_scrubbed_as_it_is() -> None:
    body = b"not gzip at all " + b"z" * 5_000_000 + b" api-key-echoed-here"
    resp = big_response(body, ("Content-Type", "application/octet-stream"),
                        ("Content-Encoding", "gzip"))
    data = stored(Redactor().response(resp, removed={"api-key-echoed-here"}))
    assert data.endswith(b" REDACTED") and len(data) == len(body) - 11
