"""Streamed responses and big bodies in the store (SQLite and PostgreSQL): chunk timings kept,
big bodies spooled, stored in parts and read back byte for byte, copied, edited, deleted and
downgraded with their recording; and the pieces they are made of."""

from __future__ import annotations

import hashlib
import json
import random

from sqlalchemy import func, select
from wiretape.storage import db
from wiretape.storage import models as m
from wiretape.storage import repository as repo
from wiretape.storage.bodies import (
    BIG_BODY,
    PART_SIZE,
    PREVIEW_SIZE,
    SpooledBody,
    chunk_bytes,
    sse_events,
    stream_sizes,
)
from wiretape.storage.exchange import (
    BigBody,
    Exchange,
    Request,
    Response,
    Stream,
    Truncation,
)
from wiretape.storage.redact import Redactor

BIG = random.Random(5).randbytes(BIG_BODY + PART_SIZE // 2 + 7)


def spooled(data: bytes, piece: int = 100_000) -> SpooledBody:
    spool = SpooledBody()
    for i in range(0, len(data), piece):
        spool.write(data[i:i + piece])
    return spool


def big_exchange(ns: int = 1, target: str = "/big") -> Exchange:
    spool = spooled(BIG)
    chunks = tuple((10.0 + i, min(100_000, len(BIG) - i * 100_000))
                   for i in range(-(-len(BIG) // 100_000)))
    resp = Response(200, (("Content-Type", "application/octet-stream"),), b"",
                    stream=Stream(5.0, chunks), big=BigBody(spool.size, "", spool.preview, spool))
    return Exchange(Request("GET", "http", "h", 80, target), resp, captured_ns=ns)


def sse_exchange(body: bytes, ns: int = 2, truncated: Truncation | None = None) -> Exchange:
    chunks = ((3.0, 20), (250.5, len(body) - 20))
    resp = Response(200, (("Content-Type", "application/json"),), body,
                    stream=Stream(1.5, chunks, truncated))
    return Exchange(Request("GET", "http", "h", 80, "/events"), resp, captured_ns=ns)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- pieces ------------------------------------------------------------------------------------

def test_a_spool_keeps_the_body_its_digest_and_its_first_bytes() -> None:
    spool = spooled(BIG)
    assert spool.size == len(BIG) and spool.preview == BIG[:PREVIEW_SIZE]
    parts = list(spool.parts())
    assert [len(p) for p in parts[:-1]] == [PART_SIZE] * (len(parts) - 1)
    assert b"".join(parts) == BIG and b"".join(spool.parts()) == BIG  # read again: the same
    assert spool.sha256 == sha(BIG)
    spool.close()


def test_a_spool_behind_the_disk_asks_its_source_to_pause_until_it_caught_up() -> None:
    import threading

    from wiretape.storage import bodies

    drained = threading.Event()
    spool = SpooledBody(drained.set, backlog=100, resume=40)
    disk = threading.Event()
    bodies._pool().submit(disk.wait, 20)  # a disk that does not take writes for now
    assert spool.write(b"x" * 60) is False
    assert spool.write(b"x" * 60) is True  # 120 bytes waiting: pause
    assert spool.write(b"x" * 10) is True  # still paused until it has caught up
    assert not drained.is_set()
    disk.set()
    assert drained.wait(10)  # called once it is down to 40 bytes or fewer
    assert b"".join(spool.parts()) == b"x" * 130
    assert spool.write(b"y") is False
    spool.close()


def test_chunks_are_cut_from_a_body_or_its_parts() -> None:
    assert list(chunk_bytes(b"abcdefgh", [3, 2])) == [b"abc", b"de", b"fgh"]
    assert list(chunk_bytes([b"ab", b"cdef", b"g"], [3, 3, 1])) == [b"abc", b"def", b"g"]
    assert stream_sizes(None, 2 * PART_SIZE + 1) == [PART_SIZE, PART_SIZE, 1]
    assert stream_sizes(Stream(0, ((1.0, 4), (2.0, 4))), 6) == [4, 2]


def test_a_stream_fitted_to_a_changed_body_keeps_its_timings() -> None:
    s = Stream(1.0, ((2.0, 10), (3.0, 10), (4.0, 10)))
    assert s.fitted(30) is s
    assert s.fitted(15).chunks == ((2.0, 10), (3.0, 5), (4.0, 0))
    assert s.fitted(40).chunks == ((2.0, 10), (3.0, 10), (4.0, 20))
    assert Stream(1.0, ()).fitted(5).chunks == ((1.0, 5),)
    assert Stream.from_json(s.to_json()) == s and Stream.from_json(None) is None


def test_server_sent_events_as_the_html_standard_reads_them() -> None:
    assert sse_events("data: a\ndata:b\r\n\r\n:comment\n\nid:7\nevent:x\nretry: 10\n"
                      "data\n\ndata: {\"k\": [1]}\n\nretry: soon\n\n") == [
        {"data": "a\nb"}, {"id": "7", "event": "x", "retry": 10, "data": ""},
        {"data": {"k": [1]}}]


# -- the store ---------------------------------------------------------------------------------

def test_streams_and_big_bodies_round_trip(db_url) -> None:
    engine = db.make_engine(db_url)
    sessions = db.make_sessions(engine)
    body = b'{"a": 1, "text": "' + b"x" * 30 + b'"}'
    with sessions.begin() as s:
        (big_id, _, _), (sse_id, _, _) = repo.add_exchanges(
            s, "t", [big_exchange(), sse_exchange(body, truncated=Truncation.CLIENT)])
    with sessions() as s:
        row = repo.get_recording(s, big_id)
        assert row.response_body == b"" and row.response_size == len(BIG)
        assert row.response_external == {"sha256": sha(BIG)}
        assert repo.body_part_count(s, big_id) == -(-len(BIG) // PART_SIZE)
        assert repo.read_body(s, big_id) == BIG
        assert repo.body_head(s, big_id, 10) == BIG[:10]
        ex = repo.row_exchange(row)
        assert ex.response is not None and ex.response.big is not None
        assert ex.response.big.digest() == sha(BIG) and ex.response.size == len(BIG)
        assert ex.response.stream is not None and ex.response.stream.head_ms == 5.0
        # the replay index never holds a big body, only what it needs to read one
        entries = {e.id: e for e in repo.replay_entries(s, "t")}
        assert entries[big_id].body == b"" and entries[big_id].external
        assert entries[big_id].size == len(BIG)
        assert entries[sse_id].body == body and not entries[sse_id].external
        assert entries[sse_id].stream == Stream(1.5, ((3.0, 20), (250.5, len(body) - 20)),
                                                Truncation.CLIENT)
    engine.dispose()


def test_big_bodies_go_with_their_recordings(db_url) -> None:
    engine = db.make_engine(db_url)
    sessions = db.make_sessions(engine)
    with sessions.begin() as s:
        [(rid, _, _)] = repo.add_exchanges(s, "t", [big_exchange()])
    with sessions.begin() as s:  # a copy has its own parts
        repo.copy_tape(s, "t", "copy")
    with sessions() as s:
        [copy] = [e for e in repo.replay_entries(s, "copy")]
        assert copy.id != rid and copy.external and repo.read_body(s, copy.id) == BIG
    with sessions.begin() as s:  # an edit with a new body holds it inline
        row = repo.get_recording(s, rid)
        ex = repo.row_exchange(row)
        assert ex.response is not None
        new = Response(200, ex.response.headers, b"small now", stream=ex.response.stream)
        repo.replace_response(s, row, ex.with_(response=new))
    with sessions() as s:
        row = repo.get_recording(s, rid)
        assert row.response_body == b"small now" and row.response_external is None
        assert repo.body_part_count(s, rid) == 0
        # the chunks' timings are kept, cut to the new body
        assert sum(n for _, n in row.response_stream["chunks"]) == len(b"small now")
    with sessions.begin() as s:
        repo.delete_tape(s, "copy")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.BodyPart)) == 0
    engine.dispose()


def test_redaction_of_a_streamed_body_keeps_chunks_that_add_up(db_url) -> None:
    body = b'{"token": "s3cr3t-value", "ok": true}'
    ex = Redactor().exchange(sse_exchange(body))
    engine = db.make_engine(db_url)
    with db.make_sessions(engine).begin() as s:
        [(rid, _, _)] = repo.add_exchanges(s, "t", [ex])
    with db.make_sessions(engine)() as s:
        row = repo.get_recording(s, rid)
        assert b"s3cr3t" not in row.response_body
        assert sum(n for _, n in row.response_stream["chunks"]) == len(row.response_body)
    engine.dispose()


def test_downgrade_puts_big_bodies_back_inline(new_db_url) -> None:
    url = new_db_url()
    db.upgrade(url)
    engine = db.make_engine(url)
    with db.make_sessions(engine).begin() as s:
        [(rid, _, _)] = repo.add_exchanges(s, "t", [big_exchange()])
    engine.dispose()
    db.downgrade(url, "0004")
    engine = db.make_engine(url)
    with engine.connect() as conn:
        body = conn.exec_driver_sql(
            f"SELECT response_body FROM recordings WHERE id = {rid}").scalar()
    engine.dispose()
    assert bytes(body) == BIG
    db.upgrade(url)  # and up again: nothing is lost on the way
    engine = db.make_engine(url)
    with db.make_sessions(engine)() as s:
        assert repo.get_recording(s, rid).response_body == BIG
        assert json.dumps(repo.get_recording(s, rid).response_stream) == "null"
    engine.dispose()


def test_a_har_export_holds_a_big_body_whole_and_imports_it_back(db_url) -> None:
    from wiretape.storage import har

    engine = db.make_engine(db_url)
    sessions = db.make_sessions(engine)
    with sessions.begin() as s:
        repo.add_exchanges(s, "t", [big_exchange()])
    with sessions() as s:
        text = "".join(har.TapeExport(s, "t", creator_version="0"))
    [back] = har.loads(text).exchanges
    assert back.response is not None and back.response.big is None
    assert back.response.body == BIG  # base64 in the file, the bytes back
    assert back.response.stream is not None and back.response.stream.size == len(BIG)
    engine.dispose()
