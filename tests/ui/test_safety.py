"""Attacker-controlled recordings stay text in a real browser, and --token is asked for once,
kept in the tab's session storage and sent as a bearer header."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import httpx
import pytest
from playwright.sync_api import expect

from tests.helpers import Reply
from tests.ui.conftest import record

# what a hostile upstream (or a hostile client being recorded) could put in a tape; each
# would set window.pwned or open a dialog if the page ever parsed it as HTML
SCRIPT = "<script>window.pwned = 'script'; alert('script')</script>"
IMG = "<img src=x onerror=\"window.pwned = 'img'; alert('img')\">"
SVG = "<svg onload=\"window.pwned = 'svg'\"></svg>"
HTML_PAGE = f"<!doctype html><html><body>{SCRIPT}{IMG}{SVG}</body></html>"


def test_a_recorded_script_body_renders_as_text_and_never_runs(sqlite_url, upstream, serve, ui):
    upstream.route("GET /page", Reply(200, HTML_PAGE, {"Content-Type": "text/html",
                                                       "X-Note": IMG}))
    upstream.route("POST /comments", Reply(201, {"comment": SCRIPT, "html": IMG}))
    wt = serve(sqlite_url)
    recs = record(wt, upstream.url, ("GET", "/page?q=<svg onload=alert(1)>"),
                  ("POST", "/comments", {"json": {"text": SCRIPT}}),
                  ("GET", f"/{SVG}"))
    page_rec = next(r for r in recs if "/page" in r["url"])
    comment = next(r for r in recs if "/comments" in r["url"])

    page = ui.goto(wt.admin, "/ui/recordings")
    expect(page.locator("#recordings tbody tr")).to_have_count(3)

    page.goto(f"{wt.admin}/ui/recordings/{page_rec['id']}")
    body = page.locator("#response pre.code")
    expect(body).to_contain_text(SCRIPT)  # shown, character for character
    expect(body).to_contain_text(IMG)
    expect(page.locator("#response table.headers")).to_contain_text(IMG)
    assert page.locator("#response script, #response img, #response svg").count() == 0
    ui.shot("hostile-html")

    page.goto(f"{wt.admin}/ui/recordings/{comment['id']}")
    expect(page.locator("#response .json")).to_contain_text(SCRIPT)
    expect(page.locator("#request .json")).to_contain_text("window.pwned")
    page.locator("#edit").click()
    expect(page.locator("#edit-body")).to_have_value(re.compile(re.escape(IMG.replace('"', '\\"'))))
    page.locator("#copy-curl").click()
    command = page.locator("#curl-command")
    expect(command).to_contain_text("<script>window.pwned")
    # the command is shell-safe: run as is, it sends the recorded body again, quotes and all
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (apt-get install -y curl; .ci/run does)")
    seen = len(upstream.seen)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    run = subprocess.run(["bash", "-c", command.inner_text() + " -sS -o /dev/null"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert json.loads(upstream.seen[seen].body) == {"text": SCRIPT}

    # a miss with a hostile URL, in the live journal
    assert wt.api("PUT", "/api/mode", json={"mode": "replay"}).status_code == 200
    with wt.client() as c:
        assert c.get(f"{upstream.url}/page?q=<img src=x onerror=alert(2)>").status_code == 502
    page.goto(f"{wt.admin}/ui/misses")
    expect(page.locator("article.miss")).to_have_count(1)

    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#main script, #main img, #main svg").count() == 0
    ui.check()  # no dialog opened, no script error, no CSP violation


def test_the_token_is_asked_once_and_sent_as_a_bearer_header(sqlite_url, upstream, serve, ui):
    upstream.route("GET /secret", Reply(200, {"ok": True}))
    wt = serve(sqlite_url, "--token", "s3cret-token")
    wt.headers = {"Authorization": "Bearer s3cret-token"}
    record(wt, upstream.url, ("GET", "/secret"))
    # the UI's files hold no data and load without the token; the data does not
    assert httpx.get(f"{wt.admin}/ui/static/main.js").status_code == 200
    assert httpx.get(f"{wt.admin}/api/recordings").status_code == 401

    sent: list[str | None] = []
    ui.page.on("request", lambda r: sent.append(r.headers.get("authorization"))
               if "/api/" in r.url else None)
    page = ui.goto(wt.admin, "/ui/recordings")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    ui.shot("token")
    page.locator("#token-input").fill("wrong")
    page.get_by_role("button", name="Use token").click()
    expect(dialog).to_contain_text("That token was refused")
    page.locator("#token-input").fill("s3cret-token")
    page.get_by_role("button", name="Use token").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#recordings tbody tr")).to_have_count(1)
    expect(page.locator("#state .mode")).to_have_text("record")

    assert page.evaluate("sessionStorage.getItem('wiretape.token')") == "s3cret-token"
    assert page.evaluate("document.cookie") == ""
    assert "s3cret" not in page.url
    assert "Bearer s3cret-token" in sent and "Bearer wrong" in sent

    # asked once: other pages and a reload of this tab use the kept token
    sent.clear()
    page.reload()
    expect(page.locator("#recordings tbody tr")).to_have_count(1)
    page.locator("#nav a[data-page=tapes]").click()
    expect(page.locator("#tapes tbody tr")).to_have_count(1)
    page.locator("#mode-select").select_option("replay")
    page.locator("#mode-form button[type=submit]").click()
    expect(page.locator("#mode-form .banner.ok")).to_be_visible()
    assert dialog.count() == 0
    assert sent and set(sent) == {"Bearer s3cret-token"}
    assert wt.api("GET", "/api/mode").json()["mode"] == "replay"
    ui.check()
