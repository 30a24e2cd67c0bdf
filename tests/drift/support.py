"""Test support for drift: a payments service with a v1 and a "new version", seeding, the CLI."""

from __future__ import annotations

import itertools
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from wiretape.api.app import ApiSettings, create_app
from wiretape.storage import db
from wiretape.storage import models as m
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange, Request, Response

from tests.drift.factories import make_exchange
from tests.helpers import WIRETAPE_BIN, Reply, Seen, Upstream


class Payments:
    """GET /payments/7 and GET /status on a real upstream. Every answer carries a fresh
    timestamp and request id (body and header), the noise an audit must leave out.

    v1: {"id", "amount": 10, "customer", "status", "timestamp", "request_id"}
    v2: `customer` removed, `currency` added, `amount` a string (the "new version")
    v3: v2 plus a `fee` field (additive drift only, once v2 is re-recorded)
    """

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.version = 1
        self.calls = itertools.count()
        upstream.route("GET /payments/7", self.payment)
        upstream.route("GET /status", self.status)

    @property
    def url(self) -> str:
        return self.upstream.url

    def _noise(self) -> tuple[dict[str, Any], dict[str, str]]:
        n = next(self.calls)
        rid = uuid.uuid4().hex
        return ({"timestamp": f"2026-11-22T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
                 "request_id": rid}, {"X-Request-Id": rid})

    def payment(self, _seen: Seen) -> Reply:
        noise, headers = self._noise()
        body: dict[str, Any] = {"id": 7, "amount": 10, "customer": "ann", "status": "paid"}
        if self.version >= 2:
            del body["customer"]
            body["currency"] = "EUR"
            body["amount"] = "10.00"
        if self.version >= 3:
            body["fee"] = 0.3
        return Reply(200, {**body, **noise}, headers)

    def status(self, _seen: Seen) -> Reply:
        noise, headers = self._noise()
        return Reply(200, {"ok": True, **noise}, headers)


@pytest.fixture
def payments(upstream: Upstream) -> Payments:
    """The payments service on a real upstream (fixture)."""
    return Payments(upstream)


def live_exchange(url: str, target: str, **kw: Any) -> Exchange:
    """What the proxy would record for GET url+target: one real request to the upstream.

    Its recorded duration is one no live answer comes near, so a loaded machine never
    shows up as latency drift (latency is test_classify's)."""
    r = httpx.get(url + target, trust_env=False, **kw)
    host, port = url.split("://", 1)[1].split(":")
    return Exchange(
        Request("GET", "http", host, int(port), target, (("Accept", "*/*"),)),
        Response(r.status_code, tuple(r.headers.multi_items()), r.content, "OK"),
        captured_ns=0, duration_ms=600_000.0,
    )


def add(url: str, tape: str, *exchanges: Exchange) -> list[int]:
    """Store exchanges in a tape (capture order = argument order)."""
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine).begin() as s:
            base = 1_700_000_000_000_000_000 + repo.count_recordings(s, tape)
            stamped = [ex.with_(captured_ns=base + i) for i, ex in enumerate(exchanges)]
            return [rid for rid, _k, _s in repo.add_exchanges(s, tape, stamped)]
    finally:
        engine.dispose()


def generous_durations(url: str) -> None:
    """Recorded durations no live answer comes near: a loaded machine must not turn into
    latency drift here (latency is test_classify's)."""
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine).begin() as s:
            s.execute(update(m.Recording).values(duration_ms=600_000.0))
    finally:
        engine.dispose()


def seed_diff_tapes(url: str) -> dict[str, list[int]]:
    """A baseline and a branch tape with every kind of difference in them."""
    def ex(target: str, body: Any = None, *, raw: bytes | None = None, ms: float = 10.0,
           **kw: Any) -> Exchange:
        return make_exchange(host="shop.test", target=target, body=raw if raw is not None
                             else body, duration_ms=ms, **kw)

    items = {"items": [{"id": 1, "price": 10}, {"id": 2, "price": 5}], "count": 2}
    base = add(url, "base",
               ex("/items", {**items, "ts": "10:00:01"}, ms=10),
               ex("/items", {**items, "ts": "10:00:02"}, ms=12),  # same key: ts is noise
               ex("/text", raw=b"one\ntwo\nthree\n", headers=(("Content-Type", "text/plain"),)),
               ex("/logo.png", raw=b"\x89PNG\x00\x01", headers=(("Content-Type", "image/png"),)),
               ex("/health", {"ok": True}),
               ex("/gone", {"bye": True}))
    changed = {"items": [{"id": 1, "price": 12}, {"id": 2, "price": 5}], "count": "2"}
    utf8 = (("content-type", "application/json; charset=utf-8"),
            ("Date", "Mon, 23 Nov 2026 10:00:00 GMT"), ("Content-Length", "9"),
            ("Connection", "close"))
    branch = add(url, "branch",
                 ex("/items", {**changed, "ts": "11:00:00"}, headers=utf8, ms=30),
                 ex("/items", {**changed, "ts": "11:00:01"}, headers=utf8, ms=40),
                 ex("/text", raw=b"one\n2\nthree\n", headers=(("Content-Type", "text/plain"),)),
                 ex("/logo.png", raw=b"\x89PNG\x00\x02", headers=(("Content-Type", "image/png"),)),
                 ex("/health", {"ok": False}, status=503),
                 ex("/new", {"hello": 1}))
    return {"base": base, "branch": branch}


def run(*args: str, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed `wiretape` command, as a user (or a CI job) runs it."""
    return subprocess.run([WIRETAPE_BIN, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=_env())


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(k, None)
    return env


def drift_app(db_url: str, **kw: Any) -> Any:
    """The admin app, as `serve` builds it."""
    return create_app(ApiSettings(db_url=db_url, **kw))
