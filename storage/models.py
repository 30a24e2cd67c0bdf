"""SQLAlchemy 2.x ORM models: tapes, recordings (and big bodies' parts), runtime state, misses
journal, drift audits."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .times import utcnow

# Named constraints keep Alembic's autogenerate diffs stable across SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class AuditStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# An audit result's verdict is "ok" or the worst drift class found; a recording's last
# verdict may also be "refreshed" (re-recorded from the live answer).
VERDICT_OK = "ok"
VERDICT_REFRESHED = "refreshed"


class AuditTrigger(enum.StrEnum):
    """What started an audit."""

    CLI = "cli"
    API = "api"
    SCHEDULE = "schedule"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tape(Base):
    __tablename__ = "tapes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # bumped on every change to the tape's recordings or rules; replay indexes poll it
    revision: Mapped[int] = mapped_column(Integer, default=0)
    matching: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the matching.KEY_VERSION its recordings' match keys were computed with
    # (0005_match_key_version): a store opened by a newer wiretape re-keys the tapes behind
    # (repository.rekey_outdated_tapes)
    key_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # noise patterns given by hand (drift/noise.py), e.g. "response.body.timestamp"
    noise: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # noise found by drift audits (0003): {endpoint: [patterns]}; None until the first audit
    noise_detected: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    recordings: Mapped[list[Recording]] = relationship(
        back_populates="tape", cascade="all, delete-orphan", passive_deletes=True
    )


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_tape_key", "tape_id", "match_key", "captured_ns"),
        Index("ix_recordings_tape_id_id", "tape_id", "id"),
        # the admin list's filters (0002): each walks newest-first within a tape
        Index("ix_recordings_tape_method_id", "tape_id", "method", "id"),
        Index("ix_recordings_tape_status_id", "tape_id", "status", "id"),
        Index("ix_recordings_tape_host_id", "tape_id", "host", "id"),
        Index("ix_recordings_tape_recorded_at", "tape_id", "recorded_at"),
        # the path prefix filter (0004); text search has per-backend trigram indexes there
        Index("ix_recordings_tape_path", "tape_id", "path",
              postgresql_ops={"path": "text_pattern_ops"}),
        # freshness (0003): the least recently verified recordings of a tape first
        Index("ix_recordings_tape_verified", "tape_id", "last_verified_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tape_id: Mapped[int] = mapped_column(ForeignKey("tapes.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    match_key: Mapped[str] = mapped_column(String(64))
    captured_ns: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)

    method: Mapped[str] = mapped_column(String(32))
    scheme: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    http_version: Mapped[str] = mapped_column(String(16), default="HTTP/1.1")
    request_headers: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    request_body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")

    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(255), default="")
    response_http_version: Mapped[str] = mapped_column(String(16), default="HTTP/1.1")
    response_headers: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    response_body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    failure_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    failure_message: Mapped[str] = mapped_column(Text, default="")
    # a streamed response (0006_streams): when its head and each chunk arrived, and why it ended
    # early if it did (storage.exchange.Stream's JSON); null when it was not streamed
    response_stream: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True)
    # a body too big to hold in memory (0006_streams): {"sha256": ...}, its bytes in body_parts
    # and response_body empty; null when response_body holds the body
    response_external: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True)

    content_type: Mapped[str] = mapped_column(String(255), default="")
    request_size: Mapped[int] = mapped_column(Integer, default=0)
    response_size: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    # decoded, lower-cased text of both bodies, for the `q` filter
    search_text: Mapped[str] = mapped_column(Text, default="")
    # freshness (0003): when a drift audit last compared it with the live upstream, and the
    # verdict: ok, breaking, additive, value, latency or refreshed
    last_verified_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)

    tape: Mapped[Tape] = relationship(back_populates="recordings")


class BodyPart(Base):
    """One piece of a recording's response body too big to hold in memory (0006_streams), in
    order of `idx`; written and read a part at a time (storage/bodies.py)."""

    __tablename__ = "body_parts"

    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RuntimeState(Base):
    """One row shared by every process: mode, tape, on-miss policy, sequence resets."""

    __tablename__ = "runtime_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    tape: Mapped[str] = mapped_column(String(200))
    on_miss: Mapped[str] = mapped_column(String(16))
    replay_generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Miss(Base):
    __tablename__ = "misses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tape: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    method: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    closest: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Audit(Base):
    """One drift audit of a tape: its options, progress and summary."""

    __tablename__ = "audits"
    __table_args__ = (Index("ix_audits_tape_id_id", "tape_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tape_id: Mapped[int] = mapped_column(ForeignKey("tapes.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=AuditStatus.RUNNING)
    trigger: Mapped[str] = mapped_column(String(16), default=AuditTrigger.CLI)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    fail_on: Mapped[str] = mapped_column(String(16))  # a drift class (drift/kinds.py)
    strict: Mapped[bool] = mapped_column(Boolean, default=False)
    # concurrency, timeout, refresh, names (never values) of the extra headers
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")


class AuditResult(Base):
    """One recording as an audit found it: the verdict and each classified finding."""

    __tablename__ = "audit_results"
    __table_args__ = (
        Index("ix_audit_results_audit_id_id", "audit_id", "id"),
        Index("ix_audit_results_recording_id_id", "recording_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    # kept when the recording is deleted later: the audit's report stays whole
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), nullable=True
    )
    endpoint: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))  # ok or the worst drift class
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ignored: Mapped[int] = mapped_column(Integer, default=0)  # differences left out as noise
    live_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    live_failure: Mapped[str | None] = mapped_column(String(16), nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    refreshed: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
