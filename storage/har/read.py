"""HAR import: a HAR 1.2 document checked against pydantic models, then turned into exchanges.

The models say what each field must be; a document that breaks them is refused as a whole
(HarError), its message naming the first bad entry and field the way the file spells it:
`log.entries[2].response.status must be an integer`. Browser exports are taken as they
come: HTTP/2 pseudo-headers are dropped, "h2" is HTTP/2.0, a request that got no answer
(status 0) is an upstream failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..edit import InvalidEdit, encode_body
from ..errors import InvalidInput
from ..exchange import (
    Exchange,
    Failure,
    FailureKind,
    Headers,
    Request,
    Response,
    header_value,
    split_url,
)
from ..headers import check_value, is_method, is_token
from ..matching import MatchRules
from ..redact import fix_content_length
from ..times import as_utc


class HarError(InvalidInput):
    """A HAR document wiretape cannot import; the message names the entry and the field."""


def digest(data: bytes) -> str:
    """What guards a body's exact bytes kept under `_wiretape` (see write.py)."""
    return hashlib.sha256(data).hexdigest()


# -- the document's shape -----------------------------------------------------------------

# A required field: missing, it fails like a value of the wrong type (so the message says
# what it must be).
REQUIRED: Any = Field(default=None, validate_default=True)


def NoneIs(empty: Any) -> BeforeValidator:  # noqa: N802 - reads like the validator it is
    """A field where null means `empty`."""
    return BeforeValidator(lambda v: empty if v is None else v)


Text = Annotated[str, NoneIs("")]
MAX_DURATION_MS = 86_400_000.0


class _Model(BaseModel):
    # strict: "200" is not a status; extra fields stay allowed (HAR's custom `_` fields)
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


class Pair(_Model):
    """A header, a query or a form parameter."""

    name: str = REQUIRED
    value: Text = ""


class Header(Pair):
    @field_validator("name")
    @classmethod
    def _token(cls, name: str) -> str:
        # HTTP/2 pseudo-headers (":authority") come in browser exports; they are dropped
        if not name.startswith(":") and not is_token(name):
            raise ValueError(f"{name!r} is not a valid header name")
        return name

    @field_validator("value")
    @classmethod
    def _carried(cls, value: str) -> str:
        return check_value(value)


_HTTP_VERSION = re.compile(r"HTTP/\d(\.\d)?\Z")


def _version(value: Any) -> Any:
    """HTTP versions as browsers write them ("h2", "unknown") made a valid status line's."""
    if value in (None, ""):
        return "HTTP/1.1"
    if not isinstance(value, str):
        return value  # refused as not a string
    v = value.strip().upper()
    if _HTTP_VERSION.match(v):
        return v
    if v in ("H2", "H2C"):
        return "HTTP/2.0"
    if v == "H3":
        return "HTTP/3"
    return "HTTP/1.1"  # browsers write "unknown" for cached answers; a valid line is better


Version = Annotated[str, BeforeValidator(_version)]
HeaderList = Annotated[list[Header], NoneIs([])]


class Body(_Model):
    """A body as HAR carries it: text, decoded, base64 when it is not UTF-8."""

    encoding: Any = None  # before `text`, which is checked against it
    text: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known(cls, encoding: Any) -> Any:
        if encoding not in (None, "", "base64"):
            raise ValueError(f"{encoding!r} is not supported (base64 or none)")
        return encoding

    @field_validator("text")
    @classmethod
    def _decodable(cls, text: str | None, info: ValidationInfo) -> str | None:
        if not text:
            return text
        if info.data.get("encoding") == "base64":
            try:
                base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ValueError("is not valid base64") from e
            return text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError("is not valid Unicode text") from e
        return text

    def content(self) -> bytes:
        if not self.text:
            return b""
        return base64.b64decode(self.text) if self.encoding == "base64" else self.text.encode()


class PostData(Body):
    params: list[Pair] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_encoding(cls, data: Any) -> Any:
        # wiretape writes `_encoding` (HAR 1.2 has no postData encoding); others `encoding`
        if isinstance(data, dict) and data.get("_encoding"):
            return {**data, "encoding": data["_encoding"]}
        return data

    def content(self) -> bytes:
        if not self.text and self.params:
            return urlencode([(p.name, p.value) for p in self.params]).encode()
        return super().content()


