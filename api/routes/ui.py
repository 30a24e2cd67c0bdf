"""The web UI: static files shipped in the wheel (api/ui/), served at /ui/ with a strict CSP.

The pages are plain ES modules that call the admin API from the browser, so serving them
needs no token: they hold no recordings. Every data request goes to /api and keeps needing
the token when `serve --token` is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
INDEX = UI_DIR / "index.html"

# Recorded bodies are attacker-controlled: nothing inline, no eval, no framing, and Trusted
# Types so that even a slip to `innerHTML = data` throws in the browser instead of parsing.
CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # revalidate (ETag) on every load: an upgraded wheel's files are picked up at once
    "Cache-Control": "no-cache",
}


class UiFiles(StaticFiles):
    """Starlette's static files (safe path lookup, ETag, 304) with the UI's headers."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
def ui_slash() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/{page:path}")
def ui_page(page: str) -> Any:
    """Every page of the UI is the same document; its script reads the path and query."""
    return FileResponse(INDEX, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


def install(app: FastAPI) -> None:
    """Mount the UI on the admin app: static files first, then the page catch-all."""
    app.mount("/ui/static", UiFiles(directory=UI_DIR / "static"), name="ui-static")
    app.include_router(router)
