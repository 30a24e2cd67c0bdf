"""Content negotiation: the codings and media types a request accepts."""

from __future__ import annotations

from wiretape.storage.negotiate import (
    accept_quality,
    accepts_codings,
    content_codings,
    media_type,
    qualities,
)


def test_qualities_and_codings():
    assert qualities("gzip;q=0.8, BR, x-gzip;q=0.1, bad;q=x") == {
        "gzip": 0.8, "br": 1.0, "bad": 0.0}
    assert content_codings("gzip, identity") == {"gzip"}
    assert content_codings(None) == frozenset()


def test_accepts_codings():
    assert accepts_codings(None, ())  # identity is always fine
    assert not accepts_codings(None, {"gzip"})  # no header: no coding
    assert accepts_codings("gzip, deflate", {"gzip"})
    assert not accepts_codings("gzip;q=0, deflate", {"gzip"})
    assert not accepts_codings("deflate", {"gzip", "br"})
    assert accepts_codings("*", {"br"}) and not accepts_codings("*, br;q=0", {"br"})
    assert accepts_codings("", {"identity"})


def test_accept_quality_takes_the_most_specific_range():
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert accept_quality(None, "text/html") == 1.0
    assert accept_quality("application/json", "text/html") == 0.0
    assert accept_quality("text/*;q=0.5, */*;q=0.1", "text/html") == 0.5
    assert accept_quality("text/*;q=0.5, */*;q=0.1", "image/png") == 0.1
    assert accept_quality("text/html;q=0, */*", "text/html") == 0.0
    assert accept_quality("application/json", "") == 1.0  # no type: nothing to refuse
