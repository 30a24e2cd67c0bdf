"""What an exchange is: plain, framework-free request/response/failure values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlsplit

from .errors import InvalidInput

Headers = tuple[tuple[str, str], ...]


class Mode(enum.StrEnum):
    RECORD = "record"
    REPLAY = "replay"
    PASSTHROUGH = "passthrough"


class OnMiss(enum.StrEnum):
    ERROR = "error"
    FORWARD = "forward"
    RECORD = "record"


class SequencePolicy(enum.StrEnum):
    REPEAT_LAST = "repeat-last"
    CYCLE = "cycle"
    STRICT = "strict"


class FailureKind(enum.StrEnum):
    """How an upstream failed; replayed as the same kind of failure."""

    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    ERROR = "error"


DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidURL(InvalidInput):
    """A URL that is not an absolute http:// or https:// URL."""


def split_url(url: str) -> tuple[str, str, int, str]:
    """An absolute http(s) URL as (scheme, host, port, target). The host stays as written
    (urlsplit would lower-case it), without an IPv6 literal's brackets; the target is the
    path with its query string, a `?` with nothing after it included."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidURL(f"{url!r} is not a valid URL: {e}") from e
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidURL(f"{url!r} must be an absolute http:// or https:// URL")
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


def header_value(headers: Headers, name: str) -> str | None:
    """First value of a header, names compared case-insensitively."""
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    scheme: str
    host: str
    port: int
    target: str  # path with its query string, as sent (latin-1 text of the raw bytes)
    headers: Headers = ()
    body: bytes = b""
    http_version: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query_string(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True, errors="replace")

    @property
    def authority(self) -> str:
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Headers = ()
    body: bytes = b""
    reason: str = ""
    http_version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    message: str = ""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the response, or the upstream failure, it got."""

    request: Request
    response: Response | None = None
    failure: Failure | None = None
    captured_ns: int = 0  # wall-clock capture time; orders `seq` across processes
    duration_ms: float = 0.0
    note: str = ""

    def with_(self, **changes: object) -> Exchange:
        return replace(self, **changes)  # type: ignore[arg-type]
