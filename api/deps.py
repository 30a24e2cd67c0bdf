"""Dependencies of the admin routes: one transaction per request, the bearer token, the
app's audit runner."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from wiretape.drift.audit import AuditRunner

from .settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error.

    A route that changed what replay serves marks `s.info["changed"]`; once the commit has
    landed the in-process proxy takes the change in before the response goes out (other
    processes see it by polling). Used with
    `scope="function"` so the commit lands before the response is sent: a client that reads
    right after a write sees it.
    """
    with get_sessions(request).begin() as s:
        yield s
    if s.info.get("changed"):
        get_settings(request).notifier.changed(wait=5.0)


def flush_writes(request: Request) -> None:
    """Read-your-writes: an exchange or miss the proxy of this process has answered is
    stored before the route reads (the proxy's writer batches them off the event loop)."""
    flush = get_settings(request).flush_writes
    if flush is not None:
        flush(5.0)
def get_audit_runner(request: Request) -> AuditRunner:
    runner: AuditRunner = request.app.state.audit_runner
    return runner


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
FlushedWrites = Depends(flush_writes)
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
AuditRunnerDep = Annotated[AuditRunner, Depends(get_audit_runner)]

bearer = HTTPBearer(
    auto_error=False,
    description="The --token of `wiretape serve` (only needed when one is set).",
)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    token = get_settings(request).token
    if token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    # compare_digest: the time taken says nothing about how much of the token matched
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
        raise HTTPException(
            401, "missing or wrong bearer token: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
