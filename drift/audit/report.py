"""An audit as stored, as the API answers it and the CLI prints it (text, JSON or JUnit).

The dataclasses here are also the admin API's response schemas for audits (pydantic reads
them), so the shape is declared once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy.orm import Session
from wiretape.storage import models as m
from wiretape.storage import repository as repo
from wiretape.storage.models import AuditStatus
from wiretape.storage.times import as_utc

from ..classify import DriftFinding
from ..kinds import DriftClass, ReportFormat
from ..render import AuditCase, render_audit_junit, render_audit_text


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


@dataclass(slots=True)
class AuditResult:
    """What an audit found for one recording."""

    recording_id: int | None  # None once the recording is deleted
    endpoint: str
    method: str
    url: str
    verdict: Annotated[str, Field(description="ok, or the worst drift class found")]
    findings: list[dict[str, Any]]
    ignored: int  # differences left out as noise
    live_status: int | None
    live_failure: str | None
    duration_ms: float | None
    recorded_duration_ms: float
    refreshed: bool
    checked_at: datetime | None

    @classmethod
    def of(cls, row: m.AuditResult) -> AuditResult:
        return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "checked_at": _iso(self.checked_at)}


@dataclass(slots=True)
class AuditReport:
    """An audit as stored: what the API answers and the CLI prints."""

    id: int
    tape: str
    status: AuditStatus
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    fail_on: str
    strict: bool
    options: dict[str, Any]
    summary: dict[str, Any]
    error: str
    results: list[AuditResult] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        """Drift at or above fail-on was found, or the audit itself failed."""
        return self.status is AuditStatus.FAILED or int(self.summary.get("failing", 0)) > 0

    def cases(self) -> list[AuditCase]:
        return [
            AuditCase(
                recording_id=r.recording_id if r.recording_id is not None else 0,
                endpoint=r.endpoint, url=r.url,
                findings=tuple(
                    DriftFinding(DriftClass(f["class"]), f["path"], f.get("old"), f.get("new"),
                                 f["message"])
                    for f in r.findings
                ),
            )
            for r in self.results
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "status": str(self.status), "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "results": [r.to_dict() for r in self.results],
        }

    def render(self, fmt: ReportFormat = ReportFormat.TEXT) -> str:
        if fmt is ReportFormat.JSON:
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
        if fmt is ReportFormat.JUNIT:
            return render_audit_junit(self.cases(), f"wiretape audit {self.tape}", self.fail_on)
        return self.render_text()

    def render_text(self) -> str:
        head = f"audit {self.id} of tape {self.tape}"
        if self.status is AuditStatus.FAILED:
            return f"{head}: failed: {self.error}\n"
        if self.status is AuditStatus.RUNNING:
            return f"{head}: running\n"
        verdict = (f"FAIL: drift at or above {self.fail_on}" if self.failing
                   else f"PASS: no drift at or above {self.fail_on}")
        lines = [f"{head}: {verdict}", render_audit_text(self.cases(), self.fail_on).rstrip("\n")]
        refreshed = [r for r in self.results if r.refreshed]
        if refreshed:
            lines += ["", f"re-recorded {len(refreshed)} drifted recording(s): "
                          + ", ".join(str(r.recording_id) for r in refreshed)]
        learned = self.summary.get("noise_learned") or {}
        if learned:
            lines += ["", "noise left out (differs between two live answers):"]
            lines += [f"  {ep}: {', '.join(ps)}" for ep, ps in learned.items()]
        return "\n".join(lines) + "\n"


def load_report(s: Session, audit_id: int) -> AuditReport:
    """An audit from the store (raises repository.AuditNotFound)."""
    audit, tape = repo.get_audit(s, audit_id)
    return AuditReport(
        id=audit.id, tape=tape, status=AuditStatus(audit.status), trigger=audit.trigger,
        started_at=audit.started_at, finished_at=audit.finished_at, fail_on=audit.fail_on,
        strict=audit.strict, options=audit.options or {}, summary=audit.summary or {},
        error=audit.error or "",
        results=[AuditResult.of(r) for r in repo.audit_results(s, audit_id)],
    )
