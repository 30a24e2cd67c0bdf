"""A streamed response's chunks and a big body on the exchange page, in a real browser."""

from __future__ import annotations

from playwright.sync_api import expect
from wiretape.storage.bodies import BIG_BODY

from tests.helpers import Reply
from tests.ui.conftest import api_items, record

EVENTS = ['data: {"n": 0}\n\n', 'event: tick\ndata: {"n": 1}\n\n', "data: \u00e9t\u00e9\n\n"]


def stream_har() -> dict[str, object]:
    body = "".join(EVENTS)
    sizes = [len(e.encode()) for e in EVENTS]
    return {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [{
        "startedDateTime": "2026-11-30T10:00:00.000Z", "time": 2400.0,
        "request": {"method": "GET", "url": "http://sse.test/events", "httpVersion": "HTTP/1.1",
                    "headers": [], "queryString": [], "cookies": [], "headersSize": -1,
                    "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                     "headers": [{"name": "Content-Type", "value": "text/event-stream"}],
                     "cookies": [], "content": {"size": len(body), "mimeType":
                                                "text/event-stream", "text": body},
                     "redirectURL": "", "headersSize": -1, "bodySize": len(body)},
        "cache": {}, "timings": {"send": 0, "wait": 2400.0, "receive": 0},
        "_wiretape": {"stream": {"headMs": 3.5, "chunks": [[13.0, sizes[0]],
                                                           [1013.0, sizes[1]],
                                                           [2400.0, sizes[2]]],
                                 "truncated": "client"}},
    }]}}


def test_a_stream_shows_its_chunks_with_their_timings(sqlite_url, serve, ui):
    wt = serve(sqlite_url)
    assert wt.api("POST", "/api/tapes/sse/import", json=stream_har()).status_code == 200
    [item] = api_items(wt, tape="sse")
    page = ui.goto(wt.admin, f"/ui/recordings/{item['id']}")
    rows = page.locator("#chunks tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#stream-summary")).to_contain_text("3 chunks · head after 3.5 ms")
    expect(rows.nth(1)).to_contain_text("1013 ms")
    expect(rows.nth(1)).to_contain_text("+1000 ms")
    expect(rows.nth(1).locator("pre")).to_have_text('event: tick\ndata: {"n": 1}\n\n')
    expect(rows.nth(2).locator("pre")).to_have_text("data: \u00e9t\u00e9\n\n")
    expect(page.locator("#stream-truncated")).to_contain_text("the client left")
    ui.shot("stream")
    ui.check()


def test_a_big_body_is_shown_by_its_start_and_downloaded_whole(sqlite_url, upstream, serve, ui,
                                                              tmp_path):
    body = b"0123456789abcdef" * (BIG_BODY // 16 + 1)
    upstream.route("GET /dump", Reply(200, body, {"Content-Type": "text/plain"}))
    wt = serve(sqlite_url)
    [item] = record(wt, upstream.url, ("GET", "/dump"))
    page = ui.goto(wt.admin, f"/ui/recordings/{item['id']}")
    expect(page.locator("#big-body")).to_contain_text(f"{len(body):,} bytes")
    with page.expect_download() as download:
        page.locator("#download-body").click()
    saved = tmp_path / "body"
    download.value.save_as(saved)
    assert saved.read_bytes() == body
    # the editor keeps a body it cannot show whole
    page.locator("#edit").click()
    expect(page.locator("#edit-body")).to_be_disabled()
    page.locator("#edit-note").fill("kept whole")
    page.locator("#edit-save").click()
    expect(page.locator("#exchange-msg")).to_contain_text("Saved")
    with wt.client() as c:
        assert c.get(f"{upstream.url}/dump").content == body  # record mode: live again
    whole = wt.api("GET", f"/api/recordings/{item['id']}/body")
    assert whole.content == body
    ui.check()
