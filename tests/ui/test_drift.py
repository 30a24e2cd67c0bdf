"""Diffs and audits in a real browser: a tape diff with a breaking change first and noise
greyed, and an audit started from the page against a live upstream that changed."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.drift.support import Payments
from tests.ui.conftest import record


def test_tape_diff_shows_breaking_first_and_noise_greyed(sqlite_url, upstream, serve, ui):
    pay = Payments(upstream)
    wt = serve(sqlite_url, "--tape", "v1")
    record(wt, pay.url, ("GET", "/payments/7"), ("GET", "/status"), tape="v1")
    pay.version = 2  # customer removed, currency added, amount a string
    assert wt.api("PUT", "/api/mode", json={"tape": "v2"}).status_code == 200
    record(wt, pay.url, ("GET", "/payments/7"), ("GET", "/status"), tape="v2")
    noise = ["$.timestamp", "$.request_id", "response.headers.x-request-id"]
    assert wt.api("PUT", "/api/tapes/v1/noise", json={"manual": noise}).status_code == 200

    page = ui.goto(wt.admin, "/ui/diff")
    page.locator("#tape-a").select_option("v1")
    page.locator("#tape-b").select_option("v2")
    page.get_by_role("button", name="Compare tapes").click()
    expect(page).to_have_url(re.compile(r"/ui/diff\?a=v1&b=v2$"))
    expect(page.locator("#tape-diff-summary")).to_contain_text(
        "differs · 1 changed · 0 only in v1 · 0 only in v2 · 1 unchanged (1 of them noise only)")

    pairs = page.locator("#diff .pair")
    expect(pairs).to_have_count(2)
    payment = pairs.first  # the pair with a breaking change comes first
    expect(payment.locator(".pair-head")).to_contain_text("breaking")
    expect(payment.locator(".pair-head")).to_contain_text("/payments/7")
    rows = payment.locator("table.changes tbody tr")
    expect(rows).to_have_count(6)
    classes = [rows.nth(i).get_attribute("class") for i in range(6)]
    assert classes == ["c-breaking", "c-breaking", "c-additive", "noise", "noise", "noise"]
    expect(rows.nth(0)).to_contain_text("response.body.amount")
    expect(rows.nth(0).locator(".kind")).to_have_text("type_changed")
    expect(rows.nth(0).locator(".old")).to_have_text("10")
    expect(rows.nth(0).locator(".new")).to_have_text('"10.00"')
    expect(rows.nth(1)).to_contain_text("response.body.customer")
    expect(rows.nth(1).locator(".kind")).to_have_text("removed")
    expect(rows.nth(2).locator(".kind")).to_have_text("added")
    expect(rows.nth(3)).to_contain_text("response.body.request_id")
    # only noise differs on /status: shown greyed, after the real change
    expect(pairs.last).to_have_class(re.compile(r"\bnoise\b"))
    expect(pairs.last.locator(".pair-head")).to_contain_text("noise only")
    ui.shot("tape-diff")

    # one pair, side by side, from its "(diff)" link
    payment.get_by_role("link", name="(diff)").click()
    expect(page).to_have_url(re.compile(r"/ui/diff\?ra=\d+&rb=\d+$"))
    expect(page.locator("#diff table.changes tbody tr.c-breaking")).to_have_count(2)
    ui.check()


def test_an_audit_started_in_the_page_finds_the_breaking_change(sqlite_url, upstream, serve, ui):
    pay = Payments(upstream)
    wt = serve(sqlite_url, "--tape", "payments")
    record(wt, pay.url, ("GET", "/payments/7"), ("GET", "/status"), tape="payments")
    pay.version = 2  # the live service changed after the recording

    page = ui.goto(wt.admin, "/ui/audits?tape=payments")
    expect(page.locator("#audit-tape")).to_have_value("payments")
    page.locator("#start-audit").click()
    expect(page).to_have_url(re.compile(r"/ui/audits/\d+$"))
    # the page polls until the audit has finished
    expect(page.locator("#audit-status")).to_have_attribute("data-status", "done")
    expect(page.locator("#audit-status")).to_contain_text("FAIL (breaking)")
    groups = page.locator("#endpoints tbody.endpoint")
    expect(groups).to_have_count(2)
    expect(groups.first).to_have_attribute("data-verdict", "breaking")
    expect(groups.first).to_have_attribute("data-endpoint",
                                           f"GET 127.0.0.1:{upstream.port}/payments/7")
    findings = groups.first.locator(".finding")
    expect(findings.first).to_contain_text("breaking")
    expect(groups.first).to_contain_text("field response.body.customer removed")
    expect(groups.first).to_contain_text("type of response.body.amount changed")
    expect(groups.first).to_contain_text("field response.body.currency added")
    expect(groups.last).to_have_attribute("data-verdict", "ok")
    expect(page.locator(".noise-learned")).to_contain_text("response.body.timestamp")
    ui.shot("audit")

    # the tapes page now shows the verdict and how fresh the recordings are
    page.locator("#nav a[data-page=tapes]").click()
    row = page.locator("#tapes tr[data-tape=payments]")
    expect(row).to_contain_text("FAIL")
    expect(row).to_contain_text("2 of 2 verified")
    expect(row.locator(".v-breaking").first).to_be_visible()
    ui.shot("tapes")

    page.goto(f"{wt.admin}/ui/audits?tape=payments")
    expect(page.locator("#audit-history tbody tr")).to_have_count(1)
    expect(page.locator("#audit-history")).to_contain_text("FAIL (breaking)")
    ui.check()
