"""The replay index chooses among the recordings of one key: content negotiation, the
headers that agree most, then seq order; conditional requests fall back to plain ones."""

from __future__ import annotations

import json

from wiretape.storage.exchange import Request, SequencePolicy
from wiretape.storage.replay import ReplayIndex
from wiretape.storage.repository import ReplayEntry

REPEAT = SequencePolicy.REPEAT_LAST


def entry(id: int, seq: int = 0, key: str = "k", request: dict[str, str] | None = None,
          response: dict[str, str] | None = None) -> ReplayEntry:
    # header lists as JSON text, as the store hands them over
    return ReplayEntry(
        id, key, seq, 200, "OK", "HTTP/1.1", json.dumps(list((response or {}).items())),
        str(id).encode(), None, "", 0.0,
        raw_request_headers=json.dumps(list((request or {}).items())))


def asking(**headers: str) -> Request:
    return Request("GET", "http", "api.test", 80, "/x",
                   tuple((k.replace("_", "-"), v) for k, v in headers.items()))


def ids(index: ReplayIndex, request: Request, n: int, key: str = "k",
        fallback: str | None = None, policy: SequencePolicy = REPEAT) -> list[int | None]:
    got = (index.next(key, policy, request, fallback) for _ in range(n))
    return [e.id if e else None for e in got]


GZIP = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
PLAIN = {"Content-Type": "text/plain"}


def test_a_compressed_response_goes_only_to_requests_that_accept_its_coding():
    index = ReplayIndex([entry(1, request={"Accept-Encoding": "gzip, br"}, response=GZIP)])
    assert ids(index, asking(), 1) == [None]  # a plain client (curl without --compressed)
    assert ids(index, asking(Accept_Encoding="deflate"), 1) == [None]
    assert ids(index, asking(Accept_Encoding="gzip, deflate"), 1) == [1]
    # compressed although the recorded client offered nothing: anyone gets it again
    unasked = ReplayIndex([entry(2, response=GZIP)])
    assert ids(unasked, asking(), 1) == [2]
    # of two recordings, each client gets the one it can read
    both = ReplayIndex([entry(3, 0, request={"Accept-Encoding": "gzip"}, response=GZIP),
                        entry(4, 1, request={"User-Agent": "curl"}, response=PLAIN)])
    assert ids(both, asking(User_Agent="curl"), 3) == [4, 4, 4]
    assert ids(both, asking(Accept_Encoding="gzip"), 1) == [3]


def test_accept_chooses_among_recordings_of_different_content_types():
    json_ = entry(1, 0, request={"Accept": "application/json"},
                  response={"Content-Type": "application/json"})
    html = entry(2, 1, request={"Accept": "text/html"}, response={"Content-Type": "text/html"})
    index = ReplayIndex([json_, html])
    assert ids(index, asking(Accept="text/html"), 2) == [2, 2]
    assert ids(index, asking(Accept="application/json"), 1) == [1]
    assert ids(index, asking(Accept="application/*;q=0.9, text/html;q=0.5"), 1) == [1]
    assert ids(index, asking(Accept="image/png"), 1) == [None]
    # the same content type everywhere: Accept plays no part, the sequence runs in order
    seq = ReplayIndex([entry(3, 0, response=PLAIN), entry(4, 1, response=PLAIN)])
    assert ids(seq, asking(Accept="application/json"), 3) == [3, 4, 4]


def test_a_recording_made_with_the_same_accept_header_keeps_its_sequence():
    # an API client that got an error page first: its own Accept header refuses text/html,
    # but it is the header it was recorded with, so the sequence replays as recorded
    accept = {"Accept": "application/json"}
    index = ReplayIndex([
        entry(1, 0, request=accept, response={"Content-Type": "text/html"}),
        entry(2, 1, request=accept, response={"Content-Type": "application/json"}),
    ])
    assert ids(index, asking(Accept="application/json"), 3) == [1, 2, 2]


def test_ties_go_to_the_recording_whose_headers_agree_most_then_to_seq_order():
    index = ReplayIndex([
        entry(1, 0, request={"User-Agent": "a", "X-Trace": "t1"}),
        entry(2, 1, request={"User-Agent": "b", "X-Trace": "t2"}),
        entry(3, 2, request={"User-Agent": "a", "X-Trace": "t3"}),
    ])
    assert ids(index, asking(User_Agent="b", X_Trace="t9"), 2) == [2, 2]
    # UA a: its own two recordings, in seq order, as a sequence of their own
    assert ids(index, asking(User_Agent="a", X_Trace="t8"), 3) == [1, 3, 3]
    # agreeing with none: every recording of the key, in seq order
    assert ids(index, asking(User_Agent="c"), 4) == [1, 2, 3, 3]
    # redacted values never count
    red = ReplayIndex([entry(5, 0, request={"Cookie": "REDACTED"}), entry(6, 1)])
    assert ids(red, asking(Cookie="REDACTED"), 2) == [5, 6]


def test_a_conditional_request_without_its_own_recording_gets_the_plain_one():
    index = ReplayIndex([entry(1, key="plain"), entry(2, key="etag")])
    assert ids(index, asking(), 1, key="etag", fallback="plain") == [2]
    assert ids(index, asking(), 1, key="range", fallback="plain") == [1]
    assert ids(index, asking(), 1, key="range") == [None]


def test_sequences_go_on_across_a_rebuilt_index_with_a_new_recording():
    first = [entry(1, 0), entry(2, 1)]
    index = ReplayIndex(first)
    assert ids(index, asking(), 2, policy=SequencePolicy.STRICT) == [1, 2]
    rebuilt = ReplayIndex([*first, entry(3, 2)])
    rebuilt.keep_positions(index)
    assert ids(rebuilt, asking(), 2, policy=SequencePolicy.STRICT) == [3, None]
