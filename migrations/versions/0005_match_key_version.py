"""the version of the match keys each tape's recordings carry

Revision ID: 0005_match_key_version
Revises: 0004
Create Date: 2026-12-01

Match keys are digests computed by `storage/matching.py`; when what they cover changes
(here: conditional and range headers, multipart bodies by their parts), recordings stored
before the change carry keys that new requests no longer compute, and would never replay.
Rather than recompute keys here with code that will go on changing, this migration only
records which version each tape's keys have: every existing tape is version 1, and opening
the store re-keys the tapes older than `matching.KEY_VERSION` with the code of the day
(`repository.rekey_outdated_tapes`). A later change to the keys bumps the constant and needs
no migration.

Downgrade drops the column; the keys stay as they are (an older wiretape recomputes them
only when a tape's rules change, so recordings with conditional headers or multipart bodies
may not replay under it until then).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_match_key_version"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tapes", sa.Column("key_version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not batch mode: batch rebuilds the
    # table, and dropping the old `tapes` under foreign_keys=ON would cascade-delete every
    # recording (as in 0003).
    op.drop_column("tapes", "key_version")
