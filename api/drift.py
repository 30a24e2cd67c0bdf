"""Diffs, noise, drift audits and freshness: the admin API's comparing endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from wiretape.drift import compare
from wiretape.drift.audit import AuditOptions, AuditReport, AuditRunner, TapeAudit, load_report
from wiretape.drift.kinds import DriftClass, ReportFormat
from wiretape.drift.metrics import DriftCollector
from wiretape.drift.render import render_junit, render_text
from wiretape.storage import repository as repo
from wiretape.storage.models import AuditTrigger
from wiretape.storage.times import as_utc

from .deps import SessionDep, SessionsDep, SettingsDep, require_token
from .schemas import TAPE_NAME_PATTERN

INT32 = 2**31 - 1
TapeName = Annotated[str, Path(pattern=TAPE_NAME_PATTERN, max_length=200,
                               description="tape name")]
RecordingId = Annotated[int, Path(ge=1, le=INT32, description="recording id")]
AuditId = Annotated[int, Path(ge=1, le=INT32, description="audit id")]
Strict = Annotated[bool, Query(description="keep noise (timestamps, request ids) in the verdict")]
Format = Annotated[ReportFormat,
                   Query(description="json (default), text (read at a glance) or junit (CI)")]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Audits started through the API run on threads of their own; at shutdown the ones
    still running are cancelled and stored as failed instead of staying "running"."""
    runner = AuditRunner()
    app.state.audit_runner = runner
    registry = getattr(app.state, "metrics_registry", None)
    collector = DriftCollector(lambda: _latest_summaries(app))
    if registry is not None:
        registry.register(collector)
    try:
        yield
    finally:
        if registry is not None:
            registry.unregister(collector)
        await anyio.to_thread.run_sync(runner.stop)


def _latest_summaries(app: FastAPI) -> list[tuple[str, dict[str, Any], datetime | None]]:
    with app.state.sessions() as s:
        return list(repo.latest_audit_summaries(s))


router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["drift"],
                   lifespan=lifespan)


# -- schemas ------------------------------------------------------------------------------


class ChangeOut(BaseModel):
    path: str = Field(examples=["response.body.items[0].price"])
    kind: Literal["added", "removed", "value_changed", "type_changed"]
    old: Any = None
    new: Any = None


class RecordingDiffOut(BaseModel):
    identical: bool
    changes: list[ChangeOut]
    ignored: int = Field(description="differences left out as noise (0 with strict)")


class TapeEntryOut(BaseModel):
    match_key: str
    seq: int
    id: int
    endpoint: str
    url: str
    status: int | None
    failure: str | None


class PairOut(BaseModel):
    match_key: str
    seq: int
    endpoint: str
    url: str
    a_id: int
    b_id: int
    changes: list[ChangeOut]
    ignored: int


class StatusClassChangeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    match_key: str
    seq: int
    endpoint: str
    a_id: int
    b_id: int
    from_: str = Field(alias="from")
    to: str


class TapeDiffOut(BaseModel):
    identical: bool
    added: list[TapeEntryOut] = Field(description="recordings only in B")
    removed: list[TapeEntryOut] = Field(description="recordings only in A")
    changed: list[PairOut]
    unchanged: int
    status_class_changes: list[StatusClassChangeOut]
    latency: list[dict[str, Any]] = Field(description="p50/p95 duration_ms per endpoint")
    error_rate: dict[str, Any]
    noise: dict[str, Any]


class NoiseOut(BaseModel):
    tape: str
    manual: list[str] = Field(
        description="patterns given by hand, for every endpoint",
        examples=[["response.body.timestamp", "response.headers.x-request-id"]])
    detected: dict[str, list[str]] = Field(
        description="per endpoint: learned by audits from two live answers, and found among "
                    "the tape's recordings of one key")


class NoiseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manual: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        default=None, max_length=1000, description="replaces the hand-written patterns")
    detected: dict[str, list[str]] | None = Field(
        default=None, description="replaces what audits learned ({} forgets it)")


class AuditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headers: dict[str, str] = Field(
        default_factory=dict, description="sent with every request, e.g. credentials that "
        "redaction removed; stored by name only", examples=[{"Authorization": "Bearer …"}])
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per request")
    strict: bool = False
    fail_on: DriftClass = DriftClass.BREAKING
    refresh: bool = Field(default=False, description="re-record what drifted")
    verify_tls: bool = True


class AuditStarted(BaseModel):
    id: int
    tape: str
    status: str
    url: str


class AuditResultOut(BaseModel):
    recording_id: int | None
    endpoint: str
    method: str
    url: str
    verdict: str = Field(description="ok, or the worst drift class found")
    findings: list[dict[str, Any]]
    ignored: int
    live_status: int | None
    live_failure: str | None
    duration_ms: float | None
    recorded_duration_ms: float
    refreshed: bool
    checked_at: datetime | None


class AuditOut(BaseModel):
    id: int
    tape: str
    status: Literal["running", "done", "failed"]
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    fail_on: str
    strict: bool
    options: dict[str, Any]
    summary: dict[str, Any]
    error: str
    results: list[AuditResultOut]


class AuditListItem(BaseModel):
    id: int
    status: str
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    fail_on: str
    summary: dict[str, Any]


class FreshnessItem(BaseModel):
    id: int
    method: str
    url: str
    status: int | None
    last_verified_at: datetime | None
    last_verdict: str | None = Field(description="ok, a drift class, or refreshed")
    last_matched_at: datetime | None = Field(description="last audit that found no drift")


class FreshnessOut(BaseModel):
    tape: str
    recordings: list[FreshnessItem]


class RecordingAuditOut(BaseModel):
    audit_id: int
    audit_status: str
    verdict: str
    findings: list[dict[str, Any]]
    live_status: int | None
    live_failure: str | None
    refreshed: bool
    checked_at: datetime | None


# -- diffs --------------------------------------------------------------------------------


@router.get("/recordings/{a}/diff/{b}", response_model=RecordingDiffOut,
            summary="Diff two recordings")
def recording_diff(a: RecordingId, b: RecordingId, s: SessionDep,
                   strict: Strict = False) -> Any:
    """Status, headers (names case-insensitive; Date, Content-Length and hop-by-hop headers
    ignored) and body (JSON structurally, text by lines, binary by digest) of `a`'s
    response against `b`'s. Unless `strict`, the tapes' noise is left out."""
    return compare.recording_diff(s, a, b, strict).to_dict()


@router.get("/tapes/{a}/diff/{b}", response_model=TapeDiffOut, summary="Diff two tapes",
            responses={200: {"content": {"text/plain": {}, "application/xml": {}}}})
def tape_diff(a: TapeName, b: TapeName, s: SessionDep, strict: Strict = False,
              format: Format = ReportFormat.JSON) -> Any:
    """Tape `a` (baseline) against tape `b`, paired by match key and seq: recordings only in
    B (`added`) or only in A (`removed`), changed pairs with their changes, the unchanged
    count, status class changes, p50/p95 latency per endpoint and error rates."""
    result = compare.tape_diff(s, a, b, strict)
    if format is ReportFormat.TEXT:
        return PlainTextResponse(render_text(result))
    if format is ReportFormat.JUNIT:
        return Response(render_junit(result, f"wiretape diff {a} {b}"),
                        media_type="application/xml")
    return result.to_dict()


# -- noise --------------------------------------------------------------------------------


@router.get("/tapes/{name}/noise", response_model=NoiseOut, summary="A tape's noise")
def get_noise(name: TapeName, s: SessionDep) -> Any:
    """What diffs and audits leave out unless strict: patterns like
    `response.body.meta.request_id`, `response.body.items[*].updated_at`,
    `response.headers.x-request-id` (`$.x` is short for `response.body.x`)."""
    return compare.noise_view(s, name)


@router.put("/tapes/{name}/noise", response_model=NoiseOut, summary="Set a tape's noise")
def put_noise(name: TapeName, body: NoiseUpdate, s: SessionDep) -> Any:
    return compare.set_noise(s, name, body.manual, body.detected)


