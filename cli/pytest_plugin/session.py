"""The plugin at work, loaded once a mode is asked for: the session's serve and the
client environment, the tape of each test, misses and drift in the reports, the summary."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import WiretapeDriftWarning
from .admin import ServeError
from .explain import drift_text, explain_misses, summary_lines
from .runner import (
    DRIFT_CLASSES,
    Action,
    Controller,
    Mode,
    Options,
    TapeInUse,
    parse_header,
    parse_serve_args,
)
from .server import EnvPatch
from .tapes import REDACT_KEYS, MarkerError, marker_options

TAPE = pytest.StashKey[TapeInUse]()
CALL_FAILURE = pytest.StashKey[tuple[str, str]]()  # (headline, text)


def _options(config: pytest.Config, ns: Any, mode: Mode) -> Options:
    given = getattr(ns, "wiretape_tapes", None)
    if given:
        tapes_dir = Path(given).expanduser().resolve()  # a command-line path: from cwd
    else:
        tapes_dir = (config.rootpath / str(config.getini("wiretape_tapes_dir"))).resolve()
    fail_on = str(config.getini("wiretape_audit_fail_on")).strip().lower()
    if fail_on not in DRIFT_CLASSES:
        raise pytest.UsageError(
            f"wiretape_audit_fail_on {fail_on!r} must be one of {', '.join(DRIFT_CLASSES)}")
    try:
        headers = tuple(parse_header(h) for h in getattr(ns, "wiretape_audit_headers", []))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from e
    redact = {}
    for key, flag in zip(REDACT_KEYS, ("header", "query", "json"), strict=True):
        names = [*config.getini(f"wiretape_{key}"),
                 *(getattr(ns, f"wiretape_redact_{flag}", None) or [])]
        if names:
            redact[key] = tuple(n.strip() for n in names if n.strip())
    return Options(
        mode=mode, tapes_dir=tapes_dir, rootdir=config.rootpath,
        serve_args=parse_serve_args(config.getini("wiretape_serve_args"),
                                    getattr(ns, "wiretape_serve_args", None)),
        redact=redact, audit=bool(getattr(ns, "wiretape_audit", False)),
        audit_headers=headers, audit_fail_on=fail_on,
    )


class SessionPlugin:
    """Registered for the session when a mode is on, also in the xdist controller: there it
    starts no serve, and gathers the workers' reports for the terminal summary."""

    def __init__(self, config: pytest.Config, ns: Any, mode: str) -> None:
        self.config = config
        self.ctrl = Controller(_options(config, ns, Mode(mode)))
        self.env = EnvPatch()
        self.missed: dict[str, list[dict[str, Any]]] = {}
        self.written: set[str] = set()
        self.drift: list[str] = []

    def start(self) -> None:
        try:
            server = self.ctrl.start()
            environ = server.environ(os.environ)
        except (ServeError, OSError) as e:
            self.ctrl.stop()
            raise pytest.UsageError(f"wiretape: cannot start the proxy: {e}") from e
        self.env.set(environ)

    @property
    def active(self) -> bool:
        return self.ctrl.server is not None

    def fixture_for(self, item: pytest.Item) -> WiretapeFixture | None:
        tape = item.stash.get(TAPE, None)
        return WiretapeFixture(self.ctrl, tape) if self.active and tape else None

    # -- the session -----------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        if (self.ctrl.options.mode in (Mode.RECORD, Mode.ONCE)
                and getattr(config.option, "dist", "no") == "load"):
            # each xdist worker records into a store of its own: the tests of a shared tape
            # must run on one worker, or each would write the tape with its own part only.
            # loadgroup is load for every test without an xdist_group (the tests of each
            # shared tape get one in pytest_collection_modifyitems)
            config.option.dist = "loadgroup"

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        opts = self.ctrl.options
        where = f"tapes in {opts.tapes_dir}"
        if self.ctrl.server is not None:
            return [f"wiretape: {opts.mode}, proxy {self.ctrl.server.proxy_url}, {where}"]
        return [f"wiretape: {opts.mode}, {where}"]

    # A wrapper that goes first: the groups exist before xdist's worker names each test by
    # its group (in a hook of its own), and the names are checked after it has.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> Generator[None]:
        grouped = self._group_shared_tapes(config, items)
        yield
        if grouped:
            _name_by_group(items)

    def _group_shared_tapes(self, config: pytest.Config, items: list[pytest.Item]) -> bool:
        """Give the tests of each shared tape one xdist group, so that one worker records
        them all; True in a worker that schedules by group."""
        if (self.ctrl.options.mode not in (Mode.RECORD, Mode.ONCE)
                or not config.pluginmanager.hasplugin("xdist")):
            return False
        for item in items:
            try:
                tape = marker_options(item.iter_markers("wiretape")).tape
            except MarkerError:
                continue
            if tape is not None:
                item.add_marker(pytest.mark.xdist_group(name=f"wiretape-{tape}"))
        if not (os.environ.get("PYTEST_XDIST_WORKER") and getattr(
                config.known_args_namespace, "dist", "no") in ("no", "load", "loadgroup")):
            return False
        # a worker parses the command line again, not the controller's options: it would not
        # know of the switch to loadgroup made in pytest_configure
        config.option.loadgroup = True
        return True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Serve is ready before any test runs. Redaction is the proxy's, for every tape:
        names that markers ask for are added to the session's (serve restarts with them, on
        the same ports, before any test)."""
        if not self.active:
            return
        try:
            self.ctrl.ready()
        except (ServeError, OSError) as e:
            raise pytest.UsageError(f"wiretape: cannot start the proxy: {e}") from e
        wanted: dict[str, set[str]] = {}
        for item in session.items:
            try:
                opts = marker_options(item.iter_markers("wiretape"))
            except MarkerError:
                continue  # reported by the test itself
            for key, names in opts.redact.items():
                wanted.setdefault(key, set()).update(names)
        if not wanted:
            return
        try:
            self.ctrl.want_redaction({k: sorted(v) for k, v in wanted.items()})
        except (ServeError, OSError) as e:
            raise pytest.UsageError(
                f"wiretape: cannot restart the proxy with the markers' redaction ({e}); "
                "give the names in the ini options wiretape_redact_* instead") from e

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None]:
        try:
            return (yield)
        finally:
            if self.ctrl.server is not None:
                self.ctrl.server.signal_stop()  # its shutdown overlaps the summary

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.ctrl.stop()
        self.env.restore()

    # -- each test -------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Switch the proxy to the test's tape before any fixture of the test is set up."""
        if not self.active:
            return
        try:
            marker = marker_options(item.iter_markers("wiretape"))
            item.stash[TAPE] = self.ctrl.begin(item.nodeid, item.path, marker)
        except (MarkerError, ServeError, OSError) as e:
            pytest.fail(f"wiretape: {e}", pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None]:
        """A test that passed but whose requests missed fails here, with the misses
        explained as its failure; one that failed keeps its own failure and gets them as
        a section of its report."""
        tape = item.stash.get(TAPE, None)
        if not self.active or tape is None:
            return (yield)
        try:
            result = yield
        except BaseException:
            failure = _checked(item, self.ctrl, tape)
            if failure is not None:
                item.stash[CALL_FAILURE] = failure
            raise
        failure = _checked(item, self.ctrl, tape)
        if failure is not None:
            headline, text = failure
            # the first line is what the short test summary shows
            pytest.fail(text if text.startswith(headline) else f"{headline}\n\n{text}",
                        pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        tape = item.stash.get(TAPE, None)
        if not self.active or tape is None or report.when == "setup":
            return report
        ctrl = self.ctrl
        info: dict[str, Any] = {"tape": tape.name, "file": _relative(tape.file, item.config),
                                "misses": [], "written": False, "drift": None}
        if report.when == "call":
            failure = item.stash.get(CALL_FAILURE, None)
            if failure is not None and report.failed:
                _add_to_failure(report, failure[1], failure[0])
            if tape.drift and _failing(tape.drift):
                info["drift"] = drift_text(tape.drift)
        else:  # teardown: requests of the fixtures' teardown, then the tape file
            try:
                ctrl.poll_misses(tape)
                text = _explanation(item, tape)
                if text is not None:
                    if report.failed:
                        _add_to_failure(report, text, None)
                    else:
                        report.outcome = "failed"
                        report.longrepr = text
                info["written"] = ctrl.finish(tape)
            except (ServeError, OSError, TimeoutError) as e:
                report.outcome = "failed"
                report.longrepr = f"wiretape: {e}"
        info["misses"] = tape.misses[tape.summarized:]
        tape.summarized = len(tape.misses)
        report.wiretape = info  # type: ignore[attr-defined]  # travels to the xdist controller
        return report

    # -- the summary (in the xdist controller: from the workers' reports) -----------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info = getattr(report, "wiretape", None)
        if not isinstance(info, dict):
            return
        if info.get("misses"):
            self.missed.setdefault(report.nodeid, []).extend(info["misses"])
        if info.get("written"):
            self.written.add(str(info.get("file")))
        if info.get("drift") and report.nodeid not in self.drift:
            self.drift.append(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.missed or self.written or self.drift):
            return
        tr = terminalreporter
        tr.section("wiretape")
        if self.missed:
            for line in summary_lines(self.missed):
                tr.write_line(line)
        if self.drift:
            tr.write_line(f"the live services drifted from the tapes of {len(self.drift)} "
                          "test(s) (--wiretape-audit):")
            for nodeid in self.drift:
                tr.write_line(f"  {nodeid}")
        if self.written:
            n = len(self.written)
            tr.write_line(f"{n} tape{'s' if n != 1 else ''} written under "
                          f"{self.ctrl.options.tapes_dir}")


def _failing(drift: dict[str, Any]) -> bool:
    return drift.get("status") == "failed" or bool((drift.get("summary") or {}).get("failing"))


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


def _explanation(item: pytest.Item, tape: TapeInUse) -> str | None:
    """The misses not explained in a report yet, explained; None if there are none."""
    fresh = tape.misses[tape.explained:]
    tape.explained = len(tape.misses)
    if not fresh:
        return None
    return explain_misses(fresh, tape=tape.name, file=_relative(tape.file, item.config),
                          file_existed=tape.existed, nodeid=item.nodeid)


def _headline(tape: TapeInUse, start: int) -> str:
    """The short test summary's words for a test that missed."""
    first = tape.misses[start]["request"]
    more = len(tape.misses) - start - 1
    return (f"wiretape: {first['method']} {first['url']} matched no recording"
            + (f" (and {more} more)" if more else ""))


def _check_after_call(item: pytest.Item, ctrl: Controller,
                      tape: TapeInUse) -> tuple[str, str] | None:
    """After the test function: its misses and its tape's audit, as a failure's headline
    and text (None: nothing fails the test). Lesser drift is a warning."""
    ctrl.poll_misses(tape)
    texts = []
    start = tape.explained
    explained = _explanation(item, tape)
    if explained is not None:
        texts.append((_headline(tape, start), explained))
    if tape.audit_id is not None:
        tape.drift = ctrl.audit_result(tape.audit_id)
        summary = tape.drift.get("summary") or {}
        text = drift_text(tape.drift)
        if _failing(tape.drift):
            head = f"wiretape audit: the live services drifted from tape {tape.name}"
            texts.append((head, f"{head}\n{text}"))
        elif summary.get("drifted"):
            item.warn(WiretapeDriftWarning(f"tape {tape.name}: {text}"))
    if not texts:
        return None
    return texts[0][0], "\n\n".join(body for _head, body in texts)


def _checked(item: pytest.Item, ctrl: Controller, tape: TapeInUse) -> tuple[str, str] | None:
    try:
        return _check_after_call(item, ctrl, tape)
    except (ServeError, OSError, TimeoutError) as e:
        return f"wiretape: {e}", f"wiretape: {e}"


def _add_to_failure(report: pytest.TestReport, text: str, headline: str | None) -> None:
    """Put the explanation in a failed report, and the miss first in its summary line."""
    report.sections.append(("wiretape", text))
    crash = getattr(report.longrepr, "reprcrash", None)
    if headline and crash is not None and hasattr(crash, "message"):
        crash.message = f"{headline}; {crash.message}"


class WiretapeFixture:
    """The `wiretape` fixture: the session's proxy and the test's tape."""

    def __init__(self, ctrl: Controller, tape: TapeInUse) -> None:
        assert ctrl.server is not None
        self._ctrl = ctrl
        self._tape = tape
        self.proxy_url: str = ctrl.server.proxy_url
        self.admin_url: str = ctrl.server.api().url
        self.ca_cert: Path = ctrl.server.ca_cert

    @property
    def tape(self) -> str:
        """The test's tape: its name in the proxy's store (replaying a test that has no
        tape file, the proxy answers from an empty tape instead)."""
        return self._tape.name

    @property
    def tape_file(self) -> Path:
        return self._tape.file

    @property
    def mode(self) -> str:
        """What the proxy does for this test: record, replay or new_episodes (once, with
        a tape file: replay, and record what the tape lacks)."""
        return str(self._tape.action)

    @property
    def recording(self) -> bool:
        return self._tape.action is not Action.REPLAY

    def recordings(self) -> list[dict[str, Any]]:
        """The tape's recordings (GET /api/recordings items), oldest first, once the proxy
        has stored what this test recorded so far."""
        return self._ctrl.recordings(self._tape)

    def misses(self) -> list[dict[str, Any]]:
        """The requests of this test that matched no recording (GET /api/misses items),
        oldest first. They still fail the test."""
        self._ctrl.poll_misses(self._tape)  # reading them does not excuse them
        return list(self._tape.misses)

    def reset(self) -> None:
        """Start the replay sequences over (a key recorded twice answers its first
        recording again)."""
        self._ctrl.api().call("POST", "/api/replay/reset")


def _name_by_group(items: list[pytest.Item]) -> None:
    """What xdist's worker does for loadgroup, where it did not take: `nodeid@group`, by
    which the controller keeps a group on one worker. (pytest 9.2 keeps a node's id in
    `_id`; xdist 3.8 still sets the older `_nodeid`, which pytest no longer reads.)"""
    for item in items:
        groups = sorted({str(m.kwargs.get("name", m.args[0] if m.args else "default"))
                         for m in item.iter_markers("xdist_group")})
        if not groups or "@" in item.nodeid:
            continue
        name = f"{item.nodeid}@{'_'.join(groups)}"
        if hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(name)
        else:
            item._nodeid = name  # type: ignore[attr-defined]  # pytest < 9.2
