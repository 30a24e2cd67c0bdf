"""What the plugin does around each test: switch the proxy to the test's tape, find the
requests that missed it, export what was recorded, audit tapes against the live services."""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .admin import Admin, Counters, ServeError, tape_path, wait_until
from .server import ServeProcess, cache_dir
from .tapes import MarkerOptions, shared_tape_file, tape_file_for, tape_name_for

WRITE_TIMEOUT = 15.0  # seconds for serve's writer to store what a test recorded
MISS_TIMEOUT = 15.0  # seconds for the misses journal to show a miss the proxy counted
AUDIT_TIMEOUT = 600.0
EMPTY_TAPE = "wiretape-pytest-no-tape"
DRIFT_CLASSES = ("breaking", "additive", "value", "latency")


class Mode(StrEnum):
    """`--wiretape=...`: the user's words."""

    RECORD = "record"
    REPLAY = "replay"
    ONCE = "once"
    OFF = "off"


class Action(StrEnum):
    """What the proxy does for one test."""

    RECORD = "record"  # forward and record into an emptied tape
    REPLAY = "replay"  # answer from the tape, a miss is a 502 and fails the test
    NEW_EPISODES = "new_episodes"  # answer from the tape, record what it lacks (once)


@dataclass(slots=True)
class TapeInUse:
    """One test's tape and what happened on it so far."""

    nodeid: str
    name: str  # the test's tape, as people read it (and as its file holds it)
    store: str  # the tape the proxy uses: `name`, or the empty tape (replay, no file)
    file: Path
    action: Action
    existed: bool  # the HAR file was there when the test began
    before: Counters
    misses: list[dict[str, Any]] = field(default_factory=list)
    explained: int = 0  # misses already explained in a report
    summarized: int = 0  # misses already handed to the terminal summary
    audit_id: int | None = None
    drift: dict[str, Any] | None = None  # the finished audit, once read


