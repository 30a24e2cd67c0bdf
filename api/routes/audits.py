"""Drift audits: start one, follow it, a tape's and a recording's audit history, freshness."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from wiretape.drift.audit import AuditOptions, AuditReport, TapeAudit, load_report
from wiretape.drift.kinds import ReportFormat
from wiretape.storage import repository as repo
from wiretape.storage.models import AuditStatus, AuditTrigger
from wiretape.storage.times import as_utc

from .. import schemas
from ..deps import AuditRunnerDep, SessionDep, SessionsDep, SettingsDep

router = APIRouter(tags=["drift"])

HistoryLimit = Annotated[int, Query(ge=1, le=1000)]


@router.post("/tapes/{name}/audit", response_model=schemas.AuditStarted,
             status_code=status.HTTP_202_ACCEPTED, summary="Start a drift audit",
             responses={404: {"description": "no such tape"}})
def start_audit(
    name: schemas.TapeParam, sessions: SessionsDep, settings: SettingsDep,
    runner: AuditRunnerDep, body: Annotated[schemas.AuditRequest | None, Body()] = None,
) -> JSONResponse:
    """Re-send every recorded request of the tape to its live upstream, compare the answers
    with the recordings and classify what drifted: `breaking` (field removed, type changed,
    status class changed), `additive` (new field or header), `value`, `latency` (live
    slower than 2x recorded). Runs in the background: poll `GET /api/audits/{id}`."""
    req = body or schemas.AuditRequest()
    options = AuditOptions(
        headers=tuple(req.headers.items()), concurrency=req.concurrency,
        timeout=req.timeout, strict=req.strict, fail_on=req.fail_on, refresh=req.refresh,
        verify_tls=req.verify_tls, ca_file=settings.upstream_ca_file,
        ca_dir=settings.upstream_ca_dir,
    )
    audit = TapeAudit.begin(sessions, name, options, trigger=AuditTrigger.API,
                            redactor=settings.redactor, on_change=settings.notifier.changed)
    runner.start(audit)
    url = f"/api/audits/{audit.id}"
    started = schemas.AuditStarted(id=audit.id, tape=name, status=str(AuditStatus.RUNNING),
                                   url=url)
    return JSONResponse(started.model_dump(), status_code=status.HTTP_202_ACCEPTED,
                        headers={"Location": url})


def _report_response(report: AuditReport, format: ReportFormat) -> Any:
    if format is ReportFormat.TEXT:
        return PlainTextResponse(report.render(format))
    if format is ReportFormat.JUNIT:
        return Response(report.render(format), media_type="application/xml")
    return report.to_dict()


@router.get("/audits/{audit_id}", response_model=schemas.AuditOut,
            summary="An audit and its results",
            responses={200: {"content": {"text/plain": {}, "application/xml": {}}}})
def get_audit(audit_id: schemas.AuditId, s: SessionDep,
              format: schemas.Format = ReportFormat.JSON) -> Any:
    """`status` is running, done or failed; `summary.passed` says whether anything at or
    above `fail_on` drifted; each result has the recording's verdict and findings."""
    return _report_response(load_report(s, audit_id), format)


@router.get("/tapes/{name}/audits", response_model=list[schemas.AuditListItem],
            summary="A tape's audit history")
def list_audits(name: schemas.TapeParam, s: SessionDep,
                limit: HistoryLimit = 50) -> list[schemas.AuditListItem]:
    return [
        schemas.AuditListItem(id=a.id, status=a.status, trigger=a.trigger,
                              started_at=as_utc(a.started_at), finished_at=as_utc(a.finished_at),
                              fail_on=a.fail_on, summary=a.summary or {})
        for a in repo.list_audits(s, name, limit)
    ]


@router.get("/tapes/{name}/freshness", response_model=schemas.FreshnessOut,
            summary="When each recording was last verified")
def freshness(name: schemas.TapeParam, s: SessionDep) -> schemas.FreshnessOut:
    """Per recording, least recently verified first: when an audit last compared it with
    the live upstream, the verdict, and when it last matched."""
    return schemas.FreshnessOut(
        tape=name, recordings=[schemas.FreshnessItem(**r) for r in repo.tape_freshness(s, name)])


@router.get("/recordings/{rid}/audits", response_model=list[schemas.RecordingAuditOut],
            summary="A recording's audit history")
def recording_audits(rid: schemas.RecordingId, s: SessionDep,
                     limit: HistoryLimit = 50) -> list[schemas.RecordingAuditOut]:
    return [
        schemas.RecordingAuditOut(audit_id=r.audit_id, audit_status=st, verdict=r.verdict,
                                  findings=r.findings, live_status=r.live_status,
                                  live_failure=r.live_failure, refreshed=r.refreshed,
                                  checked_at=as_utc(r.checked_at))
        for r, st in repo.recording_history(s, rid, limit)
    ]
