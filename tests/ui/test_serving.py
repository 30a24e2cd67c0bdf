"""Serving the UI: every page and file with the security headers, nothing outside api/ui/,
no token needed for the files (the data keeps needing it), and sources that never parse
strings as HTML or code."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from wiretape.api.app import ApiSettings, create_app
from wiretape.api.routes.ui import UI_DIR

from tests.api.conftest import open_client

pytestmark = pytest.mark.anyio

STATIC = UI_DIR / "static"
SOURCES = sorted(STATIC.rglob("*.js"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The admin app as `serve --token` builds it (the UI does not depend on the backend)."""
    app = create_app(ApiSettings(db_url=sqlite_url, token="t0ken", confdir=str(tmp_path),
                                 admin_hosts=("wiretape",)))
    async for c in open_client(app):
        yield c


def csp(r: httpx.Response) -> dict[str, str]:
    parts = (p.strip().split(" ", 1) for p in r.headers["content-security-policy"].split(";"))
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


def assert_hardened(r: httpx.Response) -> None:
    policy = csp(r)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == "'self'"
    assert policy["img-src"] == "'self' data: blob:"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/ui/", "/ui/recordings", "/ui/recordings/42?x=1",
                                  "/ui/audits/3", "/ui/misses"])
async def test_every_page_is_the_document_with_the_security_headers(client, path):
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/static/main.js"></script>' in r.text
    assert_hardened(r)


@pytest.mark.parametrize("name,media", [("main.js", "javascript"), ("app.css", "text/css"),
                                        ("pages/exchange.js", "javascript"),
                                        ("favicon.svg", "image/svg+xml")])
async def test_static_files_load_without_the_token(client, name, media):
    r = await client.get(f"/ui/static/{name}")
    assert r.status_code == 200
    assert media in r.headers["content-type"]
    assert r.content == (STATIC / name).read_bytes()
    assert_hardened(r)
    again = await client.get(f"/ui/static/{name}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = await client.head(f"/ui/static/{name}")
    assert head.status_code == 200 and head.headers["etag"] == r.headers["etag"]


async def test_the_data_keeps_needing_the_token(client):
    assert (await client.get("/api/recordings")).status_code == 401
    assert (await client.get("/api/tapes/default/overview")).status_code == 401
    assert (await client.get("/api/health")).status_code == 200


@pytest.mark.parametrize("path", ["/ui/static/%2e%2e/index.html", "/ui/static/../routes/ui.py",
                                  "/ui/static/..%2f..%2fapp.py", "/ui/static/nope.js",
                                  "/ui/static/%2fetc%2fpasswd", "/ui/../api/app.py"])
async def test_nothing_outside_the_static_folder_is_served(client, path):
    r = await client.get(path)
    index = (UI_DIR / "index.html").read_text()
    # a 404, or (a path the client normalised to a page) the UI document: never another file
    assert r.status_code == 404 or (r.status_code == 200 and r.text == index), r.text[:200]


async def test_the_root_and_ui_redirect_to_the_ui(client):
    for path in ("/", "/ui"):
        r = await client.get(path)
        assert r.status_code == 307 and r.headers["location"] == "/ui/"


async def test_the_ui_is_not_in_the_api_schema(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]
    assert "/api/tapes/{name}/overview" in paths


# -- the sources themselves ----------------------------------------------------------------

def test_index_has_no_inline_script_or_style():
    html = (UI_DIR / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"\son\w+=", html) == []


def test_every_file_the_ui_refers_to_exists_and_every_module_is_preloaded():
    html = (UI_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="/ui/static/([^"]+)"', html)
    assert "main.js" in refs and "app.css" in refs
    for ref in refs:
        assert (STATIC / ref).is_file(), ref
    imported = set()
    for source in SOURCES:
        for ref in re.findall(r'^import .* from "(\.[^"]+)";$', source.read_text(), re.M):
            target = (source.parent / ref).resolve()
            assert target.is_file(), f"{source.name} imports {ref}"
            imported.add(target.relative_to(STATIC.resolve()).as_posix())
    # fetched in parallel with main.js rather than one import level after another
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/ui/static/([^"]+)">', html))
    assert preloaded == imported


UNSAFE = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                    r"new Function|setTimeout\(\s*['\"`]|\.style\s*=|setAttribute\(\s*['\"]style|"
                    r"localStorage|document\.cookie")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(STATIC)))
def test_sources_never_parse_strings_as_html_or_code(source: Path):
    """Recorded data only ever reaches the page as text nodes (dom.js); the token lives in
    sessionStorage, never a cookie or localStorage."""
    found = [line.strip() for line in source.read_text().splitlines()
             if UNSAFE.search(line) and not line.strip().startswith("//")]
    assert found == []


def test_the_readme_shows_two_committed_screenshots():
    root = Path(__file__).resolve().parents[2]
    section = (root / "README.md").read_text().split("\n## Web UI\n", 1)[1].split("\n## ", 1)[0]
    images = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", section)
    assert len(images) == 2
    for image in images:
        assert (root / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
