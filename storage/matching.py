"""Match keys: when two requests are "the same request" for replay.

Each part of a request is normalised by a tiny function named after it (after VCR.py's
matchers); `explain.py` turns a failed match into readable differences from the same
functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from . import multipart
from .codec import decoded_body, is_json_type, parse_json
from .errors import InvalidInput
from .exchange import Headers, Request
from .headers import is_token
from .negotiate import accepts_codings, content_codings, media_type
from .paths import BODY, InvalidPath, Token, Wild, parse_path
from .scrub import REDACTED

# The version of what match_key() computes. Raise it with any change that gives some request
# another key: every tape stored under an older version is re-keyed when a store is opened
# (repository.rekey_outdated_tapes), so recordings made before the change still replay.
# 1: method, host, path, query, match headers, body. 2: conditional and range headers;
# multipart bodies by their parts; ignore_body_paths reach form fields and multipart parts.
KEY_VERSION = 2

# Request headers that change what a response means: part of every key. A request that
# carries them and has no recording of its own falls back to the same request without them
# (a full 200 answers a conditional or range request correctly; a 304 or 206 does not
# answer a plain one).
CONDITION_HEADERS = ("if-match", "if-modified-since", "if-none-match", "if-range", "range")


class InvalidRule(InvalidInput):
    """A matching rule that cannot be applied (bad JSON path, bad header name)."""


def parse_body_path(path: str) -> tuple[Token, ...]:
    """`$.items[*].id` -> ("items", Wild.INDEX, "id"): a path into a JSON request body, in
    the grammar of storage/paths.py; a wildcard matches every list item or key."""
    if not path.strip().startswith("$"):
        raise InvalidRule(f"body path {path!r} must start with '$'")
    try:
        tokens = parse_path(path, "body path")[len(BODY):]
    except InvalidPath as e:
        raise InvalidRule(str(e)) from e
    if not tokens:
        raise InvalidRule(f"body path {path!r} names no field")
    return tokens


@dataclass(frozen=True, slots=True)
class MatchRules:
    """Per-tape matching rules, stored as data so keys can be recomputed when they change."""

    ignore_query: frozenset[str] = frozenset()
    ignore_body_paths: tuple[str, ...] = ()
    match_headers: tuple[str, ...] = ()
    ignore_host: bool = False
    _paths: tuple[tuple[Token, ...], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def create(
        cls,
        ignore_query: Iterable[str] = (),
        ignore_body_paths: Iterable[str] = (),
        match_headers: Iterable[str] = (),
        ignore_host: bool = False,
    ) -> MatchRules:
        paths = tuple(ignore_body_paths)
        parsed = tuple(parse_body_path(p) for p in paths)
        headers = tuple(sorted({h.strip().lower() for h in match_headers}))
        for h in headers:
            if not is_token(h):
                raise InvalidRule(f"header name {h!r} is not valid")
        return cls(frozenset(ignore_query), paths, headers, bool(ignore_host), parsed)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MatchRules:
        data = data or {}
        return cls.create(
            ignore_query=data.get("ignore_query") or (),
            ignore_body_paths=data.get("ignore_body_paths") or (),
            match_headers=data.get("match_headers") or (),
            ignore_host=bool(data.get("ignore_host", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ignore_query": sorted(self.ignore_query),
            "ignore_body_paths": list(self.ignore_body_paths),
            "match_headers": list(self.match_headers),
            "ignore_host": self.ignore_host,
        }

    def ignores_field(self, name: str) -> bool:
        """Whether a path names this top-level field (`$.name`, `$.*`) as a whole: a form
        field or a multipart part of that name is left out of the key."""
        return any(len(p) == 1 and (p[0] == name or isinstance(p[0], Wild)) for p in self._paths)

    def paths_within(self, name: str) -> tuple[tuple[Token, ...], ...]:
        """The rest of each path that goes inside the top-level field `name` (`$.meta.ts` ->
        ("ts",) for a JSON multipart part called meta)."""
        return tuple(p[1:] for p in self._paths
                     if len(p) > 1 and (p[0] == name or isinstance(p[0], Wild)))


def _drop_path(value: Any, tokens: tuple[Token, ...]) -> Any:
    if not tokens:
        return value
    head, rest = tokens[0], tokens[1:]
    if isinstance(value, dict):
        if isinstance(head, Wild):
            keys = list(value)
        elif isinstance(head, str) and head in value:
            keys = [head]
        else:
            return value
        out = dict(value)
        for k in keys:
            if rest:
                out[k] = _drop_path(out[k], rest)
            else:
                del out[k]
        return out
    if isinstance(value, list):
        if isinstance(head, Wild):
            idx = list(range(len(value)))
        elif isinstance(head, int) and 0 <= head < len(value):
            idx = [head]
        else:
            return value
        out_l = list(value)
        if not rest:
            return [v for i, v in enumerate(out_l) if i not in set(idx)]
        for i in idx:
            out_l[i] = _drop_path(out_l[i], rest)
        return out_l
    return value


def _without_redacted(value: Any) -> Any:
    """Redacted values never take part in matching: drop fields whose value was redacted."""
    if isinstance(value, dict):
        return {k: _without_redacted(v) for k, v in value.items() if v != REDACTED}
    if isinstance(value, list):
        return [_without_redacted(v) for v in value]
    return value


def header_values(headers: Headers, name: str) -> str | None:
    """Every value of a header, joined by ", " as HTTP allows for list headers; None if absent."""
    lname = name.lower()
    values = [v for k, v in headers if k.lower() == lname]
    return ", ".join(values) if values else None


# -- the parts of a request, each normalised by its own small function -------------------

def method(req: Request) -> str:
    return req.method.upper()


def host(req: Request, rules: MatchRules) -> tuple[str, str, int] | None:
    return None if rules.ignore_host else (req.scheme, req.host.lower(), req.port)


def path(req: Request) -> str:
    return req.path


def query(req: Request, rules: MatchRules) -> list[tuple[str, str]]:
    # order-insensitive across names, but repeated names keep their order (stable sort)
    pairs = [(k, v) for k, v in req.query if k not in rules.ignore_query and v != REDACTED]
    return sorted(pairs, key=lambda kv: kv[0])


def headers(req: Request, rules: MatchRules) -> list[tuple[str, str]]:
    if not rules.match_headers:
        return []
    wanted = set(rules.match_headers)
    return sorted(
        (k.lower(), v) for k, v in req.headers if k.lower() in wanted and v != REDACTED
    )


def _condition_value(name: str, value: str) -> str:
    # `bytes=0-99, 200-` and `bytes=0-99,200-` are one range; validators compare as written
    if name == "range":
        return "".join(value.split()).lower()
    return ", ".join(v.strip() for v in value.split(",")) if "," in value else value.strip()


def conditions(req: Request, rules: MatchRules) -> list[tuple[str, str]]:
    """The conditional and range headers (CONDITION_HEADERS) sent, normalised; those the
    rules already match as headers are left to `headers`."""
    if not any(k.lower() in CONDITION_HEADERS for k, _ in req.headers):
        return []
    out = []
    for name in CONDITION_HEADERS:
        value = header_values(req.headers, name)
        if value is not None and value != REDACTED and name not in rules.match_headers:
            out.append((name, _condition_value(name, value)))
    return out


def json_part(part: multipart.Part, rules: MatchRules) -> tuple[bool, Any]:
    if not is_json_type(part.content_type):
        return False, None
    ok, value = parse_json(part.content)
    if not ok:
        return False, None
    value = _without_redacted(value)
    for p in rules.paths_within(part.name):
        value = _drop_path(value, p)
    return True, value


def kept_parts(parts: list[multipart.Part], rules: MatchRules) -> list[multipart.Part]:
    """The parts that take part in matching, by name (repeated names keep their order)."""
    kept = [p for p in parts if p.content != REDACTED.encode() and not rules.ignores_field(p.name)]
    return sorted(kept, key=lambda p: p.name)


def part_key(part: multipart.Part, rules: MatchRules) -> list[Any]:
    ok, value = json_part(part, rules)
    content = ["json", value] if ok else ["sha256", part.digest]
    return [part.name, part.filename, part.content_type, content]


def body(req: Request, rules: MatchRules) -> tuple[str, Any]:
    """("json", canonical value) | ("form", sorted pairs) | ("multipart", parts by name) |
    ("bytes", sha256) | ("none", "")."""
    if not req.body:
        return ("none", "")
    data = decoded_body(req.headers, req.body)
    ctype_header = req.header("content-type")
    ctype = media_type(ctype_header)
    if ctype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(data.decode("latin-1"), keep_blank_values=True)
        kept = (kv for kv in pairs if kv[1] != REDACTED and not rules.ignores_field(kv[0]))
        return ("form", sorted(kept, key=lambda kv: kv[0]))
    if ctype.startswith("multipart/"):
        parts = multipart.parts(ctype_header, data)
        if parts is not None:  # else compared as bytes, like any body that does not parse
            return ("multipart", [part_key(p, rules) for p in kept_parts(parts, rules)])
    ok, value = parse_json(data)
    if ok:
        value = _without_redacted(value)
        for p in rules._paths:
            value = _drop_path(value, p)
        return ("json", value)
    return ("bytes", hashlib.sha256(data).hexdigest())


def key_parts(req: Request, rules: MatchRules) -> list[Any]:
    """Everything in the key but the conditional headers (see `match_keys`)."""
    return [method(req), host(req, rules), path(req), query(req, rules), headers(req, rules),
            body(req, rules)]


def _digest(parts: list[Any]) -> str:
    canonical = json.dumps(
        parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def match_keys(req: Request, rules: MatchRules) -> tuple[str, str | None]:
    """(the request's key, the key of the same request without its conditional and range
    headers, or None when it sent none): replay falls back to the second when the first has
    no recording. A request without those headers keeps the key it had before they counted."""
    parts = key_parts(req, rules)
    conds = conditions(req, rules)
    if not conds:
        return _digest(parts), None
    base = _digest(parts)
    parts.append(conds)
    return _digest(parts), base


def match_key(req: Request, rules: MatchRules) -> str:
    """A stable digest of everything that makes two requests the same request."""
    return match_keys(req, rules)[0]


# -- what a recorded response asks of a request beyond its key ----------------------------

def required_codings(request_headers: Headers, response_headers: Headers) -> frozenset[str]:
    """The content codings of a recorded response that a request must accept to be served
    it: those the upstream applied because the recorded request offered them. A coding the
    upstream applied unasked binds no one (the same client would get it again)."""
    codings = content_codings(header_values(response_headers, "content-encoding"))
    if codings and accepts_codings(header_values(request_headers, "accept-encoding"), codings):
        return codings
    return frozenset()
