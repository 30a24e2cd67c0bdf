"""What changed between two exchanges, part by part, as paths of storage/paths.py's grammar.

Headers are compared by lower-case name (repeated values joined ", "); bodies decoded:
JSON structurally, server-sent events as a list of events, text by lines (the line number in
A for removed and changed lines, in B for added ones), anything else, and bodies too big to
hold in memory, by digest. Pure code: no mitmproxy, FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wiretape.storage.bodies import is_event_stream, sse_events
from wiretape.storage.codec import body_view, decoded_body
from wiretape.storage.exchange import Exchange, FailureKind, Headers, Request, Response
from wiretape.storage.headers import HOP_BY_HOP, connection_tokens
from wiretape.storage.paths import Token, Wild, format_path

from .patterns import NoiseMatcher

# Headers that say nothing about what the upstream answered. Content-Encoding is here
# because bodies are compared decoded: a gzip answer and a plain one with the same JSON are
# the same answer.
IGNORED_HEADERS = HOP_BY_HOP | {
    "date",
    "content-length",
    "content-encoding",
    "wiretape-recording",  # added by wiretape itself when it replays
}


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    VALUE_CHANGED = "value_changed"
    TYPE_CHANGED = "type_changed"


class Compared(enum.StrEnum):
    """What compared a change; drift classification goes by it."""

    METHOD = "method"
    URL = "url"
    STATUS = "status"
    FAILURE = "failure"  # the upstream failure, or one part of it
    HEADER = "header"
    BODY = "body"  # the body as a whole: empty vs not, or JSON vs text vs binary
    JSON = "json"
    TEXT = "text"
    DIGEST = "digest"  # a binary body


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two exchanges."""

    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None
    compared_as: Compared = Compared.BODY
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
    compared_as: Compared,
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


