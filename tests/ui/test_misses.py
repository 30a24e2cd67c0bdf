"""The misses page in a real browser: a replay miss appears without a reload, with the
closest recordings and what differs, and one click opens the closest."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.helpers import Reply
from tests.ui.conftest import record


def test_a_miss_appears_live_and_opens_its_closest_recording(sqlite_url, upstream, serve, ui):
    upstream.route("GET /items", Reply(200, {"page": 1, "items": ["a", "b"]}))
    upstream.route("GET /users", Reply(200, {"users": []}))
    wt = serve(sqlite_url, "--tape", "cat")
    recs = record(wt, upstream.url, ("GET", "/users"), ("GET", "/items?page=1"), tape="cat")
    items = next(r for r in recs if "/items" in r["url"])
    assert wt.api("PUT", "/api/mode", json={"mode": "replay"}).status_code == 200

    page = ui.goto(wt.admin, "/ui/misses")
    expect(page.locator("#no-misses")).to_be_visible()
    expect(page.locator("#live")).to_contain_text("live ·")
    # a mark on this document: still there after the miss shows it was never reloaded
    page.evaluate("window.wiretapeTestMark = 1")

    with wt.client() as c:
        r = c.get(f"{upstream.url}/items?page=2")
    assert r.status_code == 502 and r.headers["wiretape"] == "miss"

    miss = page.locator("article.miss")
    expect(miss).to_have_count(1)
    assert page.evaluate("window.wiretapeTestMark") == 1
    expect(miss.locator(".miss-head")).to_contain_text(f"GET {upstream.url}/items?page=2")
    first = miss.locator(".closest").first
    expect(first).to_contain_text(f"#{items['id']}")
    row = first.locator("table.differences tbody tr").first
    expect(row.locator("th")).to_have_text("query param 'page'")
    expect(row.locator("mark.sent")).to_have_text("2")
    expect(row.locator("mark.recorded")).to_have_text("1")
    expect(first.locator("mark.diff")).to_have_text("page=1")  # the part of the URL that differs
    ui.shot("misses")

    # a second one lands on top, marked new, the first stays
    with wt.client() as c:
        assert c.get(f"{upstream.url}/items?page=3").status_code == 502
    expect(miss).to_have_count(2)
    expect(miss.first).to_have_class(re.compile(r"\bnew\b"))
    expect(miss.first.locator(".miss-head")).to_contain_text("page=3")
    assert page.evaluate("window.wiretapeTestMark") == 1

    miss.last.locator("button.open-closest").click()
    expect(page).to_have_url(re.compile(rf"/ui/recordings/{items['id']}$"))
    expect(page.locator("#request .start")).to_contain_text("/items?page=1")
    ui.check()
