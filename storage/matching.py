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

from . import multipart
from .codec import decoded_body, is_json_type, parse_json
from .errors import InvalidInput
from .exchange import Headers, Request
from .headers import is_token
from .negotiate import accept_quality, accepts_codings, content_codings, media_type
from .paths import BODY, InvalidPath, Token, Wild, parse_path
from .redact import REDACTED

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


def _json_part(part: multipart.Part, rules: MatchRules) -> tuple[bool, Any]:
    if not is_json_type(part.content_type):
        return False, None
    ok, value = parse_json(part.content)
    if not ok:
        return False, None
    value = _without_redacted(value)
    for p in rules.paths_within(part.name):
        value = _drop_path(value, p)
    return True, value


def _kept_parts(parts: list[multipart.Part], rules: MatchRules) -> list[multipart.Part]:
    """The parts that take part in matching, by name (repeated names keep their order)."""
    kept = [p for p in parts if p.content != REDACTED.encode() and not rules.ignores_field(p.name)]
    return sorted(kept, key=lambda p: p.name)


def _part_key(part: multipart.Part, rules: MatchRules) -> list[Any]:
    ok, value = _json_part(part, rules)
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
            return ("multipart", [_part_key(p, rules) for p in _kept_parts(parts, rules)])
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


# -- explanations -------------------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_differences(live: Any, rec: Any, where: str, out: list[str], limit: int,
                      what: str = "body field") -> None:
    if len(out) >= limit:
        return
    if isinstance(live, dict) and isinstance(rec, dict):
        for k in sorted(set(live) | set(rec), key=str):
            sub = f"{where}.{k}"
            if k not in rec:
                out.append(f"{what} '{sub}' not recorded")
            elif k not in live:
                out.append(f"{what} '{sub}' missing")
            else:
                _json_differences(live[k], rec[k], sub, out, limit, what)
            if len(out) >= limit:
                return
    elif isinstance(live, list) and isinstance(rec, list) and len(live) == len(rec):
        for i, (a, b) in enumerate(zip(live, rec, strict=True)):
            _json_differences(a, b, f"{where}[{i}]", out, limit, what)
    elif live != rec:
        out.append(f"{what} '{where}': {_short(live)} != {_short(rec)}")


def _value_differences(what: str, live: str | None, rec: str | None, out: list[str],
                       note: str = "") -> None:
    """`<what> 'x' != 'y'`, or that one side lacks it; live value first."""
    if live == rec:
        return
    if rec is None:
        out.append(f"{what} not recorded (sent '{_short(live)}'){note}")
    elif live is None:
        out.append(f"{what} missing (recorded '{_short(rec)}'){note}")
    else:
        out.append(f"{what}: '{_short(live)}' != '{_short(rec)}'{note}")


def _text(content: bytes) -> str | None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if len(text) <= 60 and text.isprintable() else None


def _part_differences(live: list[multipart.Part], rec: list[multipart.Part],
                      rules: MatchRules, out: list[str], limit: int) -> None:
    by_name: dict[str, tuple[list[multipart.Part], list[multipart.Part]]] = {}
    for p in _kept_parts(live, rules):
        by_name.setdefault(p.name, ([], []))[0].append(p)
    for p in _kept_parts(rec, rules):
        by_name.setdefault(p.name, ([], []))[1].append(p)
    for name in sorted(by_name):
        lp, rp = by_name[name]
        what = f"multipart part '{name}'"
        if not rp:
            out.append(f"{what} not recorded")
        elif not lp:
            out.append(f"{what} missing")
        elif len(lp) != len(rp):
            out.append(f"{what}: sent {len(lp)} times, recorded {len(rp)}")
        else:
            for a, b in zip(lp, rp, strict=True):
                _value_differences(f"{what} filename", a.filename, b.filename, out)
                if a.content_type != b.content_type:
                    out.append(f"{what} content type: '{a.content_type}' != '{b.content_type}'")
                if _part_key(a, rules)[3] == _part_key(b, rules)[3]:
                    continue
                ja, jb = _json_part(a, rules), _json_part(b, rules)
                ta, tb = _text(a.content), _text(b.content)
                if ja[0] and jb[0]:
                    _json_differences(ja[1], jb[1], "$", out, limit, f"{what} field")
                elif ta is not None and tb is not None:
                    out.append(f"{what}: '{ta}' != '{tb}'")
                else:
                    out.append(f"{what} content differs ({len(a.content)} bytes sent, "
                               f"{len(b.content)} recorded)")
        if len(out) >= limit:
            return


def _negotiation_differences(live: Request, recorded: Request, response_headers: Headers,
                             out: list[str]) -> None:
    """Accept-Encoding and Accept, where they keep the recorded response from this request."""
    codings = required_codings(recorded.headers, response_headers)
    live_ae = header_values(live.headers, "accept-encoding")
    if codings and not accepts_codings(live_ae, codings):
        note = f" (the recorded response is {', '.join(sorted(codings))})"
        rec_ae = header_values(recorded.headers, "accept-encoding")
        _value_differences("header 'accept-encoding'", live_ae, rec_ae, out, note)
    mtype = media_type(header_values(response_headers, "content-type"))
    live_accept = header_values(live.headers, "accept")
    rec_accept = header_values(recorded.headers, "accept")
    if live_accept != rec_accept and accept_quality(live_accept, mtype) == 0:
        note = f" (the recorded response is {mtype})"
        _value_differences("header 'accept'", live_accept, rec_accept, out, note)


def explain(live: Request, recorded: Request, rules: MatchRules, limit: int = 8,
            response_headers: Headers = ()) -> list[str]:
    """What differs between a live request and a recorded one, live value first.

    `response_headers` (the recorded response's) lets it say when content negotiation keeps
    the recording from this request: a compressed body the request does not accept, or a
    content type its Accept header refuses."""
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
        _value_differences(f"query param '{name}'", None if a is None else ",".join(a),
                           None if b is None else ",".join(b), out)
    lh, rh = dict(headers(live, rules)), dict(headers(recorded, rules))
    for name in rules.match_headers:
        _value_differences(f"header '{name}'", lh.get(name), rh.get(name), out)
    lc, rc = dict(conditions(live, rules)), dict(conditions(recorded, rules))
    for name in CONDITION_HEADERS:
        # sent but not recorded is no difference: a conditional request is also served the
        # plain request's recording (match_keys)
        if name in rc:
            _value_differences(f"header '{name}'", lc.get(name), rc.get(name), out)
    if response_headers:
        _negotiation_differences(live, recorded, response_headers, out)
    lb, rb = body(live, rules), body(recorded, rules)
    if lb != rb:
        if lb[0] == "json" and rb[0] == "json":
            _json_differences(lb[1], rb[1], "$", out, limit)
        elif lb[0] == "form" and rb[0] == "form":
            out.append(f"form body: {_short(lb[1])} != {_short(rb[1])}")
        elif lb[0] == "multipart" and rb[0] == "multipart":
            _part_differences(_parts(live), _parts(recorded), rules, out, limit)
        else:
            out.append(
                f"body differs ({len(live.body)} bytes sent, {len(recorded.body)} recorded)"
            )
    return out[:limit]


def _parts(req: Request) -> list[multipart.Part]:
    return multipart.parts(req.header("content-type"), decoded_body(req.headers, req.body)) or []