# -- audits -------------------------------------------------------------------------------


def _runner(request: Request) -> AuditRunner:
    runner: AuditRunner | None = getattr(request.app.state, "audit_runner", None)
    if runner is None:  # the router's lifespan did not run (an app built another way)
        runner = request.app.state.audit_runner = AuditRunner()
    return runner


@router.post("/tapes/{name}/audit", response_model=AuditStarted,
             status_code=status.HTTP_202_ACCEPTED, summary="Start a drift audit",
             responses={404: {"description": "no such tape"}})
def start_audit(
    name: TapeName, request: Request, sessions: SessionsDep, settings: SettingsDep,
    body: Annotated[AuditRequest | None, Body()] = None,
) -> JSONResponse:
    """Re-send every recorded request of the tape to its live upstream, compare the answers
    with the recordings and classify what drifted: `breaking` (field removed, type changed,
    status class changed), `additive` (new field or header), `value`, `latency` (live
    slower than 2x recorded). Runs in the background: poll `GET /api/audits/{id}`."""
    req = body or AuditRequest()
    options = AuditOptions(
        headers=tuple(req.headers.items()), concurrency=req.concurrency,
        timeout=req.timeout, strict=req.strict, fail_on=req.fail_on, refresh=req.refresh,
        verify_tls=req.verify_tls,
    )
    audit = TapeAudit.begin(sessions, name, options, trigger=AuditTrigger.API,
                            redactor=settings.redactor, on_change=settings.notifier.changed)
    _runner(request).start(audit)
    url = f"/api/audits/{audit.id}"
    return JSONResponse(
        AuditStarted(id=audit.id, tape=name, status="running", url=url).model_dump(),
        status_code=status.HTTP_202_ACCEPTED, headers={"Location": url},
    )


def _report_response(report: AuditReport, format: ReportFormat) -> Any:
    if format is ReportFormat.TEXT:
        return PlainTextResponse(report.render(format))
    if format is ReportFormat.JUNIT:
        return Response(report.render(format), media_type="application/xml")
    return report.to_dict()


@router.get("/audits/{audit_id}", response_model=AuditOut, summary="An audit and its results",
            responses={200: {"content": {"text/plain": {}, "application/xml": {}}}})
def get_audit(audit_id: AuditId, s: SessionDep, format: Format = ReportFormat.JSON) -> Any:
    """`status` is running, done or failed; `summary.passed` says whether anything at or
    above `fail_on` drifted; each result has the recording's verdict and findings."""
    return _report_response(load_report(s, audit_id), format)


@router.get("/tapes/{name}/audits", response_model=list[AuditListItem],
            summary="A tape's audit history")
def list_audits(name: TapeName, s: SessionDep,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[AuditListItem]:
    return [
        AuditListItem(id=a.id, status=a.status, trigger=a.trigger,
                      started_at=as_utc(a.started_at), finished_at=as_utc(a.finished_at),
                      fail_on=a.fail_on, summary=a.summary or {})
        for a in repo.list_audits(s, name, limit)
    ]


@router.get("/tapes/{name}/freshness", response_model=FreshnessOut,
            summary="When each recording was last verified")
def freshness(name: TapeName, s: SessionDep) -> FreshnessOut:
    """Per recording, least recently verified first: when an audit last compared it with
    the live upstream, the verdict, and when it last matched."""
    return FreshnessOut(tape=name,
                        recordings=[FreshnessItem(**r) for r in repo.tape_freshness(s, name)])


@router.get("/recordings/{rid}/audits", response_model=list[RecordingAuditOut],
            summary="A recording's audit history")
def recording_audits(rid: RecordingId, s: SessionDep,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[RecordingAuditOut]:
    return [
        RecordingAuditOut(audit_id=r.audit_id, audit_status=st, verdict=r.verdict,
                          findings=r.findings, live_status=r.live_status,
                          live_failure=r.live_failure, refreshed=r.refreshed,
                          checked_at=as_utc(r.checked_at))
        for r, st in repo.recording_history(s, rid, limit)
    ]
