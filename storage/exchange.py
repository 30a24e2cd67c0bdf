"""What an exchange is: plain, framework-free request/response/failure values."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol
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


class Truncation(enum.StrEnum):
    """Why a streamed response was stored before its end."""

    CLIENT = "client"  # the client left (an endless watch stream, a cancelled download)
    SHUTDOWN = "shutdown"  # wiretape stopped while the stream was still open
    UPSTREAM = "upstream"  # the upstream broke off mid-body, after the head had gone out


@dataclass(frozen=True, slots=True)
class Stream:
    """How a streamed response arrived: when its head came and each chunk after it, in
    milliseconds since the request was sent, with each chunk's size. The chunks' sizes add
    up to the body's; `truncated` says why it ended early, if it did."""

    head_ms: float = 0.0
    chunks: tuple[tuple[float, int], ...] = ()
    truncated: Truncation | None = None

    @property
    def size(self) -> int:
        return sum(n for _, n in self.chunks)

    def fitted(self, size: int) -> Stream:
        """The same timings for a body of `size` bytes (after redaction or an edit changed
        it): each chunk keeps its place in the body, cut where the body now ends; the last
        chunk takes whatever the body gained."""
        if self.size == size:
            return self
        out: list[tuple[float, int]] = []
        start = 0
        for offset, n in self.chunks:
            take = max(0, min(n, size - start))
            out.append((offset, take))
            start += take
        if out and start < size:
            out[-1] = (out[-1][0], out[-1][1] + size - start)
        elif not out and size:
            out.append((self.head_ms, size))
        return replace(self, chunks=tuple(out))

    def to_json(self) -> dict[str, object]:
        return {"head_ms": round(self.head_ms, 3),
                "chunks": [[round(o, 3), n] for o, n in self.chunks],
                "truncated": str(self.truncated) if self.truncated else None}

    @classmethod
    def from_json(cls, value: object) -> Stream | None:
        """The stored form back; None for anything that is not one (no stream)."""
        if not isinstance(value, dict):
            return None
        chunks = tuple((float(o), int(n)) for o, n in value.get("chunks") or ())
        truncated = value.get("truncated")
        return cls(float(value.get("head_ms") or 0.0), chunks,
                   Truncation(truncated) if truncated else None)


class BodySource(Protocol):
    """Where a big body's bytes are while it is being stored (a spool file)."""

    @property
    def sha256(self) -> str: ...

    def parts(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BigBody:
    """A body too big to hold in memory (storage/bodies.py: BIG_BODY): stored in parts,
    read in pieces when replayed, compared by digest. `preview` is its first bytes (text
    search, display); `source` has the bytes while it is captured, and is None once
    stored (the store reads them by recording)."""

    size: int
    sha256: str  # "" while captured: `digest()` reads it from the source
    preview: bytes = b""
    source: BodySource | None = field(default=None, compare=False)

    def digest(self) -> str:
        """The SHA-256 of the body (waits for a spool to be written: not on the event loop)."""
        if not self.sha256 and self.source is not None:
            return self.source.sha256
        return self.sha256


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Headers = ()
    body: bytes = b""  # empty when `big` holds the body instead
    reason: str = ""
    http_version: str = "HTTP/1.1"
    stream: Stream | None = None  # streamed as it arrived: the chunks' timings
    big: BigBody | None = None

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def size(self) -> int:
        return self.big.size if self.big is not None else len(self.body)


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
