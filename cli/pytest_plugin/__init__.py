"""The pytest plugin: `pytest --wiretape=record|replay|once|off`, one HAR tape per test.

Registered through the `pytest11` entry point `wiretape` (`-p no:wiretape` turns it off)
and inactive unless a mode is asked for: then it imports nothing but the standard library,
starts nothing and leaves the environment alone. Active, it starts one `wiretape serve` per
session (per xdist worker) before the suite's conftest files are imported, so that clients
built at import time see the proxy too.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .explain import drift_text, explain_misses, summary_lines
from .runner import (
    DRIFT_CLASSES,
    Action,
    Controller,
    Mode,
    Options,
    TestTape,
    parse_header,
    parse_serve_args,
)
from .server import EnvPatch, ServeError
from .tapes import REDACT_KEYS, MarkerError, marker_options

__all__ = ["WiretapeDriftWarning", "WiretapeFixture"]

ENV_MODE = "WIRETAPE_PYTEST"
MODES = tuple(m.value for m in Mode)
DEFAULT_TAPES_DIR = "tests/tapes"

CONTROLLER = pytest.StashKey["Controller | None"]()
ENV = pytest.StashKey[EnvPatch]()
TAPE = pytest.StashKey[TestTape]()


class WiretapeDriftWarning(UserWarning):
    """An audit found drift below --wiretape-audit's fail level (additive, value...)."""


# -- options ---------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wiretape", "record and replay HTTP with wiretape")
    group.addoption(
        "--wiretape", dest="wiretape_mode", choices=MODES, default=None,
        help="record: forward and record each test's HTTP into its tape; replay: answer "
             "from the tapes, never touching the network, a miss fails the test; once: "
             "replay the tapes that exist and record what they lack; off (default). "
             f"Also ${ENV_MODE} and the ini option wiretape_mode.",
    )
    group.addoption("--wiretape-tapes", dest="wiretape_tapes", default=None, metavar="DIR",
                    help=f"folder of the HAR tapes (default: {DEFAULT_TAPES_DIR})")
    group.addoption(
        "--wiretape-audit", dest="wiretape_audit", action="store_true", default=False,
        help="replay, and re-send each test's tape to the live services: breaking drift "
             "fails the test, lesser drift is a warning",
    )
    group.addoption("--wiretape-audit-header", dest="wiretape_audit_headers",
                    action="append", default=[], metavar="'NAME: VALUE'",
                    help="header sent with audit requests (credentials redaction removed)")
    for key, what in (("header", "header names"), ("query", "query parameters"),
                      ("json", "JSON fields")):
        group.addoption(f"--wiretape-redact-{key}", dest=f"wiretape_redact_{key}",
                        action="append", default=[], metavar="NAME",
                        help=f"more {what} to redact in every tape of the session")
    group.addoption("--wiretape-serve-args", dest="wiretape_serve_args", default=None,
                    metavar="ARGS", help="more `wiretape serve` flags, e.g. "
                                         "'--upstream-insecure --ignore-host example.org'")
    parser.addini("wiretape_mode", f"record, replay, once or off (--wiretape, ${ENV_MODE})",
                  default="")
    parser.addini("wiretape_tapes_dir", "folder of the HAR tapes, relative to the root "
                  "directory", default=DEFAULT_TAPES_DIR)
    parser.addini("wiretape_serve_args", "more `wiretape serve` flags", type="args",
                  default=[])
    for key in REDACT_KEYS:
        parser.addini(f"wiretape_{key}", f"more {key.split('_')[1]} names to redact",
                      type="linelist", default=[])
    parser.addini("wiretape_audit_fail_on", "drift that fails a test under "
                  "--wiretape-audit: breaking (default), additive, value or latency",
                  default="breaking")


def _mode(config: pytest.Config, ns: Any) -> Mode:
    value = (getattr(ns, "wiretape_mode", None) or os.environ.get(ENV_MODE)
             or config.getini("wiretape_mode") or "off")
    try:
        mode = Mode(str(value).strip().lower())
    except ValueError:
        raise pytest.UsageError(
            f"wiretape mode {value!r} must be record, replay, once or off") from None
    if getattr(ns, "wiretape_audit", False):
        if mode in (Mode.RECORD, Mode.ONCE):
            raise pytest.UsageError("--wiretape-audit replays the tapes: it cannot be used "
                                    f"with --wiretape={mode}")
        mode = Mode.REPLAY
    return mode


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


