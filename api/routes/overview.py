"""A tape at a glance: counts, matching rules, last audit and freshness in one answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from sqlalchemy.orm import Session
from wiretape.storage import overview
from wiretape.storage import repository as repo
from wiretape.storage.matching import MatchRules
from wiretape.storage.times import as_utc

from .. import schemas
from ..deps import SessionDep

router = APIRouter(prefix="/tapes", tags=["tapes"])

TapeName = Annotated[str, schemas.TapePath]


def _last_audit(s: Session, name: str) -> schemas.LastAudit | None:
    audit = overview.last_audit(s, name)
    if audit is None:
        return None
    summary = audit.summary or {}
    passed = summary.get("passed") if audit.status == "done" else None
    return schemas.LastAudit(
        id=audit.id, status=audit.status,
        started_at=as_utc(audit.started_at) if audit.started_at else None,
        finished_at=as_utc(audit.finished_at) if audit.finished_at else None,
        fail_on=audit.fail_on, passed=passed if isinstance(passed, bool) else None,
        recordings=int(summary.get("recordings", 0)), drifted=int(summary.get("drifted", 0)),
        verdicts={str(k): int(v) for k, v in (summary.get("verdicts") or {}).items()},
    )


@router.get("/{name}/overview", response_model=schemas.TapeOverview,
            summary="A tape at a glance")
def tape_overview(name: TapeName, s: SessionDep) -> schemas.TapeOverview:
    """The recording count, matching rules, the newest audit's verdict and how fresh the
    recordings are (how many an audit verified, when, with which verdicts), in one answer
    that costs one aggregate query however big the tape is."""
    tape = repo.tape_summary(s, name)
    fresh = overview.freshness(s, name)
    return schemas.TapeOverview(
        name=tape.name, recordings=tape.recordings, created_at=tape.created_at,
        updated_at=tape.updated_at,
        matching=schemas.MatchingRules(
            **MatchRules.from_dict(repo.require_tape(s, name).matching).to_dict()),
        last_audit=_last_audit(s, name),
        freshness=schemas.FreshnessSummary(
            verified=fresh.verified, never_verified=fresh.never_verified,
            oldest_verified_at=fresh.oldest_verified_at,
            newest_verified_at=fresh.newest_verified_at, verdicts=fresh.verdicts),
    )