class HarRequest(_Model):
    method: str = REQUIRED
    url: str = REQUIRED
    httpVersion: Version = "HTTP/1.1"  # noqa: N815 - HAR's own field name
    headers: HeaderList = []
    postData: PostData | None = None  # noqa: N815

    @field_validator("method")
    @classmethod
    def _method(cls, method: str) -> str:
        if not is_method(method):
            raise ValueError(f"{method!r} is not an HTTP method")
        return method

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        split_url(url)  # InvalidURL is a ValueError: its message says what is wrong
        return url


class HarResponse(_Model):
    status: int = REQUIRED
    statusText: Text = ""  # noqa: N815
    httpVersion: Version = "HTTP/1.1"  # noqa: N815
    headers: HeaderList = []
    content: Annotated[Body, NoneIs({})] = Body()


class ExactBody(_Model):
    """A content-encoded body's raw bytes, and the digest of the decoded content they hold."""

    sha256: Any = None
    base64: Any = None


class FailureDoc(_Model):
    kind: Annotated[str, NoneIs(str(FailureKind.ERROR))] = str(FailureKind.ERROR)
    message: Text = ""

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str) -> str:
        if kind not in set(FailureKind):
            raise ValueError(f"{kind!r} must be one of {', '.join(FailureKind)}")
        return kind


class EntryExtra(_Model):
    """What wiretape keeps of an entry under `_wiretape`."""

    capturedNs: int | None = Field(default=None, ge=0, lt=2**63)  # noqa: N815
    failure: FailureDoc | None = None
    note: Text = ""
    requestBody: ExactBody | None = None  # noqa: N815
    responseBody: ExactBody | None = None  # noqa: N815


