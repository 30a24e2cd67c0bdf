"""The shape of a HAR 1.2 document as wiretape imports it, as pydantic models.

Strict types (a status of "200" is refused), HAR's custom `_` fields allowed; validators
check what a field's type cannot say (a method is a token, a URL is absolute http(s), a
base64 body decodes). read.py turns a checked document into exchanges.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..exchange import FailureKind, Truncation, split_url
from ..headers import check_value, is_method, is_token
from ..matching import MatchRules
from ..times import as_utc

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


class StreamDoc(_Model):
    """A streamed response's timings: when the head came and each chunk (offset ms since
    the request, size in bytes of the body as stored), and why it ended early if it did."""

    headMs: float = Field(default=0.0, ge=0, le=MAX_DURATION_MS)  # noqa: N815
    chunks: list[list[float]] = []  # [offset ms, size]
    truncated: str | None = None

    @field_validator("truncated")
    @classmethod
    def _truncated(cls, why: str | None) -> str | None:
        if why is not None and why not in set(Truncation):
            raise ValueError(f"{why!r} must be one of {', '.join(Truncation)} (or null)")
        return why

    @field_validator("chunks")
    @classmethod
    def _chunks(cls, chunks: list[list[float]]) -> list[list[float]]:
        for c in chunks:
            if (len(c) != 2 or not 0 <= c[0] <= MAX_DURATION_MS or c[1] < 0
                    or c[1] != int(c[1])):
                raise ValueError("must be a list of [offset ms, size] pairs")
        return chunks


class EntryExtra(_Model):
    """What wiretape keeps of an entry under `_wiretape`."""

    capturedNs: int | None = Field(default=None, ge=0, lt=2**63)  # noqa: N815
    failure: FailureDoc | None = None
    note: Text = ""
    requestBody: ExactBody | None = None  # noqa: N815
    responseBody: ExactBody | None = None  # noqa: N815
    stream: StreamDoc | None = None


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
