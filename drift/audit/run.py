"""One audit of a tape, from start to stored: `begin` stores it as running, `run` audits."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage import models as m
from wiretape.storage import repository as repo
from wiretape.storage.models import AuditStatus, AuditTrigger
from wiretape.storage.redact import Redactor
from wiretape.storage.times import utcnow

from .. import noise
from .judge import Outcome, judge, summarize
from .options import AuditOptions, Target, answered
from .report import AuditReport, AuditResult, load_report

log = logging.getLogger(__name__)


class TapeAudit:
    """An audit of one tape: `begin` stores it as running, `run` audits and stores results."""

    def __init__(self, sessions: sessionmaker[Session], audit_id: int, tape: str,
                 targets: list[Target], manual: list[str], detected: dict[str, list[str]],
                 options: AuditOptions, redactor: Redactor,
                 on_change: Callable[[], None] | None) -> None:
        self.sessions = sessions
        self.id = audit_id
        self.tape = tape
        self.targets = targets
        self.manual = manual
        self.detected = detected
        self.options = options
        self.redactor = redactor
        self.on_change = on_change

    @classmethod
    def begin(
        cls,
        sessions: sessionmaker[Session],
        tape: str,
        options: AuditOptions,
        *,
        trigger: AuditTrigger = AuditTrigger.CLI,
        redactor: Redactor | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> TapeAudit:
        """Store a new running audit (raises repository.TapeNotFound)."""
        with sessions.begin() as s:
            audit = repo.create_audit(s, tape, trigger=trigger, fail_on=options.fail_on,
                                      strict=options.strict, options=options.to_dict())
            targets = [Target(r.id, r.match_key, repo.row_exchange(r))
                       for r in repo.tape_recordings(s, tape)]
            manual, detected = repo.tape_noise(s, tape)
            audit_id = audit.id
        return cls(sessions, audit_id, tape, targets, manual, detected, options,
                   redactor or Redactor(), on_change)

    @property
    def planned(self) -> int:
        """How many requests the audit sends at most (for a progress bar)."""
        from .probe import planned  # httpx is imported when an audit runs, not at start-up

        return planned(self.targets, self.options)

    async def run(self, progress: Callable[[int], None] | None = None) -> AuditReport:
        from .probe import probe

        started = time.monotonic()
        try:
            answers = await probe(self.targets, self.options, progress)
            outcomes, live_noise = await asyncio.to_thread(
                judge, self.targets, answers, self.options, self.manual, self.detected)
            await asyncio.to_thread(self._store, outcomes, live_noise,
                                    time.monotonic() - started)
        except BaseException as e:  # cancelled too: the audit must not stay "running"
            reason = "interrupted" if isinstance(e, asyncio.CancelledError) else (
                f"{type(e).__name__}: {e}")
            log.warning("audit %d of tape %s failed: %s", self.id, self.tape, reason)
            try:
                with self.sessions.begin() as s:
                    repo.finish_audit(s, self.id, AuditStatus.FAILED, {}, reason)
            except Exception:
                log.exception("could not mark audit %d failed", self.id)
            raise
        with self.sessions() as s:
            report = load_report(s, self.id)
        log.info("audit %d of tape %s: %d recordings, %d drifted, %d at or above %s",
                 self.id, self.tape, report.summary["recordings"], report.summary["drifted"],
                 report.summary["failing"], self.options.fail_on)
        return report

    def _refreshable(self, o: Outcome) -> bool:
        # a live failure never replaces an answer: an unreachable staging service would
        # otherwise wipe the tape
        return self.options.refresh and bool(o.findings) and answered(o.live)

    def _store(self, outcomes: list[Outcome], live_noise: noise.EndpointNoise,
               seconds: float) -> None:
        now = utcnow()
        refreshed = 0
        with self.sessions.begin() as s:
            rows = []
            for o in outcomes:
                did_refresh = False
                if self._refreshable(o):
                    rec = s.get(m.Recording, o.target.id)
                    if rec is not None:
                        repo.replace_response(s, rec, self.redactor.exchange(o.live),
                                              rerecorded=True)
                        did_refresh = True
                        refreshed += 1
                rows.append(_result_row(o, did_refresh, now))
            repo.add_audit_results(s, self.id, rows)
            tape = repo.require_tape(s, self.tape)
            repo.add_detected_noise(s, tape.id, live_noise)
            repo.finish_audit(s, self.id, AuditStatus.DONE,
                              summarize(outcomes, self.options, refreshed, live_noise, seconds))
        if refreshed and self.on_change is not None:
            self.on_change()


def _result_row(o: Outcome, refreshed: bool, checked_at: datetime) -> dict[str, Any]:
    live, recorded = o.live, o.target.exchange
    return dataclasses.asdict(AuditResult(
        recording_id=o.target.id,
        endpoint=o.target.endpoint,
        method=recorded.request.method,
        url=recorded.request.url,
        verdict=o.verdict,
        # finding values come from bodies: keep them JSON (bytes never reach here, but be safe)
        findings=[json.loads(json.dumps(f.to_dict(), default=str)) for f in o.findings],
        ignored=o.ignored,
        live_status=live.response.status if live.response else None,
        live_failure=str(live.failure.kind) if live.failure else None,
        duration_ms=round(live.duration_ms, 3),
        recorded_duration_ms=recorded.duration_ms,
        refreshed=refreshed,
        checked_at=checked_at,
    ))
