"""Diffs against the store: tape against tape across matching rules."""

from __future__ import annotations

from wiretape.drift import compare
from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.matching import MatchRules

from tests.drift.factories import make_exchange
from tests.drift.support import add


def test_tape_diff_keys_the_branch_under_the_baseline_rules(db_url) -> None:
    add(db_url, "base", make_exchange(target="/items?page=1&cb=1", body={"n": 1}))
    add(db_url, "branch", make_exchange(target="/items?page=1&cb=2", body={"n": 2}))
    engine = db.make_engine(db_url)
    try:
        with db.make_sessions(engine).begin() as s:
            repo.set_matching(s, "base", MatchRules.create(ignore_query=["cb"]))
            result = compare.tape_diff(s, "base", "branch")
            assert (len(result.changed), len(result.added), len(result.removed)) == (1, 0, 0)
            assert [c.path for c in result.changed[0].diff.changes] == ["response.body.n"]
    finally:
        engine.dispose()
