"""Content negotiation as replay needs it: the codings and media types a request accepts."""

from __future__ import annotations

from collections.abc import Iterable

# Spellings of one coding (RFC 9110 8.4.1.3: x-gzip is gzip)
_ALIASES = {"x-gzip": "gzip", "x-compress": "compress"}
IDENTITY = "identity"


def _q(params: Iterable[str]) -> float:
    for p in params:
        name, _, value = p.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0  # a q-value that cannot be read accepts nothing
            return min(max(q, 0.0), 1.0)
    return 1.0


def qualities(value: str | None) -> dict[str, float]:
    """`gzip;q=0.8, br` -> {"gzip": 0.8, "br": 1.0}: each listed token, lower-cased, with its
    q-value (a token listed twice keeps its first q-value)."""
    out: dict[str, float] = {}
    for item in (value or "").split(","):
        token, *params = item.split(";")
        token = token.strip().lower()
        if token:
            out.setdefault(_ALIASES.get(token, token), _q(params))
    return out


def content_codings(value: str | None) -> frozenset[str]:
    """The codings a Content-Encoding header applied (identity is no coding)."""
    return frozenset(qualities(value)) - {IDENTITY}


def accepts_codings(accept_encoding: str | None, codings: Iterable[str]) -> bool:
    """Whether a request with this Accept-Encoding takes a body with all these codings.

    Identity is always acceptable. A request without the header takes no coding: RFC 9110
    lets a server choose any, but clients that leave it out (curl without --compressed)
    cannot read a compressed body. `*` stands for every coding not listed.
    """
    wanted = [c for c in codings if c != IDENTITY]
    if not wanted:
        return True
    q = qualities(accept_encoding)
    star = q.get("*", 0.0)
    return all(q.get(c, star) > 0 for c in wanted)


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def accept_quality(accept: str | None, mtype: str) -> float:
    """How much a request's Accept header wants a response of media type `mtype` (0 to 1).

    The most specific range that covers the type decides (`text/html` over `text/*` over
    `*/*`). No Accept header takes anything; a response without a type is always taken.
    """
    if accept is None or not accept.strip() or not mtype:
        return 1.0
    main = mtype.split("/", 1)[0]
    best = -1  # specificity of the range found so far
    quality = 0.0
    for item in accept.split(","):
        rng, *params = item.split(";")
        rng = rng.strip().lower()
        if rng == mtype:
            rank = 2
        elif rng == f"{main}/*":
            rank = 1
        elif rng == "*/*":
            rank = 0
        else:
            continue
        if rank > best:
            best, quality = rank, _q(params)
    return quality
