"""Why a live request does not match a recorded one, in words: the 502 miss body and the
misses journal.

Every difference is computed from the same per-part functions that build the match key
(`matching.py`), so an explanation never names a part that the key ignores.
"""

from __future__ import annotations

import json
from typing import Any

from . import multipart
from .codec import decoded_body
from .exchange import Headers, Request
from .matching import (
    CONDITION_HEADERS,
    MatchRules,
    body,
    conditions,
    header_values,
    headers,
    json_part,
    kept_parts,
    method,
    part_key,
    path,
    query,
    required_codings,
)
from .negotiate import accept_quality, accepts_codings, media_type


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
    for p in kept_parts(live, rules):
        by_name.setdefault(p.name, ([], []))[0].append(p)
    for p in kept_parts(rec, rules):
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
                if part_key(a, rules)[3] == part_key(b, rules)[3]:
                    continue
                ja, jb = json_part(a, rules), json_part(b, rules)
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
