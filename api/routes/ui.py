"""The web UI: static files shipped in the wheel (api/ui/), served at /ui/ with a strict CSP.

The pages are plain ES modules that call the admin API from the browser, so serving them
needs no token: they hold no recordings. Every data request goes to /api and keeps needing
the token when `serve --token` is set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
INDEX = UI_DIR / "index.html"
STATIC_DIR = UI_DIR / "static"

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


# the suffixes the UI ships, with the types browsers need (module scripts must be served as
# JavaScript, and nosniff makes every other type strict too)
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml",
               ".png": "image/png"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file of api/ui/static by its path there, read once: a few dozen KB, answered
    from memory on the event loop without a thread hop per file. A name that is not a key
    here is a 404, so no path can reach outside the folder."""
    return {path.relative_to(STATIC_DIR).as_posix(): _read(path)
            for path in sorted(STATIC_DIR.rglob("*"))
            if path.is_file() and path.suffix in MEDIA_TYPES}


@cache
def index() -> Asset:
    return _read(INDEX)


def _read(path: Path) -> Asset:
    body = path.read_bytes()
    return Asset(body, MEDIA_TYPES[path.suffix], f'"{hashlib.sha256(body).hexdigest()[:20]}"')


def _answer(asset: Asset, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_slash() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.api_route("/ui/static/{name:path}", methods=["GET", "HEAD"])
async def ui_static(name: str, request: Request) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise HTTPException(404, "Not Found")
    return _answer(asset, request)


@router.api_route("/ui/{page:path}", methods=["GET", "HEAD"])
async def ui_page(page: str, request: Request) -> Response:
    """Every page of the UI is the same document; its script reads the path and query."""
    return _answer(index(), request)


def install(app: FastAPI) -> None:
    """Add the UI to the admin app (kept to one call so app.py stays as it was)."""
    app.include_router(router)
