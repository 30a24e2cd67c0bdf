"""create_app(settings): the FastAPI admin application."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.notify import Notifier

from . import schemas


def wiretape_version() -> str:
    try:
        return version("wiretape")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    db_url: str
    token: str | None = None
    confdir: str | None = None
    notifier: Notifier = field(default_factory=Notifier)
    # the proxy's live figures for /metrics, supplied by `serve` (None in API-only use)
    metrics_source: Callable[[], dict[str, float]] | None = None


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error.

    A route that changed what replay serves marks `s.info["changed"]`; the in-process proxy
    is nudged once the commit has landed (other processes see it by polling).
    """
    with request.app.state.sessions.begin() as s:
        yield s
    if s.info.get("changed"):
        request.app.state.settings.notifier.changed()


SessionDep = Annotated[Session, Depends(get_session)]


def require_token(request: Request) -> None:
    token: str | None = request.app.state.settings.token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise HTTPException(401, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


public = APIRouter(prefix="/api")
router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])


@public.get("/health", response_model=schemas.Health)
def health(s: SessionDep) -> schemas.Health:
    state = repo.get_state(s)
    return schemas.Health(
        status="ok",
        mode=state.mode if state else "record",
        tape=state.tape if state else "default",
        version=wiretape_version(),
    )


@router.get("/mode", response_model=schemas.ModeState)
def get_mode(s: SessionDep) -> schemas.ModeState:
    state = repo.get_state(s)
    if state is None:
        raise HTTPException(404, "no wiretape process has set a mode yet")
    return schemas.ModeState(mode=state.mode, tape=state.tape, on_miss=state.on_miss)


@router.put("/mode", response_model=schemas.ModeState)
def put_mode(body: schemas.ModeUpdate, s: SessionDep) -> schemas.ModeState:
    if repo.get_state(s) is None:
        repo.init_state(s, "record", "default", "error")
    state = repo.set_state(
        s,
        mode=body.mode.value if body.mode else None,
        tape=body.tape,
        on_miss=body.on_miss.value if body.on_miss else None,
    )
    if body.tape:
        repo.ensure_tape(s, body.tape)
    s.info["changed"] = True
    return schemas.ModeState(mode=state.mode, tape=state.tape, on_miss=state.on_miss)


@router.post("/replay/reset", response_model=schemas.ReplayReset)
def replay_reset(s: SessionDep) -> schemas.ReplayReset:
    generation = repo.reset_sequences(s)
    s.info["changed"] = True
    return schemas.ReplayReset(reset=True, generation=generation)


@router.get("/misses", response_model=list[schemas.MissOut])
def misses(
    s: SessionDep,
    tape: Annotated[str | None, schemas.TapeQuery] = None,
    limit: Annotated[int, schemas.LimitQuery(100)] = 100,
) -> list[schemas.MissOut]:
    return [
        schemas.MissOut(
            id=m.id, tape=m.tape, at=m.at, request={"method": m.method, "url": m.url},
            closest=m.closest,
        )
        for m in repo.list_misses(s, tape, limit)
    ]


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.db_url)
        app.state.engine = engine
        app.state.sessions = db.make_sessions(engine)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="wiretape admin API",
        version=wiretape_version(),
        description="Browse, edit, diff and audit recordings; switch modes at run time.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(public)
    app.include_router(router)

    @app.exception_handler(LookupError)
    async def not_found(_request: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404)

    return app


