"""indexes for finding recordings by text in their bodies and by path prefix

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

`GET /api/recordings?q=` looks for a substring of the decoded bodies (`search_text`).
Scanning 100,000 recordings for it takes over 100 ms; a trigram index answers in one or
two. Each backend has its own kind, which the models cannot describe (migrations/env.py
leaves them out of autogenerate):

- SQLite: an FTS5 table with the trigram tokenizer over `recordings.search_text` (external
  content, kept in step by triggers). `detail=none` halves what each recording costs to
  index and still serves substring LIKE. SQLite builds without FTS5 simply go without.
- PostgreSQL: a GIN index with pg_trgm's operator class. Creating the extension needs a
  privilege some managed databases withhold; then the index is skipped with a warning and
  searches scan, as before.

Both serve `LIKE '%text%'`, the query the repository sends. The path index serves the
`path` prefix filter (`text_pattern_ops` on PostgreSQL, so a prefix LIKE can use it under
any collation).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

FTS = "recordings_fts"
TRGM = "ix_recordings_search_trgm"
PATH = "ix_recordings_tape_path"

SQLITE_UP = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5("
    "search_text, content='recordings', content_rowid='id', tokenize='trigram', detail=none)",
    f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",
    f"CREATE TRIGGER {FTS}_insert AFTER INSERT ON recordings BEGIN "
    f"INSERT INTO {FTS}(rowid, search_text) VALUES (new.id, new.search_text); END",
    f"CREATE TRIGGER {FTS}_delete AFTER DELETE ON recordings BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "END",
    f"CREATE TRIGGER {FTS}_update AFTER UPDATE OF search_text ON recordings BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    f"INSERT INTO {FTS}(rowid, search_text) VALUES (new.id, new.search_text); END",
]


def _sqlite_has_trigram_fts() -> bool:
    conn = op.get_bind()
    try:
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE temp.wiretape_fts_probe USING fts5(x, tokenize='trigram')"
        )
    except sa.exc.OperationalError:
        return False
    conn.exec_driver_sql("DROP TABLE temp.wiretape_fts_probe")
    return True


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.create_index(PATH, "recordings", ["tape_id", "path"],
                        postgresql_ops={"path": "text_pattern_ops"})
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                conn.exec_driver_sql(
                    f"CREATE INDEX {TRGM} ON recordings USING gin (search_text gin_trgm_ops)"
                )
        except sa.exc.DBAPIError as e:
            log.warning("no trigram index for text search (pg_trgm: %s); searches will scan",
                        str(e.orig).strip().splitlines()[0] if e.orig else e)
        return
    op.create_index(PATH, "recordings", ["tape_id", "path"])
    if conn.dialect.name == "sqlite":
        if _sqlite_has_trigram_fts():
            for statement in SQLITE_UP:
                conn.exec_driver_sql(statement)
        else:
            log.warning("this SQLite has no FTS5 trigram tokenizer; text searches will scan")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {TRGM}")
    elif conn.dialect.name == "sqlite":
        for suffix in ("insert", "delete", "update"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS}")
    op.drop_index(PATH, table_name="recordings")
