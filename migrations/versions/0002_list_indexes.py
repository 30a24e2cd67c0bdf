"""indexes for the admin API's recording list filters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (name, columns): each filter of GET /api/recordings walks one of these newest-first
INDEXES = [
    ("ix_recordings_tape_method_id", ["tape_id", "method", "id"]),
    ("ix_recordings_tape_status_id", ["tape_id", "status", "id"]),
    ("ix_recordings_tape_host_id", ["tape_id", "host", "id"]),
    ("ix_recordings_tape_recorded_at", ["tape_id", "recorded_at"]),
]


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "recordings", columns)


def downgrade() -> None:
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name="recordings")
