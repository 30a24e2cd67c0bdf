"""Audits on a schedule: the current tape audited whenever its last audit is old enough."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import repository as repo
from wiretape.storage.models import AuditTrigger
from wiretape.storage.redact import Redactor
from wiretape.storage.times import as_utc, utcnow

from .options import AuditOptions
from .run import TapeAudit
from .runner import AuditRunner

log = logging.getLogger(__name__)


def audit_due(s: Session, every: float) -> str | None:
    """The current tape (the shared runtime state's), if it has recordings and no audit of
    it started within `every` seconds; otherwise None. Several processes sharing one
    database thus audit a tape about once per interval between them."""
    state = repo.get_state(s)
    if state is None or repo.get_tape(s, state.tape) is None:
        return None
    if repo.count_recordings(s, state.tape) == 0:
        return None
    last = as_utc(repo.last_audit_started(s, state.tape))
    if last is not None and utcnow() - last < timedelta(seconds=every):
        return None
    return state.tape


async def audit_every(
    sessions: sessionmaker[Session],
    every: float,
    options: AuditOptions,
    runner: AuditRunner,
    redactor: Redactor | None = None,
) -> None:
    """Audit the current tape whenever one is due, forever (cancel the task to stop)."""
    check = min(every, 60.0)
    while True:
        try:
            tape = await asyncio.to_thread(_due, sessions, every)
            if tape is not None:
                audit = await asyncio.to_thread(TapeAudit.begin, sessions, tape, options,
                                                trigger=AuditTrigger.SCHEDULE, redactor=redactor)
                log.info("scheduled audit %d of tape %s started", audit.id, tape)
                try:
                    await asyncio.wrap_future(runner.start(audit))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    pass  # logged and stored as failed by the audit itself
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled audit failed")
        await asyncio.sleep(check)


def _due(sessions: sessionmaker[Session], every: float) -> str | None:
    with sessions() as s:
        return audit_due(s, every)
