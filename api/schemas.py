"""Pydantic schemas of the admin API (separate from the ORM models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from wiretape.storage.exchange import Mode, OnMiss

TAPE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"

TapeQuery = Query(pattern=TAPE_NAME_PATTERN, description="tape name")


def LimitQuery(default: int) -> Any:  # noqa: N802 - reads like the Query it returns
    return Query(ge=1, le=1000, description=f"at most this many items (default {default})")


class Health(BaseModel):
    status: str
    mode: str
    tape: str
    version: str


class ModeState(BaseModel):
    mode: Mode
    tape: str
    on_miss: OnMiss


class ModeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    tape: str | None = Field(default=None, pattern=TAPE_NAME_PATTERN)
    on_miss: OnMiss | None = None


class ReplayReset(BaseModel):
    reset: bool
    generation: int


class MissOut(BaseModel):
    id: int
    tape: str
    at: datetime
    request: dict[str, str]
    closest: list[dict[str, Any]]