def _runs_no_tests(ns: Any) -> bool:
    return any(getattr(ns, name, False) for name in (
        "help", "version", "collectonly", "showfixtures", "show_fixtures_per_test",
        "markers", "setuponly", "setupplan"))


def _xdist_controller(ns: Any) -> bool:
    """The process that hands tests to xdist workers and runs none itself."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return False
    return bool(getattr(ns, "numprocesses", None) or getattr(ns, "tx", None))


# -- the session -----------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    """Start serve before the conftest files are imported (they may build HTTP clients that
    read the proxy settings once, at import)."""
    config = early_config
    ns = config.known_args_namespace
    mode = _mode(config, ns)
    config.stash[CONTROLLER] = None
    if mode is Mode.OFF:
        return
    options = _options(config, ns, mode)
    controller = Controller(options)
    config.stash[CONTROLLER] = controller
    config.pluginmanager.register(Summary(controller), "wiretape-summary")
    if _runs_no_tests(ns) or _xdist_controller(ns):
        return
    try:
        server = controller.start()
        environ = server.environ(os.environ)
    except (ServeError, OSError) as e:
        controller.stop()
        raise pytest.UsageError(f"wiretape: cannot start the proxy: {e}") from e
    patch = EnvPatch()
    patch.set(environ)
    config.stash[ENV] = patch


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wiretape(tape=None, *, ignore_query=[], ignore_body_paths=[], match_headers=[], "
        "ignore_host=False, redact_headers=[], redact_query=[], redact_json=[]): the test's "
        "wiretape tape (shared by name) and its matching and redaction options",
    )
    ctrl = config.stash.get(CONTROLLER, None)
    if (ctrl is not None and ctrl.options.mode in (Mode.RECORD, Mode.ONCE)
            and getattr(config.option, "dist", "no") == "load"):
        # each xdist worker records into a store of its own: the tests of a shared tape
        # must run on one worker, or each would write the tape with its own part only.
        # loadgroup is load for every test without an xdist_group (the plugin gives each
        # shared tape's tests one, below)
        config.option.dist = "loadgroup"


def _controller(config: pytest.Config) -> Controller | None:
    ctrl = config.stash.get(CONTROLLER, None)
    return ctrl if ctrl is not None and ctrl.server is not None else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    ctrl = config.stash.get(CONTROLLER, None)
    if ctrl is None:
        return []
    opts = ctrl.options
    where = f"tapes in {opts.tapes_dir}"
    if ctrl.server is not None:
        return [f"wiretape: {opts.mode}, proxy {ctrl.server.proxy_url}, {where}"]
    return [f"wiretape: {opts.mode}, {where}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ctrl = config.stash.get(CONTROLLER, None)
    if ctrl is None or ctrl.options.mode not in (Mode.RECORD, Mode.ONCE):
        return
    if not config.pluginmanager.hasplugin("xdist"):
        return
    # tests sharing a tape must record on one worker (see pytest_configure)
    for item in items:
        try:
            tape = marker_options(item.iter_markers("wiretape")).tape
        except MarkerError:
            continue
        if tape is not None:
            item.add_marker(pytest.mark.xdist_group(name=f"wiretape-{tape}"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Redaction is the proxy's, for every tape: names that markers ask for are added to
    the session's (serve restarts with them, on the same ports, before any test runs)."""
    ctrl = _controller(session.config)
    if ctrl is None:
        return
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
        ctrl.want_redaction({k: sorted(v) for k, v in wanted.items()})
    except (ServeError, OSError) as e:
        raise pytest.UsageError(
            f"wiretape: cannot restart the proxy with the markers' redaction ({e}); give "
            "the names in the ini options wiretape_redact_* instead") from e


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None]:
    try:
        return (yield)
    finally:
        ctrl = _controller(session.config)
        if ctrl is not None and ctrl.server is not None:
            ctrl.server.signal_stop()  # its shutdown overlaps the terminal summary


def pytest_unconfigure(config: pytest.Config) -> None:
    ctrl = config.stash.get(CONTROLLER, None)
    if ctrl is not None:
        ctrl.stop()
    patch = config.stash.get(ENV, None)
    if patch is not None:
        patch.restore()