def short_value(value: Any, limit: int = 80) -> str:
    """A value as JSON, cut to `limit` characters (for one-line messages)."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class ExchangeDiff:
    """What differs between two exchanges; `ignored` holds what was left out as noise."""

    changes: tuple[Change, ...] = ()
    ignored: tuple[Change, ...] = ()

    @property
    def identical(self) -> bool:
        return not self.changes

    def without(self, noise: NoiseMatcher) -> ExchangeDiff:
        """The same diff with what `noise` covers moved to `ignored`."""
        if not noise:
            return self
        kept = tuple(c for c in self.changes if not noise(c.tokens))
        moved = tuple(c for c in self.changes if noise(c.tokens))
        return ExchangeDiff(kept, self.ignored + moved)

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


def _header_changes(prefix: tuple[str, ...], a: Headers, b: Headers) -> list[Change]:
    ignored = IGNORED_HEADERS | connection_tokens(a) | connection_tokens(b)
    ha, hb = _header_map(a, ignored), _header_map(b, ignored)
    out = []
    for name in sorted(set(ha) | set(hb)):
        tokens = (*prefix, name)
        if name not in ha:
            out.append(_change(tokens, ChangeKind.ADDED, None, hb[name], Compared.HEADER))
        elif name not in hb:
            out.append(_change(tokens, ChangeKind.REMOVED, ha[name], None, Compared.HEADER))
        elif ha[name] != hb[name]:
            out.append(_change(tokens, ChangeKind.VALUE_CHANGED, ha[name], hb[name],
                               Compared.HEADER))
    return out


def _body_content(headers: Headers, body: bytes) -> tuple[str, Any]:
    """("empty", None) | ("json", value) | ("events", [event, …]) | ("text", str) |
    ("binary", "sha256:…"). An event stream is its list of events (storage/bodies.py), so
    two streams compare event by event and field by field."""
    if not body:
        return ("empty", None)
    if is_event_stream(headers):
        try:
            return ("events", sse_events(decoded_body(headers, body).decode("utf-8")))
        except UnicodeDecodeError:
            pass
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
    from deepdiff import DeepDiff  # imported by the first diff, not at `serve` start-up

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
    json_ = Compared.JSON
    for report, levels in tree.items():
        for level in levels:
            rel = tuple(
                x if isinstance(x, int) else str(x) for x in level.path(output_format="list")
            )
            tokens = (*prefix, *rel)
            if report in ("dictionary_item_added", "iterable_item_added"):
                out.append(_change(tokens, ChangeKind.ADDED, None, level.t2, json_))
            elif report in ("dictionary_item_removed", "iterable_item_removed"):
                out.append(_change(tokens, ChangeKind.REMOVED, level.t1, None, json_))
            elif report == "type_changes" and not (_is_number(level.t1) and _is_number(level.t2)):
                out.append(_change(tokens, ChangeKind.TYPE_CHANGED, level.t1, level.t2, json_))
            elif level.t1 != level.t2:
                # JSON has one number type: 1 and 1.0 are the same value, 1 and 1.5 differ
                out.append(_change(tokens, ChangeKind.VALUE_CHANGED, level.t1, level.t2, json_))
    return out


def _text_changes(prefix: tuple[str, ...], a: str, b: str) -> list[Change]:
    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    out = []
    matcher = difflib.SequenceMatcher(None, la, lb, autojunk=False)

    def line(n: int, kind: ChangeKind, old: str | None, new: str | None) -> Change:
        return _change((*prefix, n), kind, old, new, Compared.TEXT, keep_indexes=True)

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        out += [line(i1 + k + 1, ChangeKind.VALUE_CHANGED, la[i1 + k], lb[j1 + k])
                for k in range(paired)]
        out += [line(i + 1, ChangeKind.REMOVED, la[i], None) for i in range(i1 + paired, i2)]
        out += [line(j + 1, ChangeKind.ADDED, None, lb[j]) for j in range(j1 + paired, j2)]
    return out


def _body_changes(
    prefix: tuple[str, ...], ah: Headers, a: bytes, bh: Headers, b: bytes
) -> list[Change]:
    ka, va = _body_content(ah, a)
    kb, vb = _body_content(bh, b)
    if ka == "empty" and kb == "empty":
        return []
    if ka == "empty":
        return [_change(prefix, ChangeKind.ADDED, None, vb, Compared.BODY)]
    if kb == "empty":
        return [_change(prefix, ChangeKind.REMOVED, va, None, Compared.BODY)]
    if ka != kb:
        return [_change(prefix, ChangeKind.TYPE_CHANGED, va, vb, Compared.BODY)]
    if ka in ("json", "events"):
        return _json_changes(prefix, va, vb)
    if ka == "text":
        return _text_changes(prefix, va, vb)
    if va != vb:
        return [_change(prefix, ChangeKind.VALUE_CHANGED, va, vb, Compared.DIGEST)]
    return []


def failure_of(ex: Exchange) -> dict[str, str] | None:
    """The failure as a value, or None when the exchange got a response."""
    if ex.failure is not None:
        return {"kind": str(ex.failure.kind), "message": ex.failure.message}
    if ex.response is None:
        return {"kind": str(FailureKind.ERROR), "message": "no response"}
    return None


def _response_changes(a: Exchange, b: Exchange) -> list[Change]:
    fa, fb = failure_of(a), failure_of(b)
    status, failure = ("response", "status"), ("response", "failure")
    if fa is not None and fb is not None:
        return [
            _change((*failure, part), ChangeKind.VALUE_CHANGED, fa[part], fb[part],
                    Compared.FAILURE)
            for part in ("kind", "message")
            if fa[part] != fb[part]
        ]
    if fb is not None:
        assert a.response is not None
        return [
            _change(status, ChangeKind.REMOVED, a.response.status, None, Compared.STATUS),
            _change(failure, ChangeKind.ADDED, None, fb, Compared.FAILURE),
        ]
    if fa is not None:
        assert b.response is not None
        return [
            _change(failure, ChangeKind.REMOVED, fa, None, Compared.FAILURE),
            _change(status, ChangeKind.ADDED, None, b.response.status, Compared.STATUS),
        ]
    ra, rb = a.response, b.response
    assert ra is not None and rb is not None
    out = []
    if ra.status != rb.status:
        out.append(_change(status, ChangeKind.VALUE_CHANGED, ra.status, rb.status,
                           Compared.STATUS))
    out += _header_changes(("response", "headers"), ra.headers, rb.headers)
    if ra.big is not None or rb.big is not None:
        out += _big_body_changes(("response", "body"), ra, rb)
    else:
        out += _body_changes(("response", "body"), ra.headers, ra.body, rb.headers, rb.body)
    return out


def _raw_digest(r: Response) -> str:
    return f"sha256:{r.big.digest() if r.big is not None else hashlib.sha256(r.body).hexdigest()}"


def _big_body_changes(prefix: tuple[str, ...], a: Response, b: Response) -> list[Change]:
    """A body too big to hold in memory is compared by the digest of its stored bytes."""
    da, db = _raw_digest(a), _raw_digest(b)
    if da == db:
        return []
    return [_change(prefix, ChangeKind.VALUE_CHANGED, da, db, Compared.DIGEST)]


def _request_changes(a: Request, b: Request) -> list[Change]:
    out = []
    if a.method.upper() != b.method.upper():
        out.append(_change(("request", "method"), ChangeKind.VALUE_CHANGED, a.method, b.method,
                           Compared.METHOD))
    if a.url != b.url:
        out.append(_change(("request", "url"), ChangeKind.VALUE_CHANGED, a.url, b.url,
                           Compared.URL))
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
    whole = ExchangeDiff(tuple(changes), ())
    return whole if strict else whole.without(matcher)


def endpoint(ex: Exchange) -> str:
    """`METHOD host/path`: what latency and noise are grouped by."""
    req = ex.request
    return f"{req.method.upper()} {req.authority.lower()}{req.path}"
