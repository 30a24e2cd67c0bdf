"""Browser fixtures: Debian's chromium driven headless by Playwright, one page per test that
records what a page must never do (script errors, CSP violations, dialogs, non-JSON writes)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request, sync_playwright
from playwright.sync_api import expect as pw_expect

from tests.helpers import wait_for

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# a folder to copy every screenshot into, besides the test's tmp dir (the README's images)
SCREENSHOTS_ENV = "WIRETAPE_UI_SCREENSHOTS"

pw_expect.set_options(timeout=15_000)


def chromium_path() -> str:
    """Debian's chromium. Missing, the browser tests skip on a developer machine and fail
    under CI (CI=true), where .ci/run installs it: they must never pass by being skipped."""
    found = os.environ.get("WIRETAPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if os.path.exists(found):
        return found
    message = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: the browser tests need it under CI")
    pytest.skip(message)


# Per module, not per session: while Playwright's sync API is running its event loop stays
# the thread's running loop, and the async tests that a worker runs next (anyio) would fail
# to start theirs. pytest tears a module's fixtures down before the next module's tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Ui:
    """A page plus what it did: `check()` at the end of a test fails on anything unsafe."""

    page: Page
    shots: Path
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    writes: list[tuple[str, str, dict[str, str], str | None]] = field(default_factory=list)

    def goto(self, base: str, path: str) -> Page:
        self.page.goto(base + path)
        return self.page

    def shot(self, name: str) -> Path:
        """A full-page screenshot in the test's tmp dir (and in $WIRETAPE_UI_SCREENSHOTS)."""
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        extra = os.environ.get(SCREENSHOTS_ENV)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / path.name)
        return path

    def check(self) -> None:
        assert self.errors == [], "script errors or CSP violations on the page"
        assert self.dialogs == [], "a page opened a JavaScript dialog"
        for method, url, headers, body in self.writes:
            # the hardening that refuses cross-site writes relies on this
            assert headers.get("content-type") == "application/json", (method, url)
            assert body is not None, (method, url)


@pytest.fixture
def ui(browser: Browser, tmp_path: Path) -> Iterator[Ui]:
    context = browser.new_context(viewport={"width": 1400, "height": 900},
                                  locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    u = Ui(page, shots)

    def console(msg: ConsoleMessage) -> None:
        text = msg.text
        # chromium logs every 4xx answer (a 401 before the token is given, a 422 for an edit
        # the API refuses): the API working as meant, shown in the page, not a page error
        if msg.type == "error" and not re.match(r"Failed to load resource: .* status of 4\d\d",
                                                text):
            u.errors.append(text)

    def dialog(d: Dialog) -> None:
        u.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def request(r: Request) -> None:
        if r.method not in ("GET", "HEAD") and "/api/" in r.url:
            u.writes.append((r.method, r.url, dict(r.headers), r.post_data))

    page.on("console", console)
    page.on("pageerror", lambda e: u.errors.append(f"uncaught: {e}"))
    page.on("dialog", dialog)
    page.on("request", request)
    yield u
    context.close()


def api_items(wt: Any, **params: Any) -> list[dict[str, Any]]:
    return list(wt.api("GET", "/api/recordings", params=params).json()["items"])


def record(wt: Any, base: str, *calls: tuple[str, str] | tuple[str, str, dict[str, Any]],
           tape: str = "default") -> list[dict[str, Any]]:
    """Send requests through the proxy to a real upstream and wait until all are stored;
    the stored recordings of the tape, newest first."""
    before = len(api_items(wt, tape=tape, limit=1000)) if tape_exists(wt, tape) else 0
    with wt.client() as c:
        for call in calls:
            method, path, kw = (*call, {})[:3]
            c.request(method, base + path, **kw)
    want = before + len(calls)
    wait_for(lambda: tape_exists(wt, tape) and len(api_items(wt, tape=tape, limit=1000)) >= want,
             what=f"{want} recordings on tape {tape}")
    return api_items(wt, tape=tape, limit=1000)


def tape_exists(wt: Any, tape: str) -> bool:
    return bool(wt.api("GET", f"/api/tapes/{tape}").status_code == 200)
