"""The repository on SQLite and PostgreSQL: seq in capture order, across writers."""

from __future__ import annotations

import multiprocessing

from wiretape.storage import db
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange, Request, Response, SequencePolicy
from wiretape.storage.replay import ReplayIndex


def make_exchange(ns: int, target: str = "/same", body: bytes = b"x") -> Exchange:
    return Exchange(Request("GET", "http", "h", 80, target), Response(200, (), body),
                    captured_ns=ns)


def seqs(url: str, tape: str) -> list[tuple[int, bytes]]:
    engine = db.make_engine(url)
    try:
        with db.make_sessions(engine)() as s:
            rows = repo.replay_entries(s, tape)
            return [(e.seq, e.body) for e in sorted(rows, key=lambda e: e.seq)]
    finally:
        engine.dispose()


def test_seq_follows_capture_order_when_writes_land_out_of_order(db_url):
    engine = db.make_engine(db_url)
    sessions = db.make_sessions(engine)
    with sessions.begin() as s:
        repo.add_exchanges(s, "t", [make_exchange(30, body=b"c"), make_exchange(10, body=b"a")])
    with sessions.begin() as s:  # a late write of an earlier capture
        out = repo.add_exchanges(s, "t", [make_exchange(20, body=b"b"),
                                          make_exchange(40, body=b"d")])
    assert [seq for _, _, seq in out] == [1, 3]
    engine.dispose()
    assert seqs(db_url, "t") == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]


def test_seq_is_capture_rank_per_key_whatever_the_batches(db_url):
    # unique capture times over three keys, written in random batches in random order: each
    # key's seq must end up as the rank of its capture time (earlier recordings of a key
    # are counted, later ones read and shifted)
    import random

    rnd = random.Random(7)
    times = rnd.sample(range(1, 10_000), 90)
    exchanges = [make_exchange(ns, target=f"/k{ns % 3}", body=str(ns).encode()) for ns in times]
    engine = db.make_engine(db_url)
    sessions = db.make_sessions(engine)
    i = 0
    while i < len(exchanges):
        n = rnd.randint(1, 12)
        with sessions.begin() as s:
            repo.add_exchanges(s, "ranks", exchanges[i : i + n])
        i += n
    engine.dispose()
    got = seqs(db_url, "ranks")
    by_key: dict[int, list[tuple[int, int]]] = {}
    for seq, body in got:
        by_key.setdefault(int(body) % 3, []).append((int(body), seq))
    for pairs in by_key.values():
        assert [seq for _, seq in sorted(pairs)] == list(range(len(pairs)))


def _writer(url: str, offset: int) -> None:
    engine = db.make_engine(url)
    sessions = db.make_sessions(engine)
    for i in range(10):
        ns = 1000 + (i * 2 + offset)
        with sessions.begin() as s:
            repo.add_exchanges(s, "shared", [make_exchange(ns, body=str(ns).encode())])
    engine.dispose()


def test_two_processes_writing_one_key_keep_capture_order(db_url):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, off)) for off in (1, 0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = seqs(db_url, "shared")
    assert [seq for seq, _ in got] == list(range(20))
    assert [int(body) for _, body in got] == list(range(1000, 1020))


def test_replay_index_sequence_policies():
    entries = [repo.ReplayEntry(i, "k", i, 200, "", "HTTP/1.1", (), str(i).encode(), None, "",
                                0.0) for i in range(3)]
    for policy, want in [
        (SequencePolicy.REPEAT_LAST, [0, 1, 2, 2, 2]),
        (SequencePolicy.CYCLE, [0, 1, 2, 0, 1]),
        (SequencePolicy.STRICT, [0, 1, 2, None, None]),
    ]:
        idx = ReplayIndex(reversed(entries))
        got = [(e.id if e else None) for e in (idx.next("k", policy) for _ in range(5))]
        assert got == want
        idx.reset()
        assert idx.next("k", policy).id == 0  # type: ignore[union-attr]
    idx = ReplayIndex(entries)
    idx.next("k", SequencePolicy.REPEAT_LAST)
    rebuilt = ReplayIndex(entries)
    rebuilt.keep_positions(idx)  # positions survive a rebuild
    assert rebuilt.next("k", SequencePolicy.REPEAT_LAST).id == 1  # type: ignore[union-attr]
    assert idx.next("missing", SequencePolicy.REPEAT_LAST) is None
