"""What the admin app is configured with (kept apart from the app's lifecycle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wiretape.storage.notify import Notifier
from wiretape.storage.redact import Redactor


@dataclass(frozen=True, slots=True)
class ApiSettings:
    db_url: str
    token: str | None = None
    confdir: str | None = None
    notifier: Notifier = field(default_factory=Notifier)
    # the proxy's live figures for /metrics, supplied by `serve` (None in API-only use)
    metrics_source: Callable[[], dict[str, float]] | None = None
    # what is secret: applied to hand-written recordings, edits and HAR imports too
    redactor: Redactor = field(default_factory=Redactor)
    # the addresses `serve` really listens on (port 0 in --listen/--admin picks a free one),
    # reported by /api/health so that harnesses need not race for a port
    proxy_address: str | None = None
    admin_address: str | None = None
    # read-your-writes: waits (up to the seconds given) until the proxy's queued exchanges
    # and misses are stored; called before recordings and misses are read (None: no proxy)
    flush_writes: Callable[[float], bool] | None = None
    # what audits verify upstream TLS with (serve's --upstream-ca, SSL_CERT_FILE/DIR); None:
    # httpx's default
    upstream_ca_file: str | None = None
    upstream_ca_dir: str | None = None
    # host names the admin app answers to besides localhost and IP literals (DNS
    # rebinding): `--admin`'s host and the --admin-host names; "*" is any
    admin_hosts: tuple[str, ...] = ()
