"""streamed responses and big bodies: chunk timings, bodies kept in parts

Revision ID: 0006_streams
Revises: 0005_match_key_version
Create Date: 2026-11-30

- `recordings.response_stream` (JSON, null unless the response was streamed): when the
  head and each chunk arrived, and why the stream ended early if it did.
- `recordings.response_external` (JSON, null unless the body is too big to hold in
  memory): the body's SHA-256; its bytes are in `body_parts`, `response_body` is empty.
- `body_parts`: such bodies a part (1 MiB) at a time, deleted with their recording.

Both columns are nullable, so no table is rewritten and existing recordings are simply not
streamed. The downgrade puts each big body back into `response_body` whole (an older
wiretape knows no parts), a recording at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_streams"
down_revision = "0005_match_key_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("recordings", sa.Column("response_stream", sa.JSON(), nullable=True))
    op.add_column("recordings", sa.Column("response_external", sa.JSON(), nullable=True))
    op.create_table(
        "body_parts",
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name=op.f("fk_body_parts_recording_id_recordings"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recording_id", "idx", name=op.f("pk_body_parts")),
    )


def downgrade() -> None:
    conn = op.get_bind()
    recordings = sa.table("recordings", sa.column("id", sa.Integer()),
                          sa.column("response_body", sa.LargeBinary()),
                          sa.column("response_external", sa.JSON()))
    parts = sa.table("body_parts", sa.column("recording_id", sa.Integer()),
                     sa.column("idx", sa.Integer()), sa.column("data", sa.LargeBinary()))
    big = conn.execute(sa.select(recordings.c.id)
                       .where(recordings.c.response_external.is_not(None))).scalars().all()
    for rid in big:
        body = b"".join(conn.execute(
            sa.select(parts.c.data).where(parts.c.recording_id == rid).order_by(parts.c.idx)
        ).scalars())
        conn.execute(sa.update(recordings).where(recordings.c.id == rid)
                     .values(response_body=body))
    op.drop_table("body_parts")
    # plain DROP COLUMN (SQLite >= 3.35), not batch mode: see 0003's downgrade
    op.drop_column("recordings", "response_external")
    op.drop_column("recordings", "response_stream")
