"""Redaction: secrets are replaced by REDACTED before anything is stored or matched.

Rules remove values by name: headers, query parameters, JSON/form/multipart fields, cookie
values. Every value a rule removed from an exchange is then also scrubbed wherever else it
appears in that exchange (an upstream echoing a token into its body or a Location URL).
Values removed from the request are scrubbed from the whole exchange, those removed from
the response from the response: `request()` alone (what replay matches on) must give the
same request that `exchange()` stores.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_plus

from .bigredact import redact_big_body
from .bodytext import as_text, fix_content_length, looks_like_json
from .codec import DecodeError, decode_content, encode_content, is_json_type, parse_json
from .exchange import Exchange, Failure, Headers, Request, Response, header_value
from .jsonscan import json_needles, redact_json_tokens
from .multipart import boundary_of
from .scrub import REDACTED, Removed, Scrubber, scrub_log_text

DEFAULT_HEADERS = (
    "authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token",
    "x-goog-api-key", "private-token", "x-amz-security-token", "x-csrf-token",
)
DEFAULT_RESPONSE_HEADERS = ("set-cookie",)
DEFAULT_QUERY = (
    "token", "access_token", "refresh_token", "client_secret", "code", "api_key", "apikey",
    "key", "password", "secret", "signature", "sig", "x-amz-signature", "x-amz-credential",
    "x-amz-security-token",
)
DEFAULT_JSON = (
    "password", "secret", "token", "access_token", "refresh_token", "id_token",
    "client_secret", "api_key",
)

# Headers whose value is a URL: its query is redacted like the request's own
# (an OAuth server's `Location: https://app/cb?code=...`, a Referer carrying a token).
REQUEST_URL_HEADERS = frozenset({"referer"})
RESPONSE_URL_HEADERS = frozenset({"location", "content-location"})


def may_hold_secret_field(text: str, names: frozenset[str]) -> bool:
    """Cheap screen: a JSON document without `"name"` for any secret name, and without a
    `\\u` escape (the only way to spell a key's letters otherwise), is never parsed.
    (Plain substring scans of the lower-cased text beat a case-insensitive regex by 10x.)"""
    if "\\u" in text:
        return True
    lowered = text.lower()
    return any(needle in lowered for needle in json_needles(names))


def is_redacted(name: str, value: str) -> bool:
    """A header value that redaction replaced: REDACTED itself, or a cookie list whose every
    value is REDACTED (`a=REDACTED; b=REDACTED`)."""
    if value == REDACTED:
        return True
    if name.lower() not in ("cookie", "set-cookie"):
        return False
    pairs = value.split(";") if name.lower() == "cookie" else value.split(";")[:1]
    return all(p.partition("=")[2].strip() == REDACTED for p in pairs if p.strip())


def _leaves(value: Any, removed: Removed) -> None:
    """Every string inside a removed JSON value, walked without recursion."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            removed.add(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


# -- headers -------------------------------------------------------------------------------

def _credentials(value: str, removed: Removed) -> None:
    """What an auth header's value gives away besides itself: `Bearer X` -> X; Basic also
    its decoded `user:password` and the password."""
    scheme, _, cred = value.strip().partition(" ")
    cred = cred.strip()
    if not cred:
        return
    removed.add(cred)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(cred, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return
        removed.add(decoded)
        removed.add(decoded.partition(":")[2])


def _redact_cookie(value: str, removed: Removed) -> str:
    """`a=1; b=2` -> `a=REDACTED; b=REDACTED`: a client's cookie jar keeps the names."""
    out = []
    for piece in value.split(";"):
        lead = piece[: len(piece) - len(piece.lstrip())]
        name, sep, val = piece.strip().partition("=")
        if not piece.strip():
            out.append(piece)
        elif not sep:
            removed.add(name)
            out.append(f"{lead}{REDACTED}")
        else:
            if val.strip() != REDACTED:
                removed.add(val.strip().strip('"'))
            out.append(f"{lead}{name}={REDACTED}")
    return ";".join(out)


def _expired(attributes: list[str]) -> bool:
    """A Set-Cookie that deletes its cookie (Max-Age=0, or Expires in the past): its value
    is a tombstone such as `deleted`, not a secret worth hunting in the body."""
    for attr in attributes:
        key, _, val = attr.strip().partition("=")
        key = key.strip().lower()
        if key == "max-age" and val.strip().lstrip("-").isdigit() and int(val) <= 0:
            return True
        if key == "expires":
            try:
                when = parsedate_to_datetime(val.strip())
            except (TypeError, ValueError, IndexError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if when < datetime.now(UTC):
                return True
    return False


def _redact_set_cookie(value: str, removed: Removed) -> str:
    """`session=abc; HttpOnly; Path=/` -> `session=REDACTED; HttpOnly; Path=/`."""
    first, *attributes = value.split(";")
    name, sep, val = first.partition("=")
    if not sep:
        if first.strip() != REDACTED:
            removed.add(first.strip())
        return ";".join([REDACTED, *attributes])
    if val.strip() != REDACTED and not _expired(attributes):
        removed.add(val.strip().strip('"'))
    return ";".join([f"{name}={REDACTED}", *attributes])


def _redact_header(name: str, value: str, removed: Removed) -> str:
    lname = name.lower()
    if lname == "cookie":
        return _redact_cookie(value, removed)
    if lname == "set-cookie":
        return _redact_set_cookie(value, removed)
    if value == REDACTED:
        return value
    removed.add(value)
    _credentials(value, removed)
    return REDACTED


# -- query strings -------------------------------------------------------------------------

def _redact_query(qs: str, names: frozenset[str], removed: Removed) -> str | None:
    """A query string with the values of secret names replaced; None if nothing was."""
    parts = qs.split("&")
    changed = False
    for i, part in enumerate(parts):
        raw_name, sep, raw_value = part.partition("=")
        if unquote_plus(raw_name).lower() in names and raw_value != REDACTED:
            if sep:
                removed.add(raw_value)
                removed.add(unquote_plus(raw_value))
            parts[i] = f"{raw_name}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else None


def _redact_url(url: str, names: frozenset[str], removed: Removed) -> str:
    """A request target or an absolute URL with its query's secrets replaced (a fragment,
    which a Location may carry, is treated the same)."""
    if "?" not in url and "#" not in url:
        return url
    base, hash_, fragment = url.partition("#")
    path, q, qs = base.partition("?")
    new_qs = _redact_query(qs, names, removed) if q else None
    new_fragment = _redact_query(fragment, names, removed) if hash_ else None
    if new_qs is None and new_fragment is None:
        return url
    out = path + (q + (qs if new_qs is None else new_qs))
    return out + (hash_ + (fragment if new_fragment is None else new_fragment))


_DISPOSITION_NAME = re.compile(
    r'(?:^|;)\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))', re.IGNORECASE)


def _part_headers(head: bytes) -> Headers:
    lines = head.decode("latin-1").split("\r\n")
    return tuple((k.strip(), v.strip()) for k, sep, v in (ln.partition(":") for ln in lines)
                 if sep)


# -- the redactor ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Redactor:
    """Which names are secret. Names are compared case-insensitively."""

    headers: frozenset[str] = frozenset(DEFAULT_HEADERS)
    response_headers: frozenset[str] = frozenset(DEFAULT_RESPONSE_HEADERS)
    query: frozenset[str] = frozenset(DEFAULT_QUERY)
    json_fields: frozenset[str] = frozenset(DEFAULT_JSON)

    @classmethod
    def with_extra(
        cls,
        headers: Iterable[str] = (),
        query: Iterable[str] = (),
        json_fields: Iterable[str] = (),
    ) -> Redactor:
        base = cls()
        return cls(
            headers=base.headers | {h.lower() for h in headers},
            # an extra header name is a secret in either direction
            response_headers=base.response_headers | {h.lower() for h in headers},
            query=base.query | {q.lower() for q in query},
            json_fields=base.json_fields | {j.lower() for j in json_fields},
        )

    @property
    def form_fields(self) -> frozenset[str]:
        """Form and multipart fields: the JSON names and the query names (a form body is a
        query string; OAuth sends `code` and `client_secret` in one)."""
        return self.json_fields | self.query

    # -- parts -------------------------------------------------------------------------
    def redact_headers(self, headers: Headers, names: frozenset[str],
                       removed: Removed | None = None,
                       url_headers: frozenset[str] = frozenset()) -> Headers:
        removed = set() if removed is None else removed
        if not any(k.lower() in names or k.lower() in url_headers for k, _ in headers):
            return headers
        out = []
        for k, v in headers:
            lname = k.lower()
            if lname in names:
                v = _redact_header(k, v, removed)
            elif lname in url_headers:
                v = _redact_url(v, self.query, removed)
            out.append((k, v))
        new = tuple(out)
        return headers if new == headers else new

    def redact_target(self, target: str, removed: Removed | None = None) -> str:
        return _redact_url(target, self.query, set() if removed is None else removed)

    def redact_value(self, value: Any, removed: Removed | None = None) -> tuple[Any, bool]:
        """JSON fields with a secret name are replaced at any depth. (Recursive: reached
        only through codec.parse_json, which refuses documents deeper than MAX_JSON_DEPTH.)"""
        removed = set() if removed is None else removed
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            changed = False
            for k, v in value.items():
                if isinstance(k, str) and k.lower() in self.json_fields and v != REDACTED:
                    _leaves(v, removed)
                    out[k] = REDACTED
                    changed = True
                else:
                    out[k], c = self.redact_value(v, removed)
                    changed = changed or c
            return out, changed
        if isinstance(value, list):
            items = [self.redact_value(v, removed) for v in value]
            return [v for v, _ in items], any(c for _, c in items)
        return value, False

    def redact_form(self, body: bytes, removed: Removed | None = None) -> bytes:
        removed = set() if removed is None else removed
        new = _redact_query(body.decode("latin-1"), self.form_fields, removed)
        return body if new is None else new.encode("latin-1")

    def redact_json(self, data: bytes, ctype: str, removed: Removed) -> bytes | None:
        """A JSON document (in whatever charset it came) with its secret fields replaced,
        in the same charset; None when nothing secret was found."""
        text = as_text(data, ctype)
        if text is None or not may_hold_secret_field(text.text, self.json_fields):
            return None
        ok, value = parse_json(text.text)
        if ok:
            value, changed = self.redact_value(value, removed)
            if not changed:
                return None
            new = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            # too deep for the tree walk, or not well-formed: scan its tokens instead
            scanned = redact_json_tokens(text.text, self.json_fields, removed)
            if scanned is None:
                return None
            new = scanned
        try:
            return text.encode(new)
        except UnicodeError:
            return text.bom + new.encode("utf-8")

    def redact_multipart(self, data: bytes, boundary: str, removed: Removed) -> bytes:
        """Parts named like a secret get REDACTED as their content; JSON, form and nested
        multipart parts are redacted by their own type. Everything else stays byte for byte
        (the boundary, each part's headers, files)."""
        delimiter = b"--" + boundary.encode("latin-1")
        pieces = data.split(delimiter)
        out = [pieces[0]]
        for piece in pieces[1:]:
            head, sep, content = piece.partition(b"\r\n\r\n")
            if piece.startswith(b"--") or not sep:
                out.append(piece)
                continue
            trail = b"\r\n" if content.endswith(b"\r\n") else b""
            content = content[: len(content) - len(trail)]
            headers = _part_headers(head)
            found = _DISPOSITION_NAME.search(header_value(headers, "content-disposition") or "")
            name = (found.group(1) or found.group(2) or "") if found else ""
            if name.lower() in self.form_fields:
                if content != REDACTED.encode():
                    removed.add(content.decode("utf-8", "replace"))
                    removed.add(content.decode("latin-1"))
                new = REDACTED.encode()
            else:
                _, new = self._body(headers, content, removed)
            out.append(head + sep + new + trail)
        return delimiter.join(out)

    def _body(self, headers: Headers, body: bytes, removed: Removed) -> tuple[Headers, bytes]:
        """Redact JSON, form and multipart bodies; re-encode with the same Content-Encoding."""
        if not body:
            return headers, body
        ctype = header_value(headers, "content-type") or ""
        kind = ctype.split(";")[0].strip().lower()
        encoding = header_value(headers, "content-encoding")
        try:
            data = decode_content(body, encoding)
        except DecodeError:
            return headers, body
        new: bytes | None
        if kind == "application/x-www-form-urlencoded":
            new = self.redact_form(data, removed)
        elif (boundary := boundary_of(ctype)) is not None:
            new = self.redact_multipart(data, boundary, removed)
        elif is_json_type(ctype) or looks_like_json(data):
            new = self.redact_json(data, ctype, removed)
        else:
            return headers, body
        if new is None or new == data:
            return headers, body
        new_body = encode_content(new, encoding)
        return fix_content_length(headers, len(new_body)), new_body

    def redact_body(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return self._body(headers, body, set())

    # -- whole values --------------------------------------------------------------------
    def _request(self, req: Request) -> tuple[Request, Removed]:
        removed: Removed = set()
        headers, body = self._body(req.headers, req.body, removed)
        headers = self.redact_headers(headers, self.headers, removed, REQUEST_URL_HEADERS)
        target = self.redact_target(req.target, removed)
        scrub = Scrubber.of(removed)
        if scrub is not None:
            target = scrub.text(target)
            headers = scrub.headers(headers)
            headers, body = scrub.body(headers, body)
        if headers is req.headers and body is req.body and target == req.target:
            return req, removed
        return replace(req, headers=headers, body=body, target=target), removed

    def request(self, req: Request) -> Request:
        return self._request(req)[0]

    def response(self, resp: Response, removed: Iterable[str] = ()) -> Response:
        """A response's secrets replaced, and with them `removed` (what was taken out of
        its request) wherever it appears."""
        found = set(removed)
        headers, body = self._body(resp.headers, resp.body, found)
        headers = self.redact_headers(headers, self.response_headers, found,
                                      RESPONSE_URL_HEADERS)
        big = resp.big
        if big is not None:  # a body over BIG_BODY, still in its spool (bigredact.py)
            big = redact_big_body(headers, big, self.json_fields, found)
            if big is not resp.big:
                headers = fix_content_length(headers, big.size)
        scrub = Scrubber.of(found)
        if scrub is not None:
            headers = scrub.headers(headers)
            headers, body = scrub.body(headers, body)
        if headers is resp.headers and body is resp.body and big is resp.big:
            return resp
        return replace(resp, headers=headers, body=body, big=big)

    def log_text(self, text: str) -> str:
        return scrub_log_text(text, self.query)

    def exchange(self, ex: Exchange) -> Exchange:
        request, removed = self._request(ex.request)
        response = self.response(ex.response, removed) if ex.response is not None else None
        failure = ex.failure
        scrub = Scrubber.of(removed)
        if failure is not None and scrub is not None:
            message = scrub.text(failure.message)
            if message != failure.message:
                failure = Failure(failure.kind, message)
        if request is ex.request and response is ex.response and failure is ex.failure:
            return ex
        return replace(ex, request=request, response=response, failure=failure)


