"""HAR export: a tape's recordings as a HAR 1.2 document, written a piece at a time."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from .. import repository as repo
from ..codec import DecodeError, decode_content
from ..exchange import DEFAULT_PORTS, Exchange, Failure, FailureKind, Headers, Request, header_value
from ..matching import MatchRules
from ..times import from_ns
from .read import digest


def _iso(ns: int) -> str:
    return from_ns(ns).isoformat(timespec="milliseconds")


def _pairs(headers: Headers) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers]


def _cookies(headers: Headers, name: str) -> list[dict[str, str]]:
    out = []
    for k, v in headers:
        if k.lower() != name:
            continue
        parts = [v.split(";", 1)[0]] if name == "set-cookie" else v.split(";")
        for part in parts:
            cname, sep, cvalue = part.strip().partition("=")
            if sep and cname:
                out.append({"name": cname, "value": cvalue})
    return out


def _url(req: Request) -> str:
    """The request URL, with an IPv6 literal in brackets (Request.url leaves them out)."""
    if ":" not in req.host:
        return req.url
    host = f"[{req.host}]"
    authority = host if DEFAULT_PORTS.get(req.scheme) == req.port else f"{host}:{req.port}"
    return f"{req.scheme}://{authority}{req.target}"


def _content(headers: Headers, raw: bytes) -> tuple[bytes, str, bool, dict[str, str] | None]:
    """(decoded, text, is_base64, exact) for a body: `exact` keeps encoded raw bytes."""
    try:
        decoded = decode_content(raw, header_value(headers, "content-encoding"))
    except DecodeError:
        decoded = raw
    try:
        text, b64 = decoded.decode("utf-8"), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(decoded).decode("ascii"), True
    exact = None
    if decoded != raw or (raw and header_value(headers, "content-encoding")):
        exact = {"base64": base64.b64encode(raw).decode("ascii"), "sha256": digest(decoded)}
    return decoded, text, b64, exact


def entry(
    ex: Exchange, *, rid: int | None = None, seq: int | None = None, match_key: str | None = None
) -> dict[str, Any]:
    """One HAR 1.2 entry for an exchange."""
    req, resp = ex.request, ex.response
    extra: dict[str, Any] = {"capturedNs": ex.captured_ns}
    if rid is not None:
        extra["id"] = rid
    if seq is not None:
        extra["seq"] = seq
    if match_key is not None:
        extra["matchKey"] = match_key
    if ex.note:
        extra["note"] = ex.note

    request: dict[str, Any] = {
        "method": req.method,
        "url": _url(req),
        "httpVersion": req.http_version,
        "cookies": _cookies(req.headers, "cookie"),
        "headers": _pairs(req.headers),
        "queryString": [{"name": k, "value": v} for k, v in req.query],
        "headersSize": -1,
        "bodySize": len(req.body),
    }
    if req.body:
        ctype = req.header("content-type") or "application/octet-stream"
        _decoded, text, b64, exact = _content(req.headers, req.body)
        post: dict[str, Any] = {"mimeType": ctype, "text": text}
        if b64:
            post["_encoding"] = "base64"
        elif ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            post["params"] = [{"name": k, "value": v}
                              for k, v in parse_qsl(text, keep_blank_values=True)]
        request["postData"] = post
        if exact:
            extra["requestBody"] = exact

    if resp is not None:
        ctype = resp.header("content-type") or ""
        decoded, text, b64, exact = _content(resp.headers, resp.body)
        content: dict[str, Any] = {"size": len(decoded), "mimeType": ctype or "x-unknown"}
        if resp.body:
            content["text"] = text
            if b64:
                content["encoding"] = "base64"
            if len(decoded) > len(resp.body):
                content["compression"] = len(decoded) - len(resp.body)
        if exact:
            extra["responseBody"] = exact
        if resp.stream is not None:
            stream = resp.stream.fitted(len(resp.body))
            extra["stream"] = {"headMs": round(stream.head_ms, 3),
                               "chunks": [[round(o, 3), n] for o, n in stream.chunks],
                               "truncated": str(stream.truncated) if stream.truncated else None}
        response: dict[str, Any] = {
            "status": resp.status,
            "statusText": resp.reason,
            "httpVersion": resp.http_version,
            "cookies": _cookies(resp.headers, "set-cookie"),
            "headers": _pairs(resp.headers),
            "content": content,
            "redirectURL": resp.header("location") or "",
            "headersSize": -1,
            "bodySize": len(resp.body),
        }
    else:
        failure = ex.failure or Failure(FailureKind.ERROR, "no response")
        extra["failure"] = {"kind": str(failure.kind), "message": failure.message}
        response = {
            "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
            "headersSize": -1, "bodySize": -1, "_error": failure.message or str(failure.kind),
        }
    wait = max(0.0, round(float(ex.duration_ms), 3))
    return {
        "startedDateTime": _iso(ex.captured_ns),
        "time": wait,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": wait, "receive": 0},
        "_wiretape": extra,
    }


def _indent(text: str, by: int) -> str:
    pad = " " * by
    return text.replace("\n", "\n" + pad)


def dump(
    tape: str,
    entries: Iterable[dict[str, Any]],
    *,
    creator_version: str,
    matching: dict[str, Any] | None = None,
) -> Iterator[str]:
    """The HAR document as text, a piece at a time (tapes can be large), indented so a tape
    kept in git diffs line by line."""
    meta = {"tape": tape, "matching": matching or {}}
    yield (
        '{\n  "log": {\n    "version": "1.2",\n'
        f'    "creator": {_indent(json.dumps({"name": "wiretape", "version": creator_version}, indent=2), 4)},\n'  # noqa: E501
        f'    "_wiretape": {_indent(json.dumps(meta, indent=2, ensure_ascii=False), 4)},\n'
        '    "entries": ['
    )
    first = True
    for e in entries:
        text = json.dumps(e, indent=2, ensure_ascii=False)
        yield ("\n      " if first else ",\n      ") + _indent(text, 6)
        first = False
    yield ("\n    ]\n  }\n}\n" if not first else "]\n  }\n}\n")


class TapeExport:
    """A tape as a HAR document, a piece at a time (tapes can be large). Raises
    TapeNotFound at once; iterate it in the session it was made with. `count` says how
    many recordings were written so far."""

    def __init__(self, s: Session, name: str, *, creator_version: str,
                 ids: bool = True) -> None:
        """`ids=False` leaves out the store's recording ids: two recordings of the same
        traffic then export alike (tapes kept in git, the pytest plugin)."""
        tape = repo.require_tape(s, name)
        self.count = 0
        self._s, self._name, self._version, self._ids = s, name, creator_version, ids
        self._matching = MatchRules.from_dict(tape.matching).to_dict()

    def __iter__(self) -> Iterator[str]:
        return dump(self._name, self._entries(), creator_version=self._version,
                    matching=self._matching)

    def _entries(self) -> Iterator[dict[str, Any]]:
        for r in repo.tape_recordings(self._s, self._name):
            self.count += 1
            ex = repo.row_exchange(r)
            if ex.response is not None and ex.response.big is not None:
                # a HAR holds every body whole, a big one too (read here, one at a time)
                body = repo.read_body(self._s, r.id)
                ex = ex.with_(response=replace(ex.response, body=body, big=None))
            yield entry(ex, rid=r.id if self._ids else None, seq=r.seq,
                        match_key=r.match_key)