def _started(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as e:
        raise ValueError(f"{value!r} is not an ISO 8601 date and time") from e


class Entry(_Model):
    startedDateTime: Annotated[datetime | None, BeforeValidator(_started)] = None  # noqa: N815
    time: float = 0.0
    request: HarRequest = REQUIRED
    response: HarResponse = REQUIRED
    wiretape: Annotated[EntryExtra, NoneIs({})] = Field(default_factory=EntryExtra,
                                                        alias="_wiretape")


def _rules(value: Any) -> Any:
    if isinstance(value, dict):
        try:
            return MatchRules.from_dict(value).to_dict()
        except (TypeError, ValueError) as e:
            raise ValueError(f"is not valid: {e}") from e
    return value


class LogExtra(_Model):
    matching: Annotated[dict[str, Any] | None, BeforeValidator(_rules)] = None


class Log(_Model):
    entries: list[Entry] = REQUIRED
    # an unknown shape there is someone else's `_wiretape`: left alone
    wiretape: Annotated[LogExtra | None, BeforeValidator(
        lambda v: v if isinstance(v, dict) else None)] = Field(default=None, alias="_wiretape")


class Document(_Model):
    log: Log = REQUIRED


# -- errors in the file's own words -------------------------------------------------------

_MUST_BE = {
    "string_type": "must be a string", "int_type": "must be an integer",
    "float_type": "must be a number", "bool_type": "must be true or false",
    "dict_type": "must be an object", "model_type": "must be an object",
    "model_attributes_type": "must be an object", "list_type": "must be a list",
    "greater_than_equal": "is out of range", "less_than": "is out of range",
    "datetime_type": "must be an ISO 8601 date and time",
}


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the HAR document"


def _message(err: ErrorDetails) -> str:
    where = _where(err["loc"])
    if err["type"] == "value_error":
        return f"{where} {err.get('ctx', {}).get('error', err['msg'])}"
    if err["loc"] and err["loc"][-1] == "headers" and err["type"] == "list_type":
        return f"{where} must be a list of {{name, value}} objects"
    if err["loc"] and err["loc"][-1] == "time" and err["type"] == "float_type":
        return f"{where} must be a number of milliseconds"
    return f"{where} {_MUST_BE.get(err['type'], err['msg'])}"


# -- from the checked document to exchanges -----------------------------------------------

@dataclass(frozen=True, slots=True)
class HarTape:
    """What an imported HAR holds: the exchanges in file order and the tape's rules if any."""

    exchanges: list[Exchange]
    matching: dict[str, Any] | None


def _body(headers: Headers, body: Body | None, exact: ExactBody | None,
          where: str) -> tuple[Headers, bytes]:
    """The stored bytes of a body: its exact bytes when `_wiretape` kept them for this very
    content, else the content encoded with the headers' Content-Encoding."""
    content = body.content() if body is not None else b""
    if not content:
        return headers, b""
    if exact is not None and exact.sha256 == digest(content):
        try:
            return headers, base64.b64decode(exact.base64, validate=True)
        except (binascii.Error, ValueError, TypeError) as e:
            raise HarError(f"{where}: _wiretape raw body is not valid base64") from e
    if not header_value(headers, "content-encoding"):
        return headers, content
    try:
        raw = encode_body(headers, content)
    except InvalidEdit:
        # a browser export in an encoding wiretape cannot produce (zstd, say): keep the
        # decoded text and say so in the headers
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-encoding")
        raw = content
    return fix_content_length(headers, len(raw)), raw


def _headers(headers: list[Header]) -> Headers:
    return tuple((h.name, h.value) for h in headers if not h.name.startswith(":"))


def _request(e: Entry, where: str) -> Request:
    req = e.request
    scheme, host, port, target = split_url(req.url)
    headers, body = _body(_headers(req.headers), req.postData, e.wiretape.requestBody,
                          f"{where}.request.postData")
    return Request(req.method.upper(), scheme, host, port, target, headers, body,
                   req.httpVersion)


def _exchange(i: int, e: Entry) -> Exchange:
    where = f"log.entries[{i}]"
    extra, resp = e.wiretape, e.response
    if extra.capturedNs is not None:
        captured_ns = extra.capturedNs
    elif e.startedDateTime is not None:
        captured_ns = int(e.startedDateTime.timestamp() * 1_000_000) * 1000
    else:
        raise HarError(f"{where}.startedDateTime must be a string")
    duration = max(0.0, min(e.time, MAX_DURATION_MS))
    request = _request(e, where)
    if extra.failure is not None or resp.status == 0:
        if extra.failure is not None:
            failure = Failure(FailureKind(extra.failure.kind), extra.failure.message)
        else:  # a browser's export of a request that got no answer
            error = (resp.model_extra or {}).get("_error") or (e.model_extra or {}).get("_error")
            failure = Failure(FailureKind.ERROR, str(error or "no response"))
        return Exchange(request, None, failure, captured_ns, duration, extra.note)
    if not 100 <= resp.status <= 999:
        raise HarError(f"{where}.response.status {resp.status} must be between 100 and 999")
    headers, body = _body(_headers(resp.headers), resp.content, extra.responseBody,
                          f"{where}.response.content")
    response = Response(resp.status, headers, body, resp.statusText[:255], resp.httpVersion)
    return Exchange(request, response, None, captured_ns, duration, extra.note)


def parse(doc: Any) -> HarTape:
    """Every entry of a HAR document as an exchange; HarError on the first bad entry, so an
    import is all or nothing."""
    try:
        checked = Document.model_validate(doc)
    except ValidationError as e:
        raise HarError(_message(e.errors()[0])) from None
    exchanges = [_exchange(i, entry) for i, entry in enumerate(checked.log.entries)]
    # entries of foreign HARs may share a start time: keep their file order within a key
    seen: dict[int, int] = {}
    ordered = []
    for ex in exchanges:
        n = seen.get(ex.captured_ns, 0)
        seen[ex.captured_ns] = n + 1
        ordered.append(ex.with_(captured_ns=ex.captured_ns + n) if n else ex)
    meta = checked.log.wiretape
    return HarTape(ordered, meta.matching if meta is not None else None)


def loads(text: str | bytes) -> HarTape:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise HarError(f"not a HAR file: {e}") from e
    return parse(doc)
