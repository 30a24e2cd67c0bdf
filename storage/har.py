"""HAR 1.2 export and import of tapes: pure conversion between HAR documents and exchanges.

Bodies are written the way HAR viewers expect them: `content.text` is the body with its
Content-Encoding undone, as text when it is UTF-8, else base64 with `"encoding": "base64"`.
So that an import reproduces the recorded bytes exactly, a content-encoded body also keeps
its raw bytes under `_wiretape` (HAR allows custom fields starting with `_`), guarded by a
digest of the decoded content: when someone edits `content.text` in a tape kept in git, the
digest no longer matches and the edited text is encoded afresh instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .codec import DecodeError, decode_content
from .edit import InvalidEdit, encode_body
from .errors import InvalidInput
from .exchange import (
    DEFAULT_PORTS,
    Exchange,
    Failure,
    FailureKind,
    Headers,
    Request,
    Response,
    header_value,
)
from .matching import MatchRules
from .redact import fix_content_length

HAR_VERSION = "1.2"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")
_VERSION = re.compile(r"^HTTP/\d(\.\d)?$")


class HarError(InvalidInput):
    """A HAR document wiretape cannot import; the message names the entry and the field."""


# -- export ------------------------------------------------------------------------------

def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


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


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
        exact = {"base64": base64.b64encode(raw).decode("ascii"), "sha256": _digest(decoded)}
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


# -- import ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HarTape:
    """What an imported HAR holds: the exchanges in file order and the tape's rules if any."""

    exchanges: list[Exchange]
    matching: dict[str, Any] | None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HarError(f"{where} must be an object")
    return value


