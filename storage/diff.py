"""Diffs of exchanges and tapes: what changed, what is only noise, and how to show it.

Pure code (no mitmproxy, FastAPI or SQLAlchemy), shared by the admin API's diff endpoints,
`wiretape diff` and the drift audit (`drift.py` classifies the changes found here).

Paths read like the data they point into:

    response.status                     status code
    response.failure                    the upstream failure ({"kind", "message"}) as a whole
    response.failure.kind / .message    when both sides failed
    response.headers.content-type       header names lower case; repeated values joined ", "
    response.body                       the body as a whole (binary digest, kind change, empty)
    response.body.items[0].price        inside a JSON body
    response.body[3]                    line 3 (1-based) of a text body: the line number in A
                                        for removed and changed lines, in B for added lines
    request.method / request.url / request.headers.* / request.body...
                                        only with `include_request=True`

JSON keys that are not plain identifiers are quoted: `response.body['a.b']`. Noise patterns
use the same syntax plus `[*]` (any list index or text line) and `.*` (any key); a pattern
also covers everything below it (`response.body.meta` covers `response.body.meta.id`), and
`$.x` is short for `response.body.x` (the syntax of the matching rules).
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deepdiff import DeepDiff

from .codec import body_view, decoded_body
from .errors import InvalidInput
from .exchange import Exchange, Headers, Request

# Headers that say nothing about what the upstream answered. Content-Encoding is here
# because bodies are compared decoded: a gzip answer and a plain one with the same JSON are
# the same answer.
IGNORED_HEADERS = frozenset(
    {
        "date",
        "content-length",
        "content-encoding",
        # hop-by-hop (RFC 9110 7.6.1), plus the legacy Proxy-Connection and Keep-Alive
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        # added by wiretape itself when it replays
        "wiretape-recording",
    }
)


class InvalidPath(InvalidInput):
    """A diff path or noise pattern that cannot be parsed."""


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    VALUE_CHANGED = "value_changed"
    TYPE_CHANGED = "type_changed"


# -- paths --------------------------------------------------------------------------------


class Wild(enum.Enum):
    """Wildcards in noise patterns."""

    INDEX = "[*]"  # any list index or text line
    KEY = ".*"  # any key, index or line


type Token = str | int | Wild

_HEAD = re.compile(r"[A-Za-z_][\w-]*")
_IDENT = re.compile(r"[A-Za-z_$][\w$-]*\Z")
_SEGMENT = re.compile(
    r"""\.([^.\[\]'"\s]+)|\[(\*|\d+)\]|\['([^']*)'\]|\[("(?:[^"\\]|\\.)*")\]"""
)


def parse_path(path: str) -> tuple[Token, ...]:
    """`response.body.items[*].id` -> ("response", "body", "items", Wild.INDEX, "id")."""
    text = path.strip()
    tokens: list[Token]
    if text.startswith("$"):
        tokens, pos = ["response", "body"], 1
    else:
        m = _HEAD.match(text)
        if not m:
            raise InvalidPath(f"path {path!r} must start with a name such as 'response'")
        tokens, pos = [m.group(0)], m.end()
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if not m:
            raise InvalidPath(f"path {path!r} is not valid at {text[pos:]!r}")
        name, index, single, double = m.groups()
        if name is not None:
            tokens.append(Wild.KEY if name == "*" else name)
        elif index is not None:
            tokens.append(Wild.INDEX if index == "*" else int(index))
        elif single is not None:
            tokens.append(single)
        else:
            try:
                tokens.append(json.loads(double))
            except ValueError as e:
                raise InvalidPath(f"path {path!r} has a bad quoted name {double}") from e
        pos = m.end()
    if len(tokens) > 2 and tokens[1] == "headers" and isinstance(tokens[2], str):
        tokens[2] = tokens[2].lower()  # header names are case-insensitive
    return tuple(tokens)


def format_path(tokens: Sequence[Token]) -> str:
    """The inverse of parse_path."""
    out: list[str] = []
    for i, t in enumerate(tokens):
        if isinstance(t, Wild):
            out.append(t.value)
        elif isinstance(t, int):
            out.append(f"[{t}]")
        elif i == 0:
            out.append(t)
        elif _IDENT.match(t):
            out.append("." + t)
        elif "'" not in t:
            out.append(f"['{t}']")
        else:
            out.append("[" + json.dumps(t, ensure_ascii=False) + "]")
    return "".join(out)


def _token_matches(pattern: Token, token: Token) -> bool:
    if pattern is Wild.KEY:
        return True
    if pattern is Wild.INDEX:
        return token is Wild.INDEX or (isinstance(token, int) and not isinstance(token, bool))
    return type(pattern) is type(token) and pattern == token


def path_matches(path: str | Sequence[Token], pattern: str | Sequence[Token]) -> bool:
    """Whether `pattern` covers `path`: equal with wildcards, or an ancestor of it."""
    p = parse_path(pattern) if isinstance(pattern, str) else tuple(pattern)
    t = parse_path(path) if isinstance(path, str) else tuple(path)
    return len(p) <= len(t) and all(_token_matches(a, b) for a, b in zip(p, t, strict=False))


@dataclass(frozen=True, slots=True)
class NoiseMatcher:
    """Compiled noise patterns; call it with a path (or its tokens) to ask if it is noise."""

    patterns: tuple[tuple[Token, ...], ...] = ()

    @classmethod
    def compile(cls, patterns: Iterable[str] | NoiseMatcher) -> NoiseMatcher:
        if isinstance(patterns, NoiseMatcher):
            return patterns
        if isinstance(patterns, str):  # a lone pattern, not an iterable of characters
            patterns = [patterns]
        parsed = {parse_path(p) for p in patterns}
        return cls(tuple(sorted(parsed, key=format_path)))

    def __call__(self, path: str | Sequence[Token]) -> bool:
        tokens = parse_path(path) if isinstance(path, str) else tuple(path)
        return any(path_matches(tokens, p) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)


def noise_matcher(patterns: Iterable[str]) -> NoiseMatcher:
    """Compile noise patterns once (raises InvalidPath for a bad one)."""
    return NoiseMatcher.compile(patterns)


# -- changes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two exchanges."""

    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None
    # What compared it: status, failure, header, json, text, digest, body (the body as a
    # whole: empty vs not, or JSON vs text vs binary), method, url. drift.py classifies by it.
    compared_as: str = ""
    tokens: tuple[str | int, ...] = ()
    # The path generalised for other recordings of the endpoint: list indexes become [*];
    # text line numbers stay, since a varying line sits at a fixed place.
    pattern: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": str(self.kind), "old": self.old, "new": self.new}


def _change(
    tokens: tuple[str | int, ...],
    kind: ChangeKind,
    old: Any,
    new: Any,
    compared_as: str,
    keep_indexes: bool = False,
) -> Change:
    generic: tuple[Token, ...] = tokens
    if not keep_indexes:
        generic = tuple(Wild.INDEX if isinstance(t, int) else t for t in tokens)
    return Change(
        path=format_path(tokens),
        kind=kind,
        old=old,
        new=new,
        compared_as=compared_as,
        tokens=tokens,
        pattern=format_path(generic),
    )


_ROOT_ORDER = {"request": 0, "response": 1}
_PART_ORDER = {"method": 0, "url": 1, "status": 2, "failure": 3, "headers": 4, "body": 5}
_KIND_ORDER = {k: i for i, k in enumerate(ChangeKind)}


def _sort_key(c: Change) -> tuple[Any, ...]:
    t = c.tokens
    root = _ROOT_ORDER.get(str(t[0]), 2) if t else 2
    part = _PART_ORDER.get(str(t[1]), 9) if len(t) > 1 else -1
    rest = tuple((0, x, "") if isinstance(x, int) else (1, 0, x) for x in t)
    return (root, part, rest, _KIND_ORDER[c.kind], _dump(c.old), _dump(c.new))


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class ExchangeDiff:
    """What differs between two exchanges; `ignored` holds what was left out as noise."""

    changes: tuple[Change, ...] = ()
    ignored: tuple[Change, ...] = ()

    @property
    def identical(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        """`{"identical": bool, "changes": [{"path", "kind", "old", "new"}], "ignored": n}`."""
        return {
            "identical": self.identical,
            "changes": [c.to_dict() for c in self.changes],
            "ignored": len(self.ignored),
        }


# -- comparing the parts ------------------------------------------------------------------


def _header_map(headers: Headers, ignored: frozenset[str]) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        lname = name.lower()
        if lname not in ignored:
            out.setdefault(lname, []).append(value)
    return {k: ", ".join(v) for k, v in out.items()}


def _connection_tokens(headers: Headers) -> set[str]:
    # `Connection: close, X-Foo` makes X-Foo hop-by-hop too
    return {
        t.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for t in value.split(",")
        if t.strip()
    }


def _header_changes(prefix: tuple[str, ...], a: Headers, b: Headers) -> list[Change]:
    ignored = IGNORED_HEADERS | _connection_tokens(a) | _connection_tokens(b)
    ha, hb = _header_map(a, ignored), _header_map(b, ignored)
    out = []
    for name in sorted(set(ha) | set(hb)):
        tokens = (*prefix, name)
        if name not in ha:
            out.append(_change(tokens, ChangeKind.ADDED, None, hb[name], "header"))
        elif name not in hb:
            out.append(_change(tokens, ChangeKind.REMOVED, ha[name], None, "header"))
        elif ha[name] != hb[name]:
            out.append(_change(tokens, ChangeKind.VALUE_CHANGED, ha[name], hb[name], "header"))
    return out


def _body_content(headers: Headers, body: bytes) -> tuple[str, Any]:
    """("empty", None) | ("json", value) | ("text", str) | ("binary", "sha256:…")."""
    if not body:
        return ("empty", None)
    view = body_view(headers, body)  # the same JSON/text/binary call the API shows people
    if view["encoding"] == "json":
        return ("json", view["content"])
    if view["encoding"] == "text":
        return ("text", view["content"]) if view["content"] else ("empty", None)
    digest = hashlib.sha256(decoded_body(headers, body)).hexdigest()
    return ("binary", f"sha256:{digest}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _json_changes(prefix: tuple[str, ...], a: Any, b: Any) -> list[Change]:
    # threshold_to_diff_deeper=0: deepdiff >= 8 otherwise reports a dict that shares few
    # keys as one replaced value instead of its added and removed fields.
    # ignore_private_variables=False: otherwise keys starting with "__" are skipped.
    tree = DeepDiff(
        a,
        b,
        view="tree",
        threshold_to_diff_deeper=0,
        ignore_private_variables=False,
        verbose_level=2,
    )
    out = []
    for report, levels in tree.items():
        for level in levels:
            rel = tuple(
                x if isinstance(x, int) else str(x) for x in level.path(output_format="list")
            )
            tokens = (*prefix, *rel)
            if report in ("dictionary_item_added", "iterable_item_added"):
                out.append(_change(tokens, ChangeKind.ADDED, None, level.t2, "json"))
            elif report in ("dictionary_item_removed", "iterable_item_removed"):
                out.append(_change(tokens, ChangeKind.REMOVED, level.t1, None, "json"))
            elif report == "type_changes" and not (_is_number(level.t1) and _is_number(level.t2)):
                out.append(_change(tokens, ChangeKind.TYPE_CHANGED, level.t1, level.t2, "json"))
            elif level.t1 != level.t2:
                # JSON has one number type: 1 and 1.0 are the same value, 1 and 1.5 differ
                out.append(_change(tokens, ChangeKind.VALUE_CHANGED, level.t1, level.t2, "json"))
    return out


def _text_changes(prefix: tuple[str, ...], a: str, b: str) -> list[Change]:
    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    out = []
    matcher = difflib.SequenceMatcher(None, la, lb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            out.append(
                _change((*prefix, i1 + k + 1), ChangeKind.VALUE_CHANGED, la[i1 + k], lb[j1 + k],
                        "text", keep_indexes=True)
            )
        for i in range(i1 + paired, i2):
            out.append(
                _change((*prefix, i + 1), ChangeKind.REMOVED, la[i], None, "text", True)
            )
        for j in range(j1 + paired, j2):
            out.append(_change((*prefix, j + 1), ChangeKind.ADDED, None, lb[j], "text", True))
    return out


def _body_changes(
    prefix: tuple[str, ...], ah: Headers, a: bytes, bh: Headers, b: bytes
) -> list[Change]:
    ka, va = _body_content(ah, a)
    kb, vb = _body_content(bh, b)
    if ka == "empty" and kb == "empty":
        return []
    if ka == "empty":
        return [_change(prefix, ChangeKind.ADDED, None, vb, "body")]
    if kb == "empty":
        return [_change(prefix, ChangeKind.REMOVED, va, None, "body")]
    if ka != kb:
        return [_change(prefix, ChangeKind.TYPE_CHANGED, va, vb, "body")]
    if ka == "json":
        return _json_changes(prefix, va, vb)
    if ka == "text":
        return _text_changes(prefix, va, vb)
    if va != vb:
        return [_change(prefix, ChangeKind.VALUE_CHANGED, va, vb, "digest")]
    return []


def _failure_of(ex: Exchange) -> dict[str, str] | None:
    """The failure as a value, or None when the exchange got a response."""
    if ex.failure is not None:
        return {"kind": str(ex.failure.kind), "message": ex.failure.message}
    if ex.response is None:
        return {"kind": "error", "message": "no response"}
    return None


def _response_changes(a: Exchange, b: Exchange) -> list[Change]:
    fa, fb = _failure_of(a), _failure_of(b)
    status, failure = ("response", "status"), ("response", "failure")
    if fa is not None and fb is not None:
        return [
            _change((*failure, part), ChangeKind.VALUE_CHANGED, fa[part], fb[part], "failure")
            for part in ("kind", "message")
            if fa[part] != fb[part]
        ]
    if fb is not None:
        assert a.response is not None
        return [
            _change(status, ChangeKind.REMOVED, a.response.status, None, "status"),
            _change(failure, ChangeKind.ADDED, None, fb, "failure"),
        ]
    if fa is not None:
        assert b.response is not None
        return [
            _change(failure, ChangeKind.REMOVED, fa, None, "failure"),
            _change(status, ChangeKind.ADDED, None, b.response.status, "status"),
        ]
    ra, rb = a.response, b.response
    assert ra is not None and rb is not None
    out = []
    if ra.status != rb.status:
        out.append(_change(status, ChangeKind.VALUE_CHANGED, ra.status, rb.status, "status"))
    out += _header_changes(("response", "headers"), ra.headers, rb.headers)
    out += _body_changes(("response", "body"), ra.headers, ra.body, rb.headers, rb.body)
    return out


def _request_changes(a: Request, b: Request) -> list[Change]:
    out = []
    if a.method.upper() != b.method.upper():
        out.append(_change(("request", "method"), ChangeKind.VALUE_CHANGED, a.method, b.method,
                           "method"))
    if a.url != b.url:
        out.append(_change(("request", "url"), ChangeKind.VALUE_CHANGED, a.url, b.url, "url"))
    out += _header_changes(("request", "headers"), a.headers, b.headers)
    out += _body_changes(("request", "body"), a.headers, a.body, b.headers, b.body)
    return out


def diff_exchanges(
    a: Exchange,
    b: Exchange,
    noise: Iterable[str] | NoiseMatcher = (),
    strict: bool = False,
    *,
    include_request: bool = False,
) -> ExchangeDiff:
    """What changed from `a` to `b`: status, headers and body of the response (and of the
    request with `include_request`), sorted by path. Changes covered by a noise pattern go
    to `ignored` instead of `changes`, unless `strict`."""
    matcher = NoiseMatcher.compile(noise)  # validated even when strict
    changes = _request_changes(a.request, b.request) if include_request else []
    changes += _response_changes(a, b)
    changes.sort(key=_sort_key)
    if strict or not matcher:
        return ExchangeDiff(tuple(changes), ())
    kept = tuple(c for c in changes if not matcher(c.tokens))
    ignored = tuple(c for c in changes if matcher(c.tokens))
    return ExchangeDiff(kept, ignored)


# -- noise --------------------------------------------------------------------------------


def detect_noise(exchanges: Sequence[Exchange], *, include_request: bool = False) -> set[str]:
    """Patterns for what differs between exchanges of the same match key (several
    recordings of one key, or two live answers to one request), list indexes as `[*]`.

    Status codes and failures are outcomes, not noise: a key that answered 200 once and 503
    once must still show a status class change, so they are never returned here (pass
    `response.status` as noise yourself to hide them)."""
    if len(exchanges) < 2:
        return set()
    base, out = exchanges[0], set()
    # A value that differs between any two exchanges differs between one of them and the
    # first, so comparing each with the first finds everything.
    for other in exchanges[1:]:
        for c in diff_exchanges(base, other, strict=True, include_request=include_request).changes:
            if c.compared_as not in ("status", "failure"):
                out.add(c.pattern)
    return out


# -- tapes --------------------------------------------------------------------------------

type TapeItem = tuple[str, int, Exchange]  # (match key, recording id, exchange)


def endpoint(ex: Exchange) -> str:
    """`METHOD host/path`: what latency and noise are grouped by."""
    req = ex.request
    return f"{req.method.upper()} {req.authority.lower()}{req.path}"


def status_class(ex: Exchange) -> str:
    """`2xx`, `5xx`… or `failure` when the upstream did not answer."""
    if _failure_of(ex) is not None or ex.response is None:
        return "failure"
    return f"{ex.response.status // 100}xx"


def _is_error(ex: Exchange) -> bool:
    return ex.response is None or ex.failure is not None or ex.response.status >= 500


@dataclass(frozen=True, slots=True)
class TapeEntry:
    """A recording found in only one of the two tapes."""

    match_key: str
    seq: int
    id: int
    endpoint: str
    url: str
    status: int | None
    failure: str | None

    @classmethod
    def of(cls, key: str, seq: int, rid: int, ex: Exchange) -> TapeEntry:
        f = _failure_of(ex)
        return cls(key, seq, rid, endpoint(ex), ex.request.url,
                   None if f or ex.response is None else ex.response.status,
                   f["kind"] if f else None)

    def to_dict(self) -> dict[str, Any]:
        return {"match_key": self.match_key, "seq": self.seq, "id": self.id,
                "endpoint": self.endpoint, "url": self.url, "status": self.status,
                "failure": self.failure}


@dataclass(frozen=True, slots=True)
class PairDiff:
    """Recordings with the same match key and seq in both tapes, and what changed."""

    match_key: str
    seq: int
    endpoint: str
    url: str
    a_id: int
    b_id: int
    a_status: str  # status class: 2xx… or failure
    b_status: str
    diff: ExchangeDiff

    def to_dict(self) -> dict[str, Any]:
        return {"match_key": self.match_key, "seq": self.seq, "endpoint": self.endpoint,
                "url": self.url, "a_id": self.a_id, "b_id": self.b_id,
                "changes": [c.to_dict() for c in self.diff.changes],
                "ignored": len(self.diff.ignored)}


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """duration_ms percentiles of one endpoint's answered exchanges in each tape."""

    endpoint: str
    a_count: int
    a_p50: float | None
    a_p95: float | None
    b_count: int
    b_p50: float | None
    b_p95: float | None

    @property
    def p50_change(self) -> float | None:
        return _delta(self.a_p50, self.b_p50)

    @property
    def p95_change(self) -> float | None:
        return _delta(self.a_p95, self.b_p95)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint,
                "a": {"count": self.a_count, "p50": self.a_p50, "p95": self.a_p95},
                "b": {"count": self.b_count, "p50": self.b_p50, "p95": self.b_p95},
                "p50_change": self.p50_change, "p95_change": self.p95_change}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 3)


@dataclass(frozen=True, slots=True)
class ErrorRate:
    """Share of a tape's recordings that are 5xx answers or upstream failures."""

    total: int
    errors: int

    @property
    def rate(self) -> float:
        return round(self.errors / self.total, 4) if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "errors": self.errors, "rate": self.rate}


@dataclass(frozen=True, slots=True)
class TapeDiff:
    """Tape A (baseline) against tape B, paired by match key and seq."""

    added: tuple[TapeEntry, ...]
    removed: tuple[TapeEntry, ...]
    pairs: tuple[PairDiff, ...]  # every pair, identical ones included
    latency: tuple[LatencyStats, ...]
    error_rate_a: ErrorRate
    error_rate_b: ErrorRate
    noise_given: tuple[str, ...] = ()
    noise_detected: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (endpoint, patterns)

    @property
    def changed(self) -> tuple[PairDiff, ...]:
        return tuple(p for p in self.pairs if not p.diff.identical)

    @property
    def unchanged(self) -> int:
        return sum(1 for p in self.pairs if p.diff.identical)

    @property
    def status_class_changes(self) -> tuple[PairDiff, ...]:
        return tuple(p for p in self.pairs if p.a_status != p.b_status)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "changed": [p.to_dict() for p in self.changed],
            "unchanged": self.unchanged,
            "status_class_changes": [
                {"match_key": p.match_key, "seq": p.seq, "endpoint": p.endpoint,
                 "a_id": p.a_id, "b_id": p.b_id, "from": p.a_status, "to": p.b_status}
                for p in self.status_class_changes
            ],
            "latency": [s.to_dict() for s in self.latency],
            "error_rate": {
                "a": self.error_rate_a.to_dict(),
                "b": self.error_rate_b.to_dict(),
                "change": round(self.error_rate_b.rate - self.error_rate_a.rate, 4),
            },
            "noise": {
                "given": list(self.noise_given),
                "detected": {ep: list(ps) for ep, ps in self.noise_detected},
            },
        }


def _group(items: Sequence[TapeItem]) -> dict[str, list[tuple[int, Exchange]]]:
    groups: dict[str, list[tuple[int, Exchange]]] = {}
    for key, rid, ex in items:
        groups.setdefault(key, []).append((rid, ex))
    return groups


def _latency(a: Sequence[TapeItem], b: Sequence[TapeItem]) -> tuple[LatencyStats, ...]:
    # Failures are left out: a timeout's duration is the timeout, not the endpoint's speed.
    da: dict[str, list[float]] = {}
    db: dict[str, list[float]] = {}
    for items, into in ((a, da), (b, db)):
        for _, _, ex in items:
            values = into.setdefault(endpoint(ex), [])
            if _failure_of(ex) is None:
                values.append(ex.duration_ms)
    return tuple(
        LatencyStats(
            ep,
            len(da.get(ep, [])), percentile(da.get(ep, []), 0.5), percentile(da.get(ep, []), 0.95),
            len(db.get(ep, [])), percentile(db.get(ep, []), 0.5), percentile(db.get(ep, []), 0.95),
        )
        for ep in sorted(set(da) | set(db))
    )


def diff_tapes(
    a: Sequence[TapeItem],
    b: Sequence[TapeItem],
    noise: Iterable[str] = (),
    strict: bool = False,
    *,
    auto_noise: bool = True,
) -> TapeDiff:
    """Tape A (baseline) against tape B.

    Items are (match key, recording id, exchange); within a key they are paired in the
    order given, so pass them in `seq` order. Both tapes must be keyed under the same
    matching rules. With `auto_noise`, what differs between recordings of one key (in
    either tape) is noise for that key's whole endpoint, on top of the `noise` given."""
    given = tuple(sorted({noise} if isinstance(noise, str) else set(noise)))
    NoiseMatcher.compile(given)  # fail early on a bad pattern
    ga, gb = _group(a), _group(b)
    detected: dict[str, set[str]] = {}
    if auto_noise:
        for groups in (ga, gb):
            for entries in groups.values():
                if len(entries) > 1:
                    found = detect_noise([ex for _, ex in entries])
                    detected.setdefault(endpoint(entries[0][1]), set()).update(found)
    matchers: dict[str, NoiseMatcher] = {}

    def matcher_for(ep: str) -> NoiseMatcher:
        if ep not in matchers:
            matchers[ep] = NoiseMatcher.compile([*given, *detected.get(ep, ())])
        return matchers[ep]

    added: list[TapeEntry] = []
    removed: list[TapeEntry] = []
    pairs: list[PairDiff] = []
    for key in sorted(set(ga) | set(gb)):
        la, lb = ga.get(key, []), gb.get(key, [])
        for seq in range(max(len(la), len(lb))):
            if seq < len(la) and seq < len(lb):
                (aid, ea), (bid, eb) = la[seq], lb[seq]
                ep = endpoint(ea)
                d = diff_exchanges(ea, eb, matcher_for(ep), strict)
                pairs.append(PairDiff(key, seq, ep, ea.request.url, aid, bid,
                                      status_class(ea), status_class(eb), d))
            elif seq < len(la):
                removed.append(TapeEntry.of(key, seq, *la[seq]))
            else:
                added.append(TapeEntry.of(key, seq, *lb[seq]))

    def order(x: TapeEntry | PairDiff) -> tuple[str, str, int]:
        return (x.endpoint, x.match_key, x.seq)

    return TapeDiff(
        added=tuple(sorted(added, key=order)),
        removed=tuple(sorted(removed, key=order)),
        pairs=tuple(sorted(pairs, key=order)),
        latency=_latency(a, b),
        error_rate_a=ErrorRate(len(a), sum(1 for _, _, ex in a if _is_error(ex))),
        error_rate_b=ErrorRate(len(b), sum(1 for _, _, ex in b if _is_error(ex))),
        noise_given=given,
        noise_detected=tuple((ep, tuple(sorted(ps))) for ep, ps in sorted(detected.items())
                             if ps),
    )


# -- rendering ----------------------------------------------------------------------------

_SYMBOL = {ChangeKind.ADDED: "+", ChangeKind.REMOVED: "-", ChangeKind.VALUE_CHANGED: "~",
           ChangeKind.TYPE_CHANGED: "!"}


def short_value(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def change_line(c: Change) -> str:
    """`~ response.body.items[0].price: 10 -> 12` (+ added, - removed, ! type changed)."""
    if c.kind is ChangeKind.ADDED:
        detail = short_value(c.new)
    elif c.kind is ChangeKind.REMOVED:
        detail = short_value(c.old)
    else:
        detail = f"{short_value(c.old)} -> {short_value(c.new)}"
    return f"{_SYMBOL[c.kind]} {c.path}: {detail}"


def _ms(v: float | None, sign: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1f}" if sign else f"{v:.1f}"


def _rate(e: ErrorRate) -> str:
    return f"{e.rate * 100:.1f}% ({e.errors}/{e.total})"


def render_text(result: TapeDiff) -> str:
    """A report to read at a glance: counts first, then each difference."""
    lines = [
        f"{len(result.changed)} changed, {len(result.added)} added, "
        f"{len(result.removed)} removed, {result.unchanged} unchanged",
        f"error rate: A {_rate(result.error_rate_a)}, B {_rate(result.error_rate_b)}",
    ]
    if result.changed:
        lines += ["", "changed:"]
        for p in result.changed:
            lines.append(f"  {p.endpoint}  key {p.match_key[:12]} #{p.seq}  "
                         f"recording {p.a_id} -> {p.b_id}")
            lines += [f"    {change_line(c)}" for c in p.diff.changes]
    for title, entries in (("added (only in B):", result.added),
                           ("removed (only in A):", result.removed)):
        if entries:
            lines += ["", title]
            for e in entries:
                outcome = e.failure if e.status is None else str(e.status)
                lines.append(f"  {e.endpoint}  key {e.match_key[:12]} #{e.seq}  "
                             f"recording {e.id}  {outcome}")
    if result.status_class_changes:
        lines += ["", "status class changes:"]
        for p in result.status_class_changes:
            lines.append(f"  {p.endpoint}  key {p.match_key[:12]} #{p.seq}  "
                         f"{p.a_status} -> {p.b_status}")
    if result.latency:
        lines += ["", "latency ms (p50 / p95):"]
        for s in result.latency:
            lines.append(f"  {s.endpoint}  A {_ms(s.a_p50)} / {_ms(s.a_p95)}  "
                         f"B {_ms(s.b_p50)} / {_ms(s.b_p95)}  "
                         f"change {_ms(s.p50_change, True)} / {_ms(s.p95_change, True)}")
    return "\n".join(lines) + "\n"


_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text with the characters XML 1.0 cannot hold (NUL, most controls) replaced."""
    return _XML_INVALID.sub("\ufffd", text)


def render_junit(result: TapeDiff, suite_name: str = "wiretape diff") -> str:
    """JUnit XML: one testcase per match key and seq; changed and removed ones fail."""
    cases: list[tuple[tuple[str, str, int], ET.Element]] = []

    def case(endpoint: str, key: str, seq: int) -> ET.Element:
        el = ET.Element("testcase", classname=xml_safe(suite_name),
                        name=xml_safe(f"{endpoint} [{key[:12]}#{seq}]"))
        cases.append(((endpoint, key, seq), el))
        return el

    failures = 0
    for p in result.pairs:
        el = case(p.endpoint, p.match_key, p.seq)
        if not p.diff.identical:
            failures += 1
            n = len(p.diff.changes)
            f = ET.SubElement(el, "failure", type="changed",
                              message=xml_safe(f"{n} change{'s' if n != 1 else ''} "
                                               f"(recording {p.a_id} -> {p.b_id})"))
            f.text = xml_safe("\n".join(change_line(c) for c in p.diff.changes))
    for e in result.removed:
        failures += 1
        el = case(e.endpoint, e.match_key, e.seq)
        ET.SubElement(el, "failure", type="removed",
                      message=xml_safe(f"only in A (recording {e.id}): {e.url}"))
    for e in result.added:
        el = case(e.endpoint, e.match_key, e.seq)
        ET.SubElement(el, "system-out").text = xml_safe(f"only in B (recording {e.id}): {e.url}")

    cases.sort(key=lambda c: c[0])
    attrs = {"name": xml_safe(suite_name), "tests": str(len(cases)),
             "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for name, value in (("error_rate_a", result.error_rate_a.rate),
                        ("error_rate_b", result.error_rate_b.rate)):
        ET.SubElement(props, "property", name=name, value=str(value))
    suite.extend(el for _, el in cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
