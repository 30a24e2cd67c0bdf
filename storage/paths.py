"""The path grammar: one syntax for places in an exchange, read by matching rules and diffs.

Paths read like the data they point into:

    response.status                     status code
    response.failure                    the upstream failure ({"kind", "message"}) as a whole
    response.failure.kind / .message    when both sides failed
    response.headers.content-type       header names lower case; repeated values joined ", "
    response.body                       the body as a whole
    response.body.items[0].price        inside a JSON body
    response.body[3]                    line 3 (1-based) of a text body
    request.method / request.url / request.headers.* / request.body...

JSON keys that are not plain identifiers are quoted: `response.body['a.b']`. Patterns add
`[*]` (any list index or text line) and `.*` (any key); `$.x` is short for
`response.body.x`, the form the matching rules' body paths take.

It lives in storage, not drift, because matching keys (storage) read body paths too; the
diffs and noise patterns of drift/ use it from here.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence

from .errors import InvalidInput


class InvalidPath(InvalidInput):
    """A path or pattern that does not follow the grammar."""


class Wild(enum.Enum):
    """The wildcards of patterns."""

    INDEX = "[*]"  # any list index or text line
    KEY = ".*"  # any key, index or line


type Token = str | int | Wild

_HEAD = re.compile(r"[A-Za-z_][\w-]*")
_IDENT = re.compile(r"[A-Za-z_$][\w$-]*\Z")
_SEGMENT = re.compile(
    r"""\.([^.\[\]'"\s]+)|\[(\*|\d+)\]|\['([^']*)'\]|\[("(?:[^"\\]|\\.)*")\]"""
)
BODY = ("response", "body")  # what `$` stands for


def parse_path(path: str, what: str = "path") -> tuple[Token, ...]:
    """`response.body.items[*].id` -> ("response", "body", "items", Wild.INDEX, "id").

    `what` names the path in error messages ("body path" for a matching rule)."""
    text = path.strip()
    tokens: list[Token]
    if text.startswith("$"):
        tokens, pos = list(BODY), 1
    else:
        m = _HEAD.match(text)
        if not m:
            raise InvalidPath(f"{what} {path!r} must start with a name such as 'response'")
        tokens, pos = [m.group(0)], m.end()
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if not m:
            raise InvalidPath(f"{what} {path!r} is not valid at {text[pos:]!r}")
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
                raise InvalidPath(f"{what} {path!r} has a bad quoted name {double}") from e
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
