"""What an audit is asked to do (its options) and what it audits (its targets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wiretape.storage.errors import InvalidInput
from wiretape.storage.exchange import Exchange
from wiretape.storage.headers import check_header

from ..changes import endpoint
from ..kinds import DEFAULT_FAIL_ON, DriftClass

# only these are sent a second time to learn noise from two live answers
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class InvalidAuditOption(InvalidInput):
    """An audit option out of its range."""


@dataclass(frozen=True, slots=True)
class AuditOptions:
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, replacing any same name
    concurrency: int = 4
    timeout: float = 10.0  # seconds per request
    strict: bool = False
    fail_on: DriftClass = DEFAULT_FAIL_ON
    refresh: bool = False
    verify_tls: bool = True
    # CA certificates to verify with (a PEM bundle, a hashed folder); none: httpx's default
    # (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)
    ca_file: str | None = None
    ca_dir: str | None = None
    # how many recordings per endpoint (safe methods only) get a second live answer to learn
    # noise from, and the least time between the two (so second-resolution timestamps differ)
    noise_probes: int = 1
    probe_gap: float = 1.0
    # latency drift needs the live answer slower than 2x recorded AND this much slower: on a
    # fast network 1 ms -> 3 ms is jitter, not drift
    latency_floor_ms: float = 25.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InvalidAuditOption("concurrency must be at least 1")
        if not self.timeout > 0:
            raise InvalidAuditOption("timeout must be a positive number of seconds")
        for name, value in self.headers:
            check_header(name, value)

    def to_dict(self) -> dict[str, Any]:
        """What is stored with the audit: header names only, never their values."""
        return {"headers": sorted({n for n, _ in self.headers}), "concurrency": self.concurrency,
                "timeout": self.timeout, "refresh": self.refresh, "verify_tls": self.verify_tls}


@dataclass(frozen=True, slots=True)
class Target:
    """A recording to audit."""

    id: int
    match_key: str
    exchange: Exchange

    @property
    def endpoint(self) -> str:
        return endpoint(self.exchange)

    @property
    def probed_twice(self) -> bool:
        """Whether its endpoint may get a second live answer (to learn noise from)."""
        return self.exchange.request.method.upper() in SAFE_METHODS


def answered(ex: Exchange) -> bool:
    return ex.response is not None and ex.failure is None
