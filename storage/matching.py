"""Match keys and their explanations: when two requests are "the same request" for replay.

Each part of a request is compared by a tiny function named after it (after VCR.py's
matchers); `explain()` turns a failed match into readable differences for the 502 miss
body and the misses journal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .codec import decoded_body, parse_json
from .errors import InvalidInput
from .exchange import Request
from .headers import is_token
from .paths import BODY, InvalidPath, Token, Wild, parse_path
from .redact import REDACTED


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


def body(req: Request, rules: MatchRules) -> tuple[str, Any]:
    """("json", canonical value) | ("form", sorted pairs) | ("bytes", sha256) | ("none", "")."""
    if not req.body:
        return ("none", "")
    data = decoded_body(req.headers, req.body)
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(data.decode("latin-1"), keep_blank_values=True)
        return ("form", sorted((kv for kv in pairs if kv[1] != REDACTED), key=lambda kv: kv[0]))
    ok, value = parse_json(data)
    if ok:
        value = _without_redacted(value)
        for p in rules._paths:
            value = _drop_path(value, p)
        return ("json", value)
    return ("bytes", hashlib.sha256(data).hexdigest())


def key_parts(req: Request, rules: MatchRules) -> list[Any]:
    return [method(req), host(req, rules), path(req), query(req, rules), headers(req, rules),
            body(req, rules)]


def match_key(req: Request, rules: MatchRules) -> str:
    """A stable digest of everything that makes two requests the same request."""
    canonical = json.dumps(
        key_parts(req, rules), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]


# -- explanations -------------------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_differences(live: Any, rec: Any, where: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(live, dict) and isinstance(rec, dict):
        for k in sorted(set(live) | set(rec), key=str):
            sub = f"{where}.{k}"
            if k not in rec:
                out.append(f"body field '{sub}' not recorded")
            elif k not in live:
                out.append(f"body field '{sub}' missing")
            else:
                _json_differences(live[k], rec[k], sub, out, limit)
            if len(out) >= limit:
                return
    elif isinstance(live, list) and isinstance(rec, list) and len(live) == len(rec):
        for i, (a, b) in enumerate(zip(live, rec, strict=True)):
            _json_differences(a, b, f"{where}[{i}]", out, limit)
    elif live != rec:
        out.append(f"body field '{where}': {_short(live)} != {_short(rec)}")


def explain(live: Request, recorded: Request, rules: MatchRules, limit: int = 8) -> list[str]:
    """What differs between a live request and a recorded one, live value first."""
    out: list[str] = []
    if method(live) != method(recorded):
        out.append(f"method: '{method(live)}' != '{method(recorded)}'")
    if not rules.ignore_host:
        if live.scheme != recorded.scheme:
            out.append(f"scheme: '{live.scheme}' != '{recorded.scheme}'")
        if live.host.lower() != recorded.host.lower():
            out.append(f"host: '{live.host}' != '{recorded.host}'")
        if live.port != recorded.port:
            out.append(f"port: {live.port} != {recorded.port}")
    if path(live) != path(recorded):
        out.append(f"path: '{_short(path(live))}' != '{_short(path(recorded))}'")
    lq: dict[str, list[str]] = {}
    rq: dict[str, list[str]] = {}
    for k, v in query(live, rules):
        lq.setdefault(k, []).append(v)
    for k, v in query(recorded, rules):
        rq.setdefault(k, []).append(v)
    for name in sorted(set(lq) | set(rq)):
        a, b = lq.get(name), rq.get(name)
        if a == b:
            continue
        if b is None:
            out.append(f"query param '{name}' not recorded (sent '{_short(','.join(a or []))}')")
        elif a is None:
            out.append(f"query param '{name}' missing (recorded '{_short(','.join(b))}')")
        else:
            out.append(f"query param '{name}': '{_short(','.join(a))}' != '{_short(','.join(b))}'")
    lh, rh = dict(headers(live, rules)), dict(headers(recorded, rules))
    for name in rules.match_headers:
        if lh.get(name) != rh.get(name):
            out.append(f"header '{name}': {_short(lh.get(name))!s} != {_short(rh.get(name))!s}")
    lb, rb = body(live, rules), body(recorded, rules)
    if lb != rb:
        if lb[0] == "json" and rb[0] == "json":
            _json_differences(lb[1], rb[1], "$", out, limit)
        elif lb[0] == "form" and rb[0] == "form":
            out.append(f"form body: {_short(lb[1])} != {_short(rb[1])}")
        else:
            out.append(
                f"body differs ({len(live.body)} bytes sent, {len(recorded.body)} recorded)"
            )
    return out[:limit]
