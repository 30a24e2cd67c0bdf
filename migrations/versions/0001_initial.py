"""initial schema: tapes, recordings, runtime state, misses

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tapes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("matching", sa.JSON(), nullable=False),
        sa.Column("noise", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tapes")),
        sa.UniqueConstraint("name", name=op.f("uq_tapes_name")),
    )
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tape_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("match_key", sa.String(length=64), nullable=False),
        sa.Column("captured_ns", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("scheme", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("http_version", sa.String(length=16), nullable=False),
        sa.Column("request_headers", sa.JSON(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("response_http_version", sa.String(length=16), nullable=False),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column("failure_kind", sa.String(length=16), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("request_size", sa.Integer(), nullable=False),
        sa.Column("response_size", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tape_id"], ["tapes.id"],
            name=op.f("fk_recordings_tape_id_tapes"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(
        "ix_recordings_tape_key", "recordings", ["tape_id", "match_key", "captured_ns"]
    )
    op.create_index("ix_recordings_tape_id_id", "recordings", ["tape_id", "id"])
    op.create_table(
        "runtime_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("tape", sa.String(length=200), nullable=False),
        sa.Column("on_miss", sa.String(length=16), nullable=False),
        sa.Column("replay_generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_state")),
    )
    op.create_table(
        "misses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tape", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("closest", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_misses")),
    )
    op.create_index(op.f("ix_misses_tape"), "misses", ["tape"])


def downgrade() -> None:
    op.drop_index(op.f("ix_misses_tape"), table_name="misses")
    op.drop_table("misses")
    op.drop_table("runtime_state")
    op.drop_index("ix_recordings_tape_id_id", table_name="recordings")
    op.drop_index("ix_recordings_tape_key", table_name="recordings")
    op.drop_table("recordings")
    op.drop_table("tapes")
