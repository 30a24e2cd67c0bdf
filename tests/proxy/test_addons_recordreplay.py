"""Record/replay as an addon: replay from an index built in memory, misses answered with the
closest recordings, captures handed to the writer (mitmproxy's taddons and tflow)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.proxy.layers.http import HttpErrorHook, HttpRequestHook, HttpResponseHook
from mitmproxy.test import taddons, tflow, tutils
from wiretape.proxy import flows
from wiretape.proxy.addons import Wiretape
from wiretape.proxy.metrics import OUTCOME, Outcome
from wiretape.proxy.recordreplay import RECORD
from wiretape.proxy.timeout import TIMED_OUT
from wiretape.storage import repository as repo
from wiretape.storage.exchange import Exchange, Mode, OnMiss, Request, Response
from wiretape.storage.matching import MatchRules, match_key
from wiretape.storage.redact import Redactor
from wiretape.storage.replay import ReplayIndex

Scenario = Callable[[taddons.context], Awaitable[None]]


def run(wt: Wiretape, scenario: Scenario, **options: object) -> None:
    """Run `scenario` with the addons loaded in a taddons context (on its event loop)."""
    async def go() -> None:
        with taddons.context(*wt.addons) as tctx:
            if options:
                tctx.configure(wt.options, **options)
            await scenario(tctx)
    asyncio.run(go())


async def request(tctx: taddons.context, f: http.HTTPFlow) -> http.HTTPFlow:
    """The request hook of every addon in the chain, in order, as mitmproxy fires it."""
    await tctx.master.addons.handle_lifecycle(HttpRequestHook(f))
    return f


def get(path: str = "/path") -> http.HTTPFlow:
    return tflow.tflow(req=tutils.treq(path=path.encode()))


def entry_for(f: http.HTTPFlow, body: bytes, rid: int = 1, seq: int = 0,
              failure_kind: str | None = None) -> repo.ReplayEntry:
    """What the store would load for a recording of this flow's request."""
    key = match_key(Redactor().request(flows.request_of(f)), MatchRules())
    return repo.ReplayEntry(
        id=rid, match_key=key, seq=seq, status=None if failure_kind else 200, reason="OK",
        http_version="HTTP/1.1", raw_headers=[["Content-Type", "text/plain"]], body=body,
        failure_kind=failure_kind, failure_message="Connect call failed", duration_ms=5.0)


def replaying(wt: Wiretape, *entries: repo.ReplayEntry, on_miss: OnMiss = OnMiss.ERROR) -> None:
    rt = wt.state.rt
    rt.mode, rt.tape, rt.on_miss = Mode.REPLAY, "t", on_miss
    rt.index = ReplayIndex(entries)


def store(wt: Wiretape, *targets: str) -> None:
    with wt.state.sessions.begin() as s:
        repo.add_exchanges(s, "t", [
            Exchange(Request("GET", "http", "address", 22, t), Response(200, body=b"x"))
            for t in targets])


def written(wt: Wiretape) -> list[Exchange]:
    """Start the writer, let it write what it was handed, and read the tape back."""
    writer = wt.record_replay.writer
    writer.start()
    writer.close(10)
    with wt.state.sessions() as s:
        return [repo.row_exchange(r) for r in repo.tape_recordings(s, wt.state.rt.tape)]


# -- replay --------------------------------------------------------------------------------

def test_a_recorded_response_is_replayed_from_the_index(wiretape: Wiretape) -> None:
    f = get()
    replaying(wiretape, entry_for(f, b"recorded", rid=7))

    async def scenario(tctx: taddons.context) -> None:
        await request(tctx, f)

    run(wiretape, scenario)
    assert f.response is not None
    assert (f.response.status_code, f.response.content) == (200, b"recorded")
    assert f.response.headers["Wiretape-Recording"] == "7"
    assert f.is_replay == "response"
    assert f.metadata[OUTCOME] is Outcome.REPLAYED
    assert wiretape.timeout.deadlines == {}  # answered here: nothing to time


def test_a_recorded_failure_is_replayed_as_mitmproxy_reported_it(wiretape: Wiretape) -> None:
    f = get()
    replaying(wiretape, entry_for(f, b"", failure_kind="refused"))
    run(wiretape, lambda tctx: request(tctx, f))
    assert f.response is not None and f.response.status_code == 502
    assert b"Connect call failed" in f.response.content


def test_a_sequence_replays_in_order_then_repeats_the_last(wiretape: Wiretape) -> None:
    f = get()
    replaying(wiretape, entry_for(f, b"second", rid=2, seq=1), entry_for(f, b"first", rid=1))
    bodies: list[bytes] = []

    async def scenario(tctx: taddons.context) -> None:
        for _ in range(3):
            answered = await request(tctx, get())
            assert answered.response is not None
            bodies.append(answered.response.content or b"")

    run(wiretape, scenario)
    assert bodies == [b"first", b"second", b"second"]


def test_a_strict_sequence_misses_after_the_last(wiretape: Wiretape) -> None:
    f = get()
    replaying(wiretape, entry_for(f, b"only"))
    statuses: list[int] = []

    async def scenario(tctx: taddons.context) -> None:
        for _ in range(2):
            answered = await request(tctx, get())
            assert answered.response is not None
            statuses.append(answered.response.status_code)

    run(wiretape, scenario, wiretape_sequence="strict")
    assert statuses == [200, 502]


