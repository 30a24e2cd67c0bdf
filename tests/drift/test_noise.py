"""Noise found between exchanges of one request, and left out of diffs."""

from __future__ import annotations

from wiretape.drift.changes import diff_exchanges
from wiretape.drift.noise import detect_noise
from wiretape.storage.exchange import Exchange, Failure, FailureKind

from tests.drift.factories import JSON, make_exchange


def _noisy(i: int, price: int = 10) -> Exchange:
    return make_exchange(
        headers=(*JSON, ("X-Request-Id", f"req-{i}")),
        body={"timestamp": f"2024-01-0{i}T00:00:00Z", "request_id": f"r{i}",
              "items": [{"id": 1, "price": price, "seen_at": i}, {"id": 2, "price": 5,
                                                                  "seen_at": i}]},
    )


def test_detect_noise_from_three_recordings_and_diff_leaves_it_out_unless_strict() -> None:
    noise = detect_noise([_noisy(1), _noisy(2), _noisy(3)])
    assert noise == {"response.body.timestamp", "response.body.request_id",
                     "response.body.items[*].seen_at", "response.headers.x-request-id"}
    assert detect_noise([_noisy(1)]) == set()

    d = diff_exchanges(_noisy(1), _noisy(4, price=12), noise)
    assert d.to_dict() == {
        "identical": False,
        "changes": [{"path": "response.body.items[0].price", "kind": "value_changed",
                     "old": 10, "new": 12}],
        "ignored": 5,
    }
    assert diff_exchanges(_noisy(1), _noisy(4), noise).identical
    strict = diff_exchanges(_noisy(1), _noisy(4, price=12), noise, strict=True)
    assert [c.path for c in strict.changes] == [
        "response.headers.x-request-id",
        "response.body.items[0].price",
        "response.body.items[0].seen_at",
        "response.body.items[1].seen_at",
        "response.body.request_id",
        "response.body.timestamp",
    ]


def test_status_and_failures_are_never_noise() -> None:
    exchanges = [make_exchange(status=200), make_exchange(status=503),
                 make_exchange(failure=Failure(FailureKind.RESET, "reset"))]
    assert detect_noise(exchanges) == set()


def test_text_noise_keeps_its_line_number() -> None:
    text = (("Content-Type", "text/plain"),)
    noise = detect_noise([make_exchange(headers=text, body=b"report\ngenerated 1\nok\n"),
                          make_exchange(headers=text, body=b"report\ngenerated 2\nok\n")])
    assert noise == {"response.body[2]"}
