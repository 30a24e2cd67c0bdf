"""Small SQL helpers the repositories share: the backend in use, inserts that may lose a race."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def is_sqlite(s: Session) -> bool:
    return s.get_bind().dialect.name == "sqlite"


def is_postgresql(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def insert_unless_present(s: Session, model: Any, values: dict[str, Any], key: str) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: safe when several processes race to create a row."""
    insert = postgresql.insert if is_postgresql(s) else sqlite.insert
    s.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=[key]))


def chunks[T](items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """`items` a slice at a time: an IN list stays under every backend's parameter limit."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