# -- each test -------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Switch the proxy to the test's tape before any fixture of the test is set up."""
    ctrl = _controller(item.config)
    if ctrl is not None:
        try:
            marker = marker_options(item.iter_markers("wiretape"))
            item.stash[TAPE] = ctrl.begin(item.nodeid, item.path, marker)
        except (MarkerError, ServeError, OSError) as e:
            pytest.fail(f"wiretape: {e}", pytrace=False)


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


def _explanation(item: pytest.Item, tape: TestTape) -> str | None:
    """The misses not explained in a report yet, explained; None if there are none."""
    fresh = tape.misses[tape.explained:]
    tape.explained = len(tape.misses)
    if not fresh:
        return None
    return explain_misses(fresh, tape=tape.name, file=_relative(tape.file, item.config),
                          file_existed=tape.existed, nodeid=item.nodeid)


def _headline(tape: TestTape, start: int) -> str:
    """The short test summary's words for a test that missed."""
    first = tape.misses[start]["request"]
    more = len(tape.misses) - start - 1
    return (f"wiretape: {first['method']} {first['url']} matched no recording"
            + (f" (and {more} more)" if more else ""))


def _check_after_call(item: pytest.Item, ctrl: Controller,
                      tape: TestTape) -> tuple[str, str] | None:
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
        if tape.drift.get("status") == "failed" or summary.get("failing"):
            head = f"wiretape audit: the live services drifted from tape {tape.name}"
            texts.append((head, f"{head}\n{text}"))
        elif summary.get("drifted"):
            item.warn(WiretapeDriftWarning(f"tape {tape.name}: {text}"))
    if not texts:
        return None
    return texts[0][0], "\n\n".join(body for _head, body in texts)


CALL_FAILURE = pytest.StashKey[tuple[str, str]]()  # (headline, text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    """A test that passed but whose requests missed fails here, with the misses explained
    as its failure; one that failed keeps its own failure and gets them as a section."""
    ctrl = _controller(item.config)
    tape = item.stash.get(TAPE, None)
    if ctrl is None or tape is None:
        return (yield)
    try:
        result = yield
    except BaseException:
        failure = _checked(item, ctrl, tape)
        if failure is not None:
            item.stash[CALL_FAILURE] = failure
        raise
    failure = _checked(item, ctrl, tape)
    if failure is not None:
        pytest.fail(failure[1], pytrace=False)
    return result


def _checked(item: pytest.Item, ctrl: Controller, tape: TestTape) -> tuple[str, str] | None:
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    ctrl = _controller(item.config)
    tape = item.stash.get(TAPE, None)
    if ctrl is None or tape is None or report.when == "setup":
        return report
    info: dict[str, Any] = {"tape": tape.name, "file": _relative(tape.file, item.config),
                            "misses": [], "written": False, "drift": None}
    if report.when == "call":
        failure = item.stash.get(CALL_FAILURE, None)
        if failure is not None and report.failed:
            _add_to_failure(report, failure[1], failure[0])
        summary = (tape.drift.get("summary") or {}) if tape.drift else {}
        if tape.drift and (tape.drift.get("status") == "failed" or summary.get("failing")):
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


class Summary:
    """The terminal summary's list, gathered from the tests' reports: registered as a
    plugin of its own so that it also works in the xdist controller, which runs no test
    itself but receives every worker's reports."""

    def __init__(self, ctrl: Controller) -> None:
        self.ctrl = ctrl
        self.missed: dict[str, list[dict[str, Any]]] = {}
        self.written: set[str] = set()
        self.drift: list[str] = []

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


# -- the fixture -----------------------------------------------------------------------------

class WiretapeFixture:
    """The `wiretape` fixture: the session's proxy and the test's tape."""

    def __init__(self, ctrl: Controller, tape: TestTape) -> None:
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


@pytest.fixture
def wiretape(request: pytest.FixtureRequest) -> Iterator[WiretapeFixture]:
    """The session's wiretape proxy and this test's tape (skips when wiretape is off)."""
    ctrl = _controller(request.config)
    tape = request.node.stash.get(TAPE, None)
    if ctrl is None or tape is None:
        pytest.skip("wiretape is off: run with --wiretape=record, replay or once")
    yield WiretapeFixture(ctrl, tape)
