"""The installed wiretape version, for /api/health, the OpenAPI document and HAR exports."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def wiretape_version() -> str:
    try:
        return version("wiretape")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "0+unknown"
