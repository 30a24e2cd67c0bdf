"""The app's tests, as its team writes them: plain pytest, no wiretape in sight."""

import os

import app

HTTP = os.environ["EXAMPLE_HTTP"]
HTTPS = os.environ["EXAMPLE_HTTPS"]


def test_order():
    assert app.order(HTTP, int(os.environ.get("EXAMPLE_ORDER", "7")))["status"] == "paid"
    extra = os.environ.get("EXAMPLE_EXTRA_ORDER")
    if extra:
        assert app.order(HTTP, int(extra))["status"] == "paid"


def test_catalog_over_http2():
    version, doc = app.catalog(HTTPS)
    assert version == "HTTP/2"
    assert doc["items"] == ["tea", "cake"]


def test_ping_with_curl():
    assert app.ping(HTTPS) == "pong"


def test_without_http():
    assert app.__name__ == "app"
