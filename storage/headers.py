"""HTTP's rules for names and headers, defined once: tokens, header values, hop-by-hop headers."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InvalidInput

# An RFC 9110 token: what a header name or a method may be made of.
TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
TOKEN_PATTERN = f"^{TOKEN}$"  # as a schema pattern (pydantic, OpenAPI)
# A header value HTTP/1 can carry: Latin-1 text without control characters (tab allowed).
HEADER_VALUE_PATTERN = r"^[\t\x20-\x7e\x80-\xff]*$"
METHOD_MAX = 32  # the store's method column

_TOKEN = re.compile(TOKEN)
_HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)

# Hop-by-hop headers (RFC 9110 7.6.1), with the legacy Proxy-Connection and Keep-Alive:
# about one connection, never about what an upstream answered.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "proxy-authenticate", "proxy-authorization",
})


class InvalidHeader(InvalidInput):
    """A header name that is not a token, or a value HTTP cannot carry."""


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def is_method(text: str) -> bool:
    return is_token(text) and len(text) <= METHOD_MAX


def check_value(value: str) -> str:
    """A header value HTTP/1 can carry; InvalidHeader says what is wrong with it."""
    if _HEADER_VALUE.fullmatch(value) is None:
        if any(ord(c) > 0xFF for c in value):
            raise InvalidHeader("must be Latin-1 text")
        raise InvalidHeader("has a line break or control character")
    return value


def check_header(name: str, value: str) -> tuple[str, str]:
    """A header that can go on the wire: a token name, a value check_value accepts."""
    if not is_token(name):
        raise InvalidHeader(f"header name {name!r} is not valid")
    try:
        return name, check_value(value)
    except InvalidHeader as e:
        raise InvalidHeader(f"header {name} value {e}") from e


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The names a `Connection` header lists: hop-by-hop too (`Connection: close, X-Foo`)."""
    return {
        t.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for t in value.split(",")
        if t.strip()
    }
