"""Health, mode, replay sequences, the misses journal, the CA certificate and /metrics."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from wiretape.storage import metrics
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Mode, OnMiss
from wiretape.storage.models import RuntimeState
from wiretape.storage.times import as_utc

from .. import schemas
from ..deps import FlushedWrites, SessionDep, SettingsDep
from ..version import wiretape_version

# the CA file mitmproxy writes into --confdir (see proxy/certs.py; api/ does not import it)
CA_CERT_FILE = "mitmproxy-ca-cert.pem"

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])
metrics_router = APIRouter(tags=["system"])  # at /metrics, where Prometheus looks


@public.get("/health", response_model=schemas.Health, summary="Is wiretape up")
def health(s: SessionDep, settings: SettingsDep) -> schemas.Health:
    """Never needs the token (container health checks). `proxy` and `admin` are the
    addresses really bound, also when `--listen`/`--admin` asked for port 0."""
    state = repo.get_state(s)
    return schemas.Health(
        status="ok",
        mode=state.mode if state else "record",
        tape=state.tape if state else "default",
        version=wiretape_version(),
        proxy=settings.proxy_address,
        admin=settings.admin_address,
    )


@router.get("/mode", response_model=schemas.ModeState, summary="Mode, tape and on-miss policy")
def get_mode(s: SessionDep) -> schemas.ModeState:
    state = repo.get_state(s)
    if state is None:
        raise HTTPException(404, "no wiretape process has set a mode yet")
    return _mode_state(state)


@router.put("/mode", response_model=schemas.ModeState, summary="Switch mode, tape or on-miss")
def put_mode(body: schemas.ModeUpdate, s: SessionDep) -> schemas.ModeState:
    """Every wiretape process sharing the database follows within 2 seconds (this one at
    once). Fields left out stay as they are."""
    if repo.get_state(s) is None:
        repo.init_state(s, Mode.RECORD, "default", OnMiss.ERROR)
    state = repo.set_state(
        s,
        mode=body.mode.value if body.mode else None,
        tape=body.tape,
        on_miss=body.on_miss.value if body.on_miss else None,
    )
    if body.tape:
        repo.ensure_tape(s, body.tape)
    s.info["changed"] = True
    return _mode_state(state)


def _mode_state(state: RuntimeState) -> schemas.ModeState:
    return schemas.ModeState(mode=Mode(state.mode), tape=state.tape,
                             on_miss=OnMiss(state.on_miss))


@router.post("/replay/reset", response_model=schemas.ReplayReset,
             summary="Start every replay sequence over")
def replay_reset(s: SessionDep) -> schemas.ReplayReset:
    generation = repo.reset_sequences(s)
    s.info["changed"] = True
    return schemas.ReplayReset(reset=True, generation=generation)


@router.get("/misses", response_model=list[schemas.MissOut], summary="Recent replay misses",
            dependencies=[FlushedWrites])
def misses(
    s: SessionDep,
    tape: Annotated[str | None, schemas.TapeQuery] = None,
    limit: Annotated[int, schemas.LimitQuery(100)] = 100,
) -> list[schemas.MissOut]:
    """Newest first, each with the closest recordings of its tape and what differs."""
    return [
        schemas.MissOut(
            id=m.id, tape=m.tape, at=as_utc(m.at),
            request={"method": m.method, "url": m.url}, closest=m.closest,
        )
        for m in repo.list_misses(s, tape, limit)
    ]


@router.get(
    "/ca.pem", summary="The CA certificate clients should trust", response_class=FileResponse,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                     "description": "PEM certificate"},
               404: {"description": "no CA yet"}},
)
def ca_pem(settings: SettingsDep) -> FileResponse:
    """For `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` or `NODE_EXTRA_CA_CERTS`."""
    path = os.path.join(settings.confdir, CA_CERT_FILE) if settings.confdir else None
    if path is None or not os.path.isfile(path):
        raise HTTPException(404, "no CA certificate: this admin API runs without a proxy "
                                 "(`wiretape ca` creates one)")
    return FileResponse(path, media_type="application/x-pem-file", filename="wiretape-ca.pem")


@metrics_router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format"}},
)
def prometheus(request: Request) -> Response:
    """Requests by mode and outcome, their latency, recordings written, write queue depth."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(metrics.REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
