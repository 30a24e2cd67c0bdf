"""Noise patterns compiled: which diff paths they cover."""

from __future__ import annotations

import pytest
from wiretape.drift.patterns import NoiseMatcher
from wiretape.storage.paths import InvalidPath


def test_noise_matcher() -> None:
    noise = NoiseMatcher.compile(["response.body.items[*].updated_at",
                                  "response.headers.X-Request-Id", "$.meta"])
    assert noise("response.body.items[12].updated_at")
    assert noise("response.headers.x-request-id")
    assert noise("response.body.meta.trace.id")  # a pattern covers what is below it
    assert not noise("response.body.items[12].price")
    assert not noise("response.body.items.updated_at")  # [*] is an index, not a key
    assert not noise("response.body.metadata")
    with pytest.raises(InvalidPath):
        NoiseMatcher.compile(["response.body[oops]"])