def _str(value: Any, where: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise HarError(f"{where} must be a string")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HarError(f"{where} must be an integer")
    return value


def _headers(value: Any, where: str) -> Headers:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise HarError(f"{where} must be a list of {{name, value}} objects")
    out = []
    for j, h in enumerate(value):
        h = _obj(h, f"{where}[{j}]")
        name = _str(h.get("name"), f"{where}[{j}].name")
        val = _str(h.get("value"), f"{where}[{j}].value", "")
        if name.startswith(":"):
            continue  # HTTP/2 pseudo-headers in browser exports; the URL carries them
        if not _TOKEN.match(name) and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise HarError(f"{where}[{j}].name {name!r} is not a valid header name")
        if any(c in val for c in "\r\n\x00"):
            raise HarError(f"{where}[{j}].value holds a line break or NUL")
        try:
            val.encode("latin-1")
            name.encode("latin-1")
        except UnicodeEncodeError as e:
            raise HarError(f"{where}[{j}] has characters a header cannot carry") from e
        out.append((name, val))
    return tuple(out)


def _version(value: Any, where: str) -> str:
    if value in (None, ""):
        return "HTTP/1.1"
    v = _str(value, where).strip()
    if _VERSION.match(v.upper()):
        return v.upper()
    low = v.lower()
    if low in ("h2", "http/2", "http/2.0", "h2c"):
        return "HTTP/2.0"
    if low in ("h3", "http/3", "http/3.0"):
        return "HTTP/3"
    if low in ("http/1.0", "http/1.1"):
        return low.upper()
    return "HTTP/1.1"  # browsers write "unknown" for cached answers; a valid line is better


def _split_url(url: str, where: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise HarError(f"{where} {url!r} is not a valid URL: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HarError(f"{where} {url!r} must be an absolute http:// or https:// URL")
    # keep the host as written (urlsplit lower-cases it); IPv6 literals lose their brackets
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host = netloc[1 : netloc.index("]")]
    elif port is not None or netloc.endswith(":"):
        host = netloc.rpartition(":")[0]
    else:
        host = netloc
    target = parts.path or "/"
    if parts.query or url.split("#", 1)[0].endswith("?"):
        target += "?" + parts.query
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], target


def _body(
    headers: Headers, text: Any, encoding: Any, exact: Any, where: str
) -> tuple[Headers, bytes]:
    if text is None or text == "":
        return headers, b""
    text = _str(text, f"{where}.text")
    if encoding in (None, ""):
        try:
            decoded = text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise HarError(f"{where}.text is not valid Unicode text") from e
    elif encoding == "base64":
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise HarError(f"{where}.text is not valid base64") from e
    else:
        raise HarError(f"{where}.encoding {encoding!r} is not supported (base64 or none)")
    if exact is not None:
        exact = _obj(exact, f"{where}: _wiretape body")
        if exact.get("sha256") == _digest(decoded):
            try:
                return headers, base64.b64decode(_str(exact.get("base64"), where), validate=True)
            except (binascii.Error, ValueError) as e:
                raise HarError(f"{where}: _wiretape raw body is not valid base64") from e
    if not header_value(headers, "content-encoding"):
        return headers, decoded
    try:
        raw = encode_body(headers, decoded)
    except InvalidEdit:
        # a browser export in an encoding wiretape cannot produce (zstd, say): keep the
        # decoded text and say so in the headers
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-encoding")
        raw = decoded
    return fix_content_length(headers, len(raw)), raw


def _started_ns(value: Any, where: str) -> int:
    text = _str(value, where)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as e:
        raise HarError(f"{where} {text!r} is not an ISO 8601 date and time") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000) * 1000


def _entry(i: int, raw_entry: Any) -> Exchange:
    where = f"log.entries[{i}]"
    e = _obj(raw_entry, where)
    extra = _obj(e.get("_wiretape") or {}, f"{where}._wiretape")
    req = _obj(e.get("request"), f"{where}.request")
    resp = _obj(e.get("response"), f"{where}.response")

    method = _str(req.get("method"), f"{where}.request.method")
    if not _TOKEN.match(method):
        raise HarError(f"{where}.request.method {method!r} is not an HTTP method")
    scheme, host, port, target = _split_url(
        _str(req.get("url"), f"{where}.request.url"), f"{where}.request.url"
    )
    req_headers = _headers(req.get("headers"), f"{where}.request.headers")
    post = req.get("postData")
    req_body = b""
    if post is not None:
        post = _obj(post, f"{where}.request.postData")
        text = post.get("text")
        if text in (None, "") and post.get("params"):
            params = post["params"]
            if not isinstance(params, list):
                raise HarError(f"{where}.request.postData.params must be a list")
            text = urlencode([
                (_str(_obj(p, f"{where}.request.postData.params[{j}]").get("name"),
                      f"{where}.request.postData.params[{j}].name"),
                 _str(p.get("value"), f"{where}.request.postData.params[{j}].value", ""))
                for j, p in enumerate(params)
            ])
        req_headers, req_body = _body(
            req_headers, text, post.get("_encoding") or post.get("encoding"),
            extra.get("requestBody"), f"{where}.request.postData",
        )
    request = Request(
        method=method.upper(), scheme=scheme, host=host, port=port, target=target,
        headers=req_headers, body=req_body,
        http_version=_version(req.get("httpVersion"), f"{where}.request.httpVersion"),
    )

    if "capturedNs" in extra:
        captured_ns = _int(extra["capturedNs"], f"{where}._wiretape.capturedNs")
        if not 0 <= captured_ns < 2**63:
            raise HarError(f"{where}._wiretape.capturedNs is out of range")
    else:
        captured_ns = _started_ns(e.get("startedDateTime"), f"{where}.startedDateTime")
    duration = e.get("time", 0)
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise HarError(f"{where}.time must be a number of milliseconds")
    duration = max(0.0, min(float(duration), 86_400_000.0))

    status = _int(resp.get("status"), f"{where}.response.status")
    failure_doc = extra.get("failure")
    if failure_doc is not None or status == 0:
        if failure_doc is not None:
            failure_doc = _obj(failure_doc, f"{where}._wiretape.failure")
            kind_s = _str(failure_doc.get("kind"), f"{where}._wiretape.failure.kind", "error")
            try:
                kind = FailureKind(kind_s)
            except ValueError as err:
                raise HarError(
                    f"{where}._wiretape.failure.kind {kind_s!r} must be one of "
                    + ", ".join(k.value for k in FailureKind)
                ) from err
            message = _str(failure_doc.get("message"), f"{where}._wiretape.failure.message", "")
        else:  # a browser's export of a request that got no answer
            kind = FailureKind.ERROR
            message = str(resp.get("_error") or e.get("_error") or "no response")
        return Exchange(request, None, Failure(kind, message), captured_ns, duration,
                        _str(extra.get("note"), f"{where}._wiretape.note", ""))
    if not 100 <= status <= 999:
        raise HarError(f"{where}.response.status {status} must be between 100 and 999")
    resp_headers = _headers(resp.get("headers"), f"{where}.response.headers")
    content = _obj(resp.get("content") or {}, f"{where}.response.content")
    resp_headers, resp_body = _body(
        resp_headers, content.get("text"), content.get("encoding"), extra.get("responseBody"),
        f"{where}.response.content",
    )
    response = Response(
        status=status, headers=resp_headers, body=resp_body,
        reason=_str(resp.get("statusText"), f"{where}.response.statusText", "")[:255],
        http_version=_version(resp.get("httpVersion"), f"{where}.response.httpVersion"),
    )
    return Exchange(request, response, None, captured_ns, duration,
                    _str(extra.get("note"), f"{where}._wiretape.note", ""))


def parse(doc: Any) -> HarTape:
    """Every entry of a HAR document as an exchange; HarError on the first bad entry, so an
    import is all or nothing."""
    log = _obj(_obj(doc, "the HAR document").get("log"), "log")
    entries = log.get("entries")
    if not isinstance(entries, list):
        raise HarError("log.entries must be a list")
    exchanges = [_entry(i, e) for i, e in enumerate(entries)]
    # entries of foreign HARs may share a start time: keep their file order within a key
    seen: dict[int, int] = {}
    ordered = []
    for ex in exchanges:
        n = seen.get(ex.captured_ns, 0)
        seen[ex.captured_ns] = n + 1
        ordered.append(ex.with_(captured_ns=ex.captured_ns + n) if n else ex)
    meta = log.get("_wiretape")
    matching = None
    if isinstance(meta, dict) and meta.get("matching") is not None:
        matching = _obj(meta["matching"], "log._wiretape.matching")
        try:
            matching = MatchRules.from_dict(matching).to_dict()
        except (TypeError, ValueError) as e:
            raise HarError(f"log._wiretape.matching is not valid: {e}") from e
    return HarTape(ordered, matching)


def loads(text: str | bytes) -> HarTape:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise HarError(f"not a HAR file: {e}") from e
    return parse(doc)
