"""create_app(settings): the FastAPI admin application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from wiretape.drift.audit import AuditRunner
from wiretape.drift.metrics import DriftCollector
from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.errors import WiretapeError
from wiretape.storage.metrics import WriterCollector

from . import schemas
from .deps import get_session, require_token
from .guard import AdminGuard
from .routes import audits, diffs, overview, recordings, system, tapes, ui
from .settings import ApiSettings
from .version import wiretape_version

__all__ = ["ApiSettings", "create_app", "get_session", "wiretape_version"]

DESCRIPTION = """\
Browse, search, edit and move the recordings of a running wiretape; switch its mode at
run time.

A first tour: **GET /api/recordings** with `q` finds recordings by a word in their bodies;
**GET /api/recordings/{rid}** shows the whole exchange; **PATCH** it to change the response
that replay serves; **GET /api/tapes/{name}/export** saves the tape as HAR and
**POST /api/tapes/{name}/import** loads it into another store.

When `wiretape serve` runs with `--token`, press **Authorize** and paste the token: every
endpoint but `/api/health` needs it. Errors are `{"detail": "..."}`: 404 for an unknown id
or tape, 409 for a conflict, 422 for invalid input.
"""

def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, object]]]:
    errors = []
    lines = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or str((e.get("loc") or ("request",))[0])
        lines.append(f"{where}: {e.get('msg', 'invalid')}")
        errors.append({"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")})
    return "; ".join(lines) or "invalid request", errors


def add_error_handlers(app: FastAPI) -> None:
    """The app's one error mapping: a WiretapeError answers its own status with its message;
    anything else is a bug and stays a 500 (logged with its traceback)."""

    @app.exception_handler(WiretapeError)
    async def wiretape_error(_request: Request, exc: WiretapeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(IntegrityError)
    async def integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        # two requests raced to create the same tape
        return JSONResponse({"detail": "conflict with a concurrent change; try again"},
                            status_code=409)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        # FastAPI turns any failure to read a JSON body but a syntax error into a bare 400
        # ("There was an error parsing the body"); a document too deep for json.loads is
        # invalid input like any other, and says so
        if isinstance(exc.__cause__, RecursionError):
            return JSONResponse({"detail": "the JSON body is nested too deeply"},
                                status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def create_app(settings: ApiSettings) -> FastAPI:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WriterCollector(settings.metrics_source))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The engine for the app's life. Audits started through the API run on threads of
        their own; at shutdown the ones still running are cancelled and stored as failed
        instead of staying "running"."""
        engine = db.make_engine(settings.db_url)
        sessions = db.make_sessions(engine)
        app.state.engine, app.state.sessions = engine, sessions
        app.state.audit_runner = runner = AuditRunner()
        drift = DriftCollector(lambda: _latest_audit_summaries(sessions))
        registry.register(drift)
        try:
            yield
        finally:
            registry.unregister(drift)
            await asyncio.to_thread(runner.stop)
            engine.dispose()

    app = FastAPI(
        title="wiretape admin API",
        version=wiretape_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics_registry = registry

    # /docs and /openapi.json stay open: they hold no recordings, and Swagger UI must load
    # them before anyone can press Authorize and give the token
    public = APIRouter(prefix="/api")
    public.include_router(system.public)
    guarded = APIRouter(prefix="/api", dependencies=[Depends(require_token)],
                        responses=schemas.ERROR_RESPONSES)
    for routes in (system, recordings, tapes, overview, diffs, audits):
        guarded.include_router(routes.router)
    app.include_router(public)
    app.include_router(guarded)
    app.include_router(system.metrics_router, dependencies=[Depends(require_token)],
                       responses={401: schemas.ERROR_RESPONSES[401]})
    ui.install(app)  # the web UI at /ui/: static files, no token (they hold no data)
    add_error_handlers(app)
    # outermost: a request for another host name, or a cross-site write, reaches nothing
    app.add_middleware(AdminGuard, names=settings.admin_hosts)
    return app


def _latest_audit_summaries(
    sessions: sessionmaker[Session],
) -> list[tuple[str, dict[str, Any], datetime | None]]:
    with sessions() as s:
        return repo.latest_audit_summaries(s)