# -- misses --------------------------------------------------------------------------------

def test_a_miss_is_answered_with_the_closest_recordings(wiretape: Wiretape) -> None:
    store(wiretape, "/items?page=1")
    replaying(wiretape)
    f = get("/items?page=2")
    run(wiretape, lambda tctx: request(tctx, f))
    assert f.response is not None and f.response.status_code == 502
    assert f.response.headers["Wiretape"] == "miss"
    body = json.loads(f.response.content or b"")
    assert body["tape"] == "t" and body["request"]["url"] == "http://address:22/items?page=2"
    assert [c["url"] for c in body["closest"]] == ["http://address:22/items?page=1"]
    assert f.metadata[OUTCOME] is Outcome.MISS
    assert wiretape.record_replay.writer.depth == 1  # journaled by the writer
    assert wiretape.timeout.deadlines == {}


def test_a_repeated_miss_reuses_its_closest_recordings(wiretape: Wiretape) -> None:
    store(wiretape, "/items?page=1")
    replaying(wiretape)
    first, again = get("/items?page=2"), get("/items?page=2")

    async def scenario(tctx: taddons.context) -> None:
        await request(tctx, first)
        with wiretape.state.sessions.begin() as s:  # unseen by the memo: nothing re-reads
            repo.empty_tape(s, "t")
        await request(tctx, again)

    run(wiretape, scenario)
    assert first.response is not None and again.response is not None
    assert json.loads(again.response.content or b"") == json.loads(first.response.content or b"")


def test_on_miss_forward_lets_the_request_through_on_the_clock(wiretape: Wiretape) -> None:
    replaying(wiretape, on_miss=OnMiss.FORWARD)
    f = get("/unknown")
    run(wiretape, lambda tctx: request(tctx, f))
    assert f.response is None and RECORD not in f.metadata
    assert f.id in wiretape.timeout.deadlines


def test_on_miss_record_records_what_the_upstream_answers(wiretape: Wiretape) -> None:
    replaying(wiretape, on_miss=OnMiss.RECORD)
    f = get("/unknown")

    async def scenario(tctx: taddons.context) -> None:
        await request(tctx, f)
        f.response = tutils.tresp(content=b"live")
        await tctx.master.addons.handle_lifecycle(HttpResponseHook(f))

    run(wiretape, scenario)
    [ex] = written(wiretape)
    assert ex.request.target == "/unknown" and ex.response is not None
    assert ex.response.body == b"live"


def test_ignored_hosts_are_forwarded_in_replay_mode(wiretape: Wiretape) -> None:
    replaying(wiretape)
    f = get()
    run(wiretape, lambda tctx: request(tctx, f), ignore_hosts=["^address:22$"])
    assert f.response is None and wiretape.record_replay.writer.depth == 0


# -- record and passthrough ----------------------------------------------------------------

def test_record_mode_hands_the_finished_exchange_to_the_writer(wiretape: Wiretape) -> None:
    f = get()

    async def scenario(tctx: taddons.context) -> None:
        await request(tctx, f)
        assert f.response is None and f.id in wiretape.timeout.deadlines
        f.response = tutils.tresp(content=b"from upstream")
        await tctx.master.addons.handle_lifecycle(HttpResponseHook(f))

    run(wiretape, scenario)
    [ex] = written(wiretape)
    assert ex.response is not None and ex.response.body == b"from upstream"
    assert wiretape.timeout.deadlines == {}


def test_an_upstream_timeout_is_recorded_as_a_timeout(wiretape: Wiretape) -> None:
    f = get()

    async def scenario(tctx: taddons.context) -> None:
        await request(tctx, f)
        f.metadata[TIMED_OUT] = True  # what the upstream timeout does when it aborts
        f.error = mflow.Error("server closed connection")
        await tctx.master.addons.handle_lifecycle(HttpErrorHook(f))

    run(wiretape, scenario)
    [ex] = written(wiretape)
    assert ex.failure is not None and ex.failure.kind == "timeout"


def test_a_client_that_gave_up_is_not_recorded(wiretape: Wiretape) -> None:
    f = get()

    async def scenario(tctx: taddons.context) -> None:
        await request(tctx, f)
        f.error = mflow.Error("Client disconnected.")
        await tctx.master.addons.handle_lifecycle(HttpErrorHook(f))

    run(wiretape, scenario)
    assert wiretape.record_replay.writer.depth == 0


def test_an_upgrade_passes_through_unrecorded(wiretape: Wiretape) -> None:
    f = get()
    f.request.headers["Upgrade"] = "websocket"
    run(wiretape, lambda tctx: request(tctx, f))
    assert f.response is None and RECORD not in f.metadata


def test_passthrough_neither_records_nor_answers(wiretape: Wiretape) -> None:
    wiretape.state.rt.mode = Mode.PASSTHROUGH
    f = get()
    run(wiretape, lambda tctx: request(tctx, f))
    assert f.response is None and RECORD not in f.metadata and OUTCOME not in f.metadata
