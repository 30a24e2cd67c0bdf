"""The recordings pages in a real browser: filter, page, open an exchange, edit what replay
serves, delete; recorded through the real proxy from a real upstream."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.helpers import Reply
from tests.ui.conftest import api_items, record


def shop(upstream):
    upstream.route("GET /orders/1", Reply(200, {"id": 1, "items": [{"sku": "A-1", "qty": 2}],
                                                "state": "paid"}))
    upstream.route("GET /orders/2", Reply(200, {"id": 2, "items": [], "state": "pending"}))
    upstream.route("POST /orders", Reply(201, {"id": 3, "state": "created"}))
    upstream.route("GET /stock", Reply(404, {"error": "out of stock"}))
    upstream.route("GET /health", Reply(200, "ok"))


def test_filter_then_open_an_exchange(sqlite_url, upstream, serve, ui):
    shop(upstream)
    wt = serve(sqlite_url, "--tape", "shop")
    record(wt, upstream.url,
           ("GET", "/orders/1"), ("GET", "/orders/2"),
           ("POST", "/orders", {"json": {"sku": "A-1", "password": "hunter2"},
                                "headers": {"Authorization": "Bearer sk-live-123"}}),
           ("GET", "/stock"), ("GET", "/health"), tape="shop")
    page = ui.goto(wt.admin, "/ui/recordings?tape=shop")
    rows = page.locator("#recordings tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("/health")  # newest first
    ui.shot("recordings")

    form = page.locator("#filters")
    form.locator("select[name=method]").select_option("GET")
    form.locator("input[name=q]").fill("stock")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/ui/recordings\?tape=shop&method=GET&q=stock$"))
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".status")).to_have_text("404")

    # the URL is the view: reloaded (or shared), it shows the same filters and rows
    page.reload()
    expect(page.locator("#filters input[name=q]")).to_have_value("stock")
    expect(rows).to_have_count(1)

    form.locator("select[name=method]").select_option("")
    form.locator("input[name=q]").fill("")
    form.locator("input[name=path]").fill("/orders")
    form.locator("input[name=status]").fill("201")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"\?tape=shop&path=%2Forders&status=201$"))
    expect(rows).to_have_count(1)
    rows.first.locator("td.url").click()

    (posted,) = api_items(wt, tape="shop", method="POST")
    expect(page).to_have_url(re.compile(rf"/ui/recordings/{posted['id']}$"))
    expect(page.locator("h1")).to_have_text(f"Recording {posted['id']}")
    request, response = page.locator("#request"), page.locator("#response")
    expect(request.locator(".start")).to_contain_text(f"POST {upstream.url}/orders")
    expect(response.locator(".start .status")).to_have_text("201")
    # redacted values are marked where they appear: a header and a JSON field
    expect(request.locator("tr.has-redacted th")).to_have_text("Authorization")
    expect(request.locator(".json mark.redacted")).to_have_count(1)
    expect(response.locator(".json")).to_contain_text('"state": "created"')
    response.get_by_role("tab", name="Hex").click()
    expect(response.locator("pre.hex")).to_contain_text("00000000  7b 22")  # {"

    page.locator("#copy-curl").click()
    curl = page.locator("#curl-command")
    expect(curl).to_contain_text("curl -X 'POST' -H 'Accept: */*'")
    expect(curl).to_contain_text("--data-raw '{\"sku\":\"A-1\",\"password\":\"REDACTED\"}'")
    expect(curl).to_contain_text(f"'{upstream.url}/orders'")
    response.get_by_role("tab", name="JSON").click()
    expect(response.locator(".json")).to_contain_text('"id": 3')
    ui.shot("exchange")
    ui.check()


def test_pages_by_cursor_and_back(sqlite_url, upstream, serve, ui):
    upstream.route("GET /n", Reply(200, {"ok": True}))
    wt = serve(sqlite_url)
    record(wt, upstream.url, *[("GET", f"/n?i={i}") for i in range(57)])
    page = ui.goto(wt.admin, "/ui/recordings")
    rows = page.locator("#recordings tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("/n?i=56")
    page.locator("#older").click()
    expect(page).to_have_url(re.compile(r"/ui/recordings\?cursor=\w+$"))
    expect(rows).to_have_count(7)
    expect(rows.last).to_contain_text("/n?i=0")
    expect(page.locator("#older")).to_have_count(0)
    page.go_back()
    expect(rows).to_have_count(50)
    expect(page).to_have_url(re.compile(r"/ui/recordings$"))
    ui.check()


def test_an_edited_body_is_what_replay_serves_next(sqlite_url, upstream, serve, ui):
    upstream.route("GET /price", Reply(200, {"price": 10, "currency": "EUR"}))
    wt = serve(sqlite_url)
    (rec,) = record(wt, upstream.url, ("GET", "/price"))

    # replay, switched on the tapes page
    page = ui.goto(wt.admin, "/ui/")
    page.locator("#mode-select").select_option("replay")
    page.locator("#mode-form button[type=submit]").click()
    expect(page.locator("#mode-form .banner.ok")).to_contain_text("Now replay on tape default")
    expect(page.locator("#state .mode")).to_have_text("replay")
    upstream.stop()
    with wt.client() as c:
        assert c.get(f"{upstream.url}/price").json()["price"] == 10

    page.goto(f"{wt.admin}/ui/recordings/{rec['id']}")
    page.locator("#edit").click()
    body = page.locator("#edit-body")
    body.fill('{"price": 0, "currency": ')  # not JSON yet: nothing can be saved
    expect(page.locator("#edit-problems")).to_contain_text("Body is not valid JSON")
    expect(page.locator("#edit-save")).to_be_disabled()
    body.fill('{"price": 0, "currency": "EUR", "note": "<b>free</b>"}')
    page.locator("#edit-status").fill("202")
    expect(page.locator("#edit-problems")).to_be_empty()
    # what only the API checks (a header name must be a token) comes back in its words
    headers = page.locator("#edit-headers")
    kept = headers.input_value()
    headers.fill(kept + "\nBad Name: x")
    page.locator("#edit-save").click()
    expect(page.locator("#editor .banner.error")).to_contain_text("headers.")
    expect(page.locator("#editor .banner.error")).to_contain_text("(HTTP 422)")
    headers.fill(kept)
    ui.shot("editor")
    page.locator("#edit-save").click()
    expect(page.locator("#exchange-msg .banner.ok")).to_contain_text("Saved")
    expect(page.locator("#response .start .status")).to_have_text("202")

    with wt.client() as c:
        r = c.get(f"{upstream.url}/price")
    assert r.status_code == 202
    assert r.json() == {"price": 0, "currency": "EUR", "note": "<b>free</b>"}
    assert r.headers["wiretape-recording"] == str(rec["id"])
    ui.check()


def test_delete_asks_in_the_page_then_deletes(sqlite_url, upstream, serve, ui):
    upstream.route("GET /gone", Reply(200, "bye"))
    wt = serve(sqlite_url)
    (rec,) = record(wt, upstream.url, ("GET", "/gone"))
    page = ui.goto(wt.admin, f"/ui/recordings/{rec['id']}")
    page.locator("#delete").click()
    page.locator("#delete-confirm").click()
    expect(page).to_have_url(re.compile(r"/ui/recordings\?tape=default$"))
    expect(page.locator("#empty")).to_have_text("No recordings match these filters.")
    assert wt.api("GET", f"/api/recordings/{rec['id']}").status_code == 404
    ui.check()
