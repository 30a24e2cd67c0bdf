"""The admin app answers only to its own host names and refuses cross-site writes: a web
page can neither read it through DNS rebinding nor make it act (CSRF).

DNS rebinding: a page on attacker.example re-points its name at 127.0.0.1 and reads the
API as same-origin; its requests still say `Host: attacker.example`. So only names the
admin address is really reached by are served: `localhost` (and `*.localhost`), IP
literals (a page can only be same-origin with an IP literal by being served from it), and
the names the operator lists (`--admin`'s host, `--admin-host`). `*` widens it to any.

CSRF: a cross-site page can still *send* (not read) simple requests: form posts and
body-less POSTs. Every state-changing request must be JSON (`Content-Type:
application/json`), which no form can send and which makes a browser ask first (a CORS
preflight this app never grants); and a request whose `Origin` or `Sec-Fetch-Site` says it
came from another site is refused outright.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_ORIGIN = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of our own pages
ANY_HOST = "*"


def host_name(host: str) -> str:
    """`Host` or `--admin-host` text -> the lower-case name, without port or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8081
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AdminGuard:
    """ASGI middleware in front of the whole admin app: API, /metrics, /docs, the web UI."""

    def __init__(self, app: ASGIApp, names: Iterable[str] = ()) -> None:
        self.app = app
        self.names = frozenset(host_name(n) for n in names if n.strip())
        self.any_host = ANY_HOST in self.names

    def allows(self, host: str) -> bool:
        name = host_name(host)
        return (self.any_host or name in self.names or name == "localhost"
                or name.endswith(".localhost") or is_ip_literal(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope["method"], Headers(scope=scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers: Headers) -> JSONResponse | None:
        host = headers.get("host")
        # no Host at all is no browser's request (HTTP/1.0 tools): nothing to rebind
        if host is not None and not self.allows(host):
            return JSONResponse(
                {"detail": f"this admin API does not answer to the host name "
                           f"{host_name(host)!r}; if that is how it is reached, start "
                           "wiretape with --admin-host NAME (WIRETAPE_ADMIN_HOSTS)"},
                status_code=421)
        if method.upper() in SAFE_METHODS:
            return None
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if (site is not None and site.lower() not in SAME_ORIGIN) or (
                origin is not None and not _same_origin(origin, host)):
            return JSONResponse(
                {"detail": "a cross-site request cannot change anything here"},
                status_code=403)
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return JSONResponse(
                {"detail": "a request that changes something must be JSON: send "
                           "Content-Type: application/json"},
                status_code=415)
        return None


def _same_origin(origin: str, host: str | None) -> bool:
    """The page that sent the request is this app's own (its origin is this host)."""
    if host is None:
        return False
    try:
        netloc = urlsplit(origin.strip()).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()
