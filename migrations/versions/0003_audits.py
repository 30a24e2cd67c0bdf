"""drift audits: audits, audit results, each recording's freshness, detected noise

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tape_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fail_on", sa.String(length=16), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tape_id"], ["tapes.id"], name=op.f("fk_audits_tape_id_tapes"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
    )
    op.create_index("ix_audits_tape_id_id", "audits", ["tape_id", "id"])
    op.create_table(
        "audit_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("ignored", sa.Integer(), nullable=False),
        sa.Column("live_status", sa.Integer(), nullable=True),
        sa.Column("live_failure", sa.String(length=16), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("recorded_duration_ms", sa.Float(), nullable=False),
        sa.Column("refreshed", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["audits.id"],
            name=op.f("fk_audit_results_audit_id_audits"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name=op.f("fk_audit_results_recording_id_recordings"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_results")),
    )
    op.create_index("ix_audit_results_audit_id_id", "audit_results", ["audit_id", "id"])
    op.create_index(
        "ix_audit_results_recording_id_id", "audit_results", ["recording_id", "id"]
    )
    # nullable columns: no table rewrite, existing recordings are simply "never verified"
    op.add_column("recordings",
                  sa.Column("last_verified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("recordings", sa.Column("last_verdict", sa.String(length=16), nullable=True))
    op.create_index("ix_recordings_tape_verified", "recordings", ["tape_id", "last_verified_at"])
    op.add_column("tapes", sa.Column("noise_detected", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not batch mode: batch rebuilds the
    # table, and dropping the old `tapes` under foreign_keys=ON would cascade-delete every
    # recording.
    op.drop_column("tapes", "noise_detected")
    op.drop_index("ix_audit_results_recording_id_id", table_name="audit_results")
    op.drop_index("ix_audit_results_audit_id_id", table_name="audit_results")
    op.drop_table("audit_results")
    op.drop_index("ix_audits_tape_id_id", table_name="audits")
    op.drop_table("audits")
    op.drop_index("ix_recordings_tape_verified", table_name="recordings")
    op.drop_column("recordings", "last_verdict")
    op.drop_column("recordings", "last_verified_at")
