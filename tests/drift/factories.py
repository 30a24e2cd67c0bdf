"""Small keyword factories for the pure drift tests: exchanges and tape items."""

from __future__ import annotations

import json
from typing import Any

from wiretape.drift.changes import diff_exchanges
from wiretape.storage.exchange import Exchange, Failure, Request, Response

JSON = (("Content-Type", "application/json"),)


def make_exchange(
    *,
    method: str = "GET",
    host: str = "api.example.com",
    target: str = "/items",
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = JSON,
    body: Any = None,
    failure: Failure | None = None,
    duration_ms: float = 10.0,
) -> Exchange:
    """An exchange; `body` may be bytes or anything JSON (default `{"items": []}`)."""
    if body is None:
        body = {"items": []}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(
        request=Request(method=method, scheme="https", host=host, port=443, target=target),
        response=None if failure else Response(status=status, headers=headers, body=raw),
        failure=failure,
        duration_ms=duration_ms,
    )


def changes(a: Exchange, b: Exchange, **kw: Any) -> list[dict[str, Any]]:
    """What diff_exchanges reports, as the API shows it."""
    return diff_exchanges(a, b, **kw).to_dict()["changes"]  # type: ignore[no-any-return]


def item(key: str, rid: int, **kw: Any) -> tuple[str, int, Exchange]:
    """A tape item (match key, recording id, exchange) for diff_tapes."""
    return (key, rid, make_exchange(**kw))