@dataclass(frozen=True, slots=True)
class Options:
    mode: Mode
    tapes_dir: Path
    rootdir: Path
    serve_args: tuple[str, ...] = ()
    redact: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    audit: bool = False
    audit_headers: tuple[tuple[str, str], ...] = ()
    audit_fail_on: str = "breaking"

    def serve_flags(self, redact: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        flags = list(self.serve_args)
        for key, flag in (("redact_headers", "--redact-header"),
                          ("redact_query", "--redact-query"), ("redact_json", "--redact-json")):
            for name in sorted((redact or self.redact).get(key, ())):
                flags += [flag, name]
        return flags

    @property
    def upstream_insecure(self) -> bool:
        return "--upstream-insecure" in self.serve_args


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Controller:
    """The session's side of the plugin: one serve, its tapes, the tests' outcomes."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.server: ServeProcess | None = None
        self.redact: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in
                                                   options.redact.items()}
        self._loaded: dict[str, str] = {}  # tape -> digest of the HAR file it holds
        self._recorded: set[str] = set()  # tapes emptied for recording this session
        self._audits: dict[str, int] = {}  # tape -> audit id
        self._audit_results: dict[int, dict[str, Any]] = {}
        self._last_miss_id: int | None = None
        self._touched: set[str] = set()  # tapes some test of this session has used
        self._counters: Counters | None = None  # /metrics when the last test was checked
        self._state: dict[str, str] = {}  # what PUT /api/mode last set

    # -- the server ----------------------------------------------------------------------
    def start(self) -> ServeProcess:
        self.server = ServeProcess(self.options.serve_flags(self.redact), cache=cache_dir())
        self.server.start()
        if not (self.server.ports_known and self.server.ca_cert.is_file()):
            self.server.wait_ready()
        # else serve starts while pytest imports conftests and collects: clients can be
        # set up already (the ports are bound, the CA came from the cache), and requests
        # made meanwhile wait in the listening socket's backlog; ready() before any test
        return self.server

    def ready(self) -> None:
        if self.server is not None:
            self.server.wait_ready()

    def want_redaction(self, wanted: Mapping[str, Sequence[str]]) -> bool:
        """Markers asked for redaction the running serve lacks: restart it with the union,
        on the same ports. True when it restarted."""
        merged = {k: tuple(sorted({*self.redact.get(k, ()), *wanted.get(k, ())}))
                  for k in {*self.redact, *wanted}}
        if all(set(merged[k]) <= set(self.redact.get(k, ())) for k in merged):
            return False
        self.redact = merged
        assert self.server is not None
        self.server.restart(self.options.serve_flags(merged))
        self._state = {}
        return True

    def api(self) -> Admin:
        assert self.server is not None
        return self.server.api()

    # -- one test ------------------------------------------------------------------------
    def tape_for(self, nodeid: str, module: Path, marker: MarkerOptions) -> tuple[str, Path]:
        if marker.tape is not None:
            return marker.tape, shared_tape_file(marker.tape, self.options.tapes_dir)
        return (tape_name_for(nodeid),
                tape_file_for(nodeid, module, self.options.tapes_dir, self.options.rootdir))

    def begin(self, nodeid: str, module: Path, marker: MarkerOptions) -> TapeInUse:
        """Point the proxy at the test's tape before its fixtures run."""
        assert self.server is not None
        api = self.api()
        name, file = self.tape_for(nodeid, module, marker)
        existed = file.is_file()
        mode = self.options.mode
        if mode is Mode.RECORD:
            action = Action.RECORD
        elif mode is Mode.ONCE:
            action = Action.NEW_EPISODES if existed else Action.RECORD
        else:
            action = Action.REPLAY
        # replaying a test that has no tape file: every request misses, from one empty
        # tape that tests without HTTP share (the proxy is often on it already)
        store = name if existed or action is not Action.REPLAY else EMPTY_TAPE
        used_before = store in self._touched
        self._touched.add(store)

        if action is Action.RECORD:
            if store not in self._recorded:  # a shared tape records all its tests' traffic
                if used_before:
                    api.call("DELETE", tape_path(store), ok=(204, 404))
                self._loaded.pop(store, None)
                self._recorded.add(store)
            self._switch({"mode": "record", "tape": store})
        else:
            if store != EMPTY_TAPE:
                self._load(store, file)
            on_miss = "record" if action is Action.NEW_EPISODES else "error"
            self._switch({"mode": "replay", "tape": store, "on_miss": on_miss})
            if used_before and store != EMPTY_TAPE:
                # sequences restart per test (a tape new to the proxy starts at the first
                # recording of each key anyway)
                api.call("POST", "/api/replay/reset")
        if marker.matching and store != EMPTY_TAPE:
            rules = {"ignore_query": [], "ignore_body_paths": [], "match_headers": [],
                     "ignore_host": False, **marker.matching}
            api.call("PUT", tape_path(store, "/matching"), rules)
        if self._last_miss_id is None:
            newest = api.call("GET", "/api/misses?limit=1")
            self._last_miss_id = newest[0]["id"] if newest else 0
        # nothing goes through the proxy between two tests: where the last one's counts
        # ended, this one's begin
        before = self._counters or self.server.counters()
        tape = TapeInUse(nodeid, name, store, file, action, existed, before)
        if self.options.audit and existed:
            tape.audit_id = self._start_audit(store)
        return tape

    def _switch(self, state: dict[str, str]) -> None:
        if state != self._state:
            self.api().call("PUT", "/api/mode", state)
            self._state = state

    def _load(self, name: str, file: Path) -> None:
        """The tape in the store becomes what its file holds (imported once per content)."""
        data = file.read_bytes()
        digest = _digest(data)
        if self._loaded.get(name) == digest:
            return
        try:
            self.api().call("POST", tape_path(name, "/import?replace=true"), raw=data)
        except ServeError as e:
            raise ServeError(f"cannot load tape file {file}: {e}") from e
        self._loaded[name] = digest

    def poll_misses(self, tape: TapeInUse) -> None:
        """Add the test's latest misses to `tape.misses`. The proxy counts a miss (/metrics)
        before the client gets its 502, and journals it a moment later from its writer
        thread: wait until the journal shows as many as were counted."""
        counters = self.server.counters() if self.server else Counters()
        self._counters = counters
        missed = int(counters.missed - tape.before.missed) - len(tape.misses)
        if missed > 0:
            since = self._last_miss_id or 0

            def journaled() -> list[dict[str, Any]] | None:
                rows = self.api().call("GET", f"/api/misses?limit={min(1000, missed)}")
                new = [r for r in rows if r["id"] > since]
                return new if len(new) >= missed else None

            try:
                new = wait_until(journaled, MISS_TIMEOUT, "the misses journal", step=0.02)
            except TimeoutError:
                rows = self.api().call("GET", "/api/misses?limit=1000")
                new = [r for r in rows if r["id"] > since]
            new.sort(key=lambda r: r["id"])
            if new:
                self._last_miss_id = new[-1]["id"]
            tape.misses.extend(new)

    def wait_written(self, tape: TapeInUse) -> Counters:
        """Until serve's writer has stored every exchange the test recorded (it writes in
        batches on a thread of its own)."""
        assert self.server is not None
        server = self.server
        before = tape.before

        def stored() -> Counters | None:
            c = server.counters()
            done = c.written - before.written >= c.recorded - before.recorded and not c.queued
            return c if done else None

        try:
            counters = wait_until(stored, WRITE_TIMEOUT, "recordings to be stored", step=0.01)
        except TimeoutError:
            # e.g. a client that left before its answer: counted, never stored
            counters = server.counters()
        self._counters = counters
        return counters

    def finish(self, tape: TapeInUse) -> bool:
        """Write the tape's HAR file if the test recorded anything; True when written."""
        if tape.action is Action.REPLAY:
            return False
        after = self.wait_written(tape)
        if after.recorded - tape.before.recorded <= 0:
            return False
        status, data = self.api().request(
            "GET", tape_path(tape.store, "/export?ids=false"))
        if status != 200:
            raise ServeError(f"exporting tape {tape.store} answered {status}: {data[:300]!r}")
        write_atomically(tape.file, data)
        self._loaded[tape.store] = _digest(data)
        return True

    def recordings(self, tape: TapeInUse) -> list[dict[str, Any]]:
        if tape.action is not Action.REPLAY:
            self.wait_written(tape)
        got = self.api().call("GET", f"/api/recordings?tape={tape.store}&limit=1000",
                              ok=(200, 404))
        items = got.get("items", []) if isinstance(got, dict) else []
        return sorted(items, key=lambda r: r["id"])

    # -- audits --------------------------------------------------------------------------
    def _start_audit(self, name: str) -> int | None:
        if name in self._audits:
            return self._audits[name]
        summary = self.api().call("GET", tape_path(name))
        if not summary.get("recordings"):
            return None
        body = {"verify_tls": not self.options.upstream_insecure,
                "fail_on": self.options.audit_fail_on,
                "headers": dict(self.options.audit_headers)}
        started = self.api().call("POST", tape_path(name, "/audit"), body)
        self._audits[name] = int(started["id"])
        return self._audits[name]

    def audit_result(self, audit_id: int) -> dict[str, Any]:
        """The finished audit (JSON) with its text rendering under `text`."""
        if audit_id in self._audit_results:
            return self._audit_results[audit_id]

        def finished() -> dict[str, Any] | None:
            got: dict[str, Any] = self.api().call("GET", f"/api/audits/{audit_id}")
            return got if got.get("status") != "running" else None

        result = wait_until(finished, AUDIT_TIMEOUT, f"audit {audit_id}", step=0.05)
        result["text"] = self.api().call("GET", f"/api/audits/{audit_id}?format=text")
        self._audit_results[audit_id] = result
        return result

    # -- the end -------------------------------------------------------------------------
    def stop(self) -> None:
        if self.server is not None:
            # every tape is exported by now and the store is deleted next: nothing is left
            # for serve's clean shutdown to save (it was asked for at the session's end)
            self.server.stop(kill=True)
            self.server.cleanup()
            self.server = None


def parse_serve_args(values: Sequence[str], extra: str | None) -> tuple[str, ...]:
    return (*values, *(shlex.split(extra) if extra else ()))


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--wiretape-audit-header {text!r} must be 'Name: value'")
    return name.strip(), value.strip()
