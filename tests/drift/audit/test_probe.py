"""The audit's network side: what is sent again of a recorded request."""

from __future__ import annotations

from wiretape.drift.audit.probe import request_headers
from wiretape.storage.exchange import Request


def test_request_headers_leave_out_hop_by_hop_and_redacted_and_take_extras() -> None:
    req = Request("POST", "https", "api.test", 443, "/x", (
        ("Host", "api.test"), ("Authorization", "REDACTED"), ("Cookie", "REDACTED"),
        ("Connection", "keep-alive"), ("Content-Length", "2"), ("Proxy-Authorization", "x"),
        ("X-Api-Key", "REDACTED"), ("Accept", "*/*"), ("x-tenant", "a")), b"{}")
    assert request_headers(req, [("authorization", "Bearer t"), ("X-Tenant", "b")]) == [
        ("Host", "api.test"), ("Accept", "*/*"), ("authorization", "Bearer t"),
        ("X-Tenant", "b")]
