"""Drift audits as stored: audits and their results, each recording's freshness, tape noise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .. import models as m
from ..errors import NotFound
from ..models import VERDICT_OK, VERDICT_REFRESHED, AuditStatus, AuditTrigger
from ..times import as_utc, utcnow
from .recordings import get_recording
from .sql import is_postgresql
from .tapes import require_tape


class AuditNotFound(NotFound):
    """No audit has that id."""


def tape_noise(s: Session, tape_name: str) -> tuple[list[str], dict[str, list[str]]]:
    """(patterns given by hand, {endpoint: patterns detected by audits}) of a tape."""
    tape = require_tape(s, tape_name)
    manual = [str(p) for p in (tape.noise or []) if isinstance(p, str)]
    detected = {str(ep): [str(p) for p in ps] for ep, ps in (tape.noise_detected or {}).items()}
    return manual, detected


def set_tape_noise(
    s: Session,
    tape_name: str,
    manual: Sequence[str] | None = None,
    detected: Mapping[str, Sequence[str]] | None = None,
) -> m.Tape:
    """Replace a tape's hand-written noise patterns and/or its detected ones."""
    tape = require_tape(s, tape_name)
    if manual is not None:
        tape.noise = sorted(set(manual))
    if detected is not None:
        tape.noise_detected = _stored_noise(detected)
    s.flush()
    return tape


def add_detected_noise(s: Session, tape_id: int, found: Mapping[str, Iterable[str]]) -> None:
    """Merge noise patterns found by an audit into the tape's detected noise."""
    if not any(found.values()):
        return
    tape = s.get(m.Tape, tape_id, with_for_update=is_postgresql(s))
    if tape is None:
        return
    merged = {ep: set(ps) for ep, ps in (tape.noise_detected or {}).items()}
    for ep, ps in found.items():
        merged.setdefault(ep, set()).update(ps)
    # a new object: SQLAlchemy does not see changes made inside a JSON value
    tape.noise_detected = _stored_noise(merged)
    s.flush()


def _stored_noise(noise: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    return {ep: sorted(set(ps)) for ep, ps in sorted(noise.items()) if ps}


def create_audit(
    s: Session,
    tape_name: str,
    *,
    trigger: AuditTrigger,
    fail_on: str,
    strict: bool,
    options: dict[str, Any],
) -> m.Audit:
    tape = require_tape(s, tape_name)
    audit = m.Audit(tape_id=tape.id, status=AuditStatus.RUNNING, trigger=trigger,
                    started_at=utcnow(), fail_on=fail_on, strict=strict, options=options,
                    summary={}, error="")
    s.add(audit)
    s.flush()
    return audit


def add_audit_results(s: Session, audit_id: int, results: Sequence[dict[str, Any]]) -> None:
    """Store an audit's results and each audited recording's freshness (last verified,
    last verdict). Results name their recording in `recording_id`."""
    if not results:
        return
    s.execute(m.AuditResult.__table__.insert(),  # type: ignore[attr-defined]
              [{**r, "audit_id": audit_id} for r in results])
    live = {r["recording_id"] for r in results if r.get("recording_id") is not None}
    # recordings deleted while the audit ran are skipped, not updated into an error
    existing = set(s.scalars(select(m.Recording.id).where(m.Recording.id.in_(live)))) if live \
        else set()
    fresh = [
        {"id": r["recording_id"], "last_verified_at": r["checked_at"],
         "last_verdict": VERDICT_REFRESHED if r.get("refreshed") else r["verdict"]}
        for r in results if r.get("recording_id") in existing
    ]
    if fresh:
        s.execute(update(m.Recording), fresh)


def finish_audit(
    s: Session, audit_id: int, status: AuditStatus, summary: dict[str, Any], error: str = ""
) -> None:
    s.execute(
        update(m.Audit)
        .where(m.Audit.id == audit_id)
        .values(status=status, summary=summary, error=error[:2000], finished_at=utcnow())
    )


def get_audit(s: Session, audit_id: int) -> tuple[m.Audit, str]:
    """The audit and the name of its tape."""
    row = s.execute(
        select(m.Audit, m.Tape.name).join(m.Tape, m.Tape.id == m.Audit.tape_id)
        .where(m.Audit.id == audit_id)
    ).one_or_none()
    if row is None:
        raise AuditNotFound(f"audit {audit_id} not found")
    return row[0], row[1]


def audit_results(s: Session, audit_id: int) -> list[m.AuditResult]:
    return list(s.scalars(select(m.AuditResult).where(m.AuditResult.audit_id == audit_id)
                          .order_by(m.AuditResult.id)))


def list_audits(s: Session, tape_name: str, limit: int = 50) -> list[m.Audit]:
    """A tape's audits, newest first."""
    tape = require_tape(s, tape_name)
    return list(s.scalars(select(m.Audit).where(m.Audit.tape_id == tape.id)
                          .order_by(m.Audit.id.desc()).limit(limit)))


def last_audit_started(s: Session, tape_name: str) -> datetime | None:
    """When the tape's newest audit started (None if never audited)."""
    return s.scalar(
        select(func.max(m.Audit.started_at)).join(m.Tape, m.Tape.id == m.Audit.tape_id)
        .where(m.Tape.name == tape_name)
    )


def recording_history(s: Session, rid: int, limit: int = 50) -> list[tuple[m.AuditResult, str]]:
    """What each audit found for one recording, newest first, with the audit's status."""
    get_recording(s, rid)
    return [
        (res, status)
        for res, status in s.execute(
            select(m.AuditResult, m.Audit.status)
            .join(m.Audit, m.Audit.id == m.AuditResult.audit_id)
            .where(m.AuditResult.recording_id == rid)
            .order_by(m.AuditResult.id.desc()).limit(limit)
        )
    ]


def tape_freshness(s: Session, tape_name: str) -> list[dict[str, Any]]:
    """Per recording of a tape: when an audit last verified it, its last verdict, and when
    it last matched the live upstream (verdict ok). Least recently verified first."""
    tape = require_tape(s, tape_name)
    R, A = m.Recording, m.AuditResult
    matched = {
        rid: at
        for rid, at in s.execute(
            select(A.recording_id, func.max(A.checked_at))
            .join(R, R.id == A.recording_id)
            .where(R.tape_id == tape.id, A.verdict == VERDICT_OK)
            .group_by(A.recording_id)
        )
    }
    rows = s.execute(
        select(R.id, R.method, R.url, R.status, R.last_verified_at, R.last_verdict)
        .where(R.tape_id == tape.id)
        .order_by(R.last_verified_at.is_not(None), R.last_verified_at, R.id)
    )
    return [
        {"id": rid, "method": method, "url": url, "status": status,
         "last_verified_at": as_utc(verified), "last_verdict": verdict,
         "last_matched_at": as_utc(matched.get(rid))}
        for rid, method, url, status, verified, verdict in rows
    ]


def latest_audit_summaries(s: Session) -> list[tuple[str, dict[str, Any], datetime | None]]:
    """(tape name, summary, finished at) of each tape's newest finished audit (/metrics)."""
    newest = (
        select(func.max(m.Audit.id)).where(m.Audit.status == AuditStatus.DONE)
        .group_by(m.Audit.tape_id).scalar_subquery()
    )
    return [
        (name, summary or {}, finished)
        for name, summary, finished in s.execute(
            select(m.Tape.name, m.Audit.summary, m.Audit.finished_at)
            .join(m.Tape, m.Tape.id == m.Audit.tape_id)
            .where(m.Audit.id.in_(newest)).order_by(m.Tape.name)
        )
    ]
