"""Shared tapes, marker options and the `wiretape` fixture."""

import os
import time

import app
import pytest

HTTP = os.environ["EXAMPLE_HTTP"]


@pytest.mark.wiretape(tape="orders-shared")
def test_shared_first():
    assert app.order(HTTP, 1)["id"] == 1


@pytest.mark.wiretape("orders-shared")
def test_shared_second():
    assert app.order(HTTP, 2)["id"] == 2


@pytest.mark.wiretape(ignore_query=["ts"], redact_headers=["X-Secret"])
def test_marker_rules():
    got = app.order(HTTP, 5, params={"ts": str(time.time_ns())},
                    headers={"X-Secret": "hunter2-for-the-proxy"})
    assert got["id"] == 5


def test_fixture(wiretape):
    assert os.environ["HTTP_PROXY"] == wiretape.proxy_url
    ca = wiretape.ca_cert.read_text()
    for var in ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        with open(os.environ[var]) as bundle:
            assert ca in bundle.read(), var
    # the admin API only is left out of the proxy: local dependencies go through it
    port = wiretape.admin_url.rsplit(":", 1)[1]
    assert os.environ["NO_PROXY"] == f"127.0.0.1:{port},localhost:{port}"
    assert wiretape.tape == "tests.test_more.test_fixture"
    assert wiretape.tape_file.name == "test_fixture.har"
    app.order(HTTP, 3)
    assert [r["url"] for r in wiretape.recordings()] == [f"{HTTP}/orders/3"]
    assert wiretape.misses() == []


def test_sequence_restarts(wiretape):
    first, second = app.counter(HTTP), app.counter(HTTP)
    assert second == first + 1
    if not wiretape.recording:
        wiretape.reset()
        assert app.counter(HTTP) == first
