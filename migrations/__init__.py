"""Alembic migrations for wiretape's store (SQLite and PostgreSQL)."""
