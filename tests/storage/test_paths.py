"""The path grammar shared by matching rules, diffs and noise patterns."""

from __future__ import annotations

import pytest
from wiretape.storage.paths import InvalidPath, Wild, format_path, parse_path, path_matches


def test_paths_parse_and_format() -> None:
    assert parse_path("response.body.items[*].updated_at") == (
        "response", "body", "items", Wild.INDEX, "updated_at")
    assert parse_path("response.headers.X-Request-Id") == ("response", "headers", "x-request-id")
    assert parse_path("$.items[0].id") == ("response", "body", "items", 0, "id")
    assert parse_path("response.body.*.id") == ("response", "body", Wild.KEY, "id")
    for tokens in [("response", "body", "a.b", 0, "it's", "", "x y", "$ref", "*")]:
        assert parse_path(format_path(tokens)) == tokens
    for bad in ["", "response.body[", "response..x", "response.body[x]", "9lives"]:
        with pytest.raises(InvalidPath):
            parse_path(bad)


def test_a_pattern_covers_what_is_below_it_and_wildcards_match() -> None:
    assert path_matches("response.body.a.b", "response.body.*.b")
    assert path_matches("response.body.items[3].id", "response.body.items[*]")
    assert not path_matches("response.body", "response.body.x")
    assert not path_matches("response.body.items.id", "response.body.items[*]")
