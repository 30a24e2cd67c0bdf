"""The pytest plugin: `pytest --wiretape=record|replay|once|off`, one HAR tape per test.

Registered through the `pytest11` entry point `wiretape` (`-p no:wiretape` turns it off)
and inactive unless a mode is asked for: this module then only adds its options, marker
and fixture, starts nothing, leaves the environment alone and imports nothing of wiretape
but its own light `tapes` module. Active, it loads `session` (the hooks around each test)
and starts one `wiretape serve` per session, per xdist worker, before the suite's conftest
files are imported, so that clients built at import time see the proxy too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .tapes import REDACT_KEYS

if TYPE_CHECKING:
    from .session import WiretapeFixture

__all__ = ["WiretapeDriftWarning"]

ENV_MODE = "WIRETAPE_PYTEST"
MODES = ("record", "replay", "once", "off")
DEFAULT_TAPES_DIR = "tests/tapes"
PLUGIN_NAME = "wiretape-session"


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


def _mode(config: pytest.Config, ns: Any) -> str:
    value = (getattr(ns, "wiretape_mode", None) or os.environ.get(ENV_MODE)
             or config.getini("wiretape_mode") or "off")
    mode = str(value).strip().lower()
    if mode not in MODES:
        raise pytest.UsageError(f"wiretape mode {value!r} must be record, replay, once or off")
    if getattr(ns, "wiretape_audit", False):
        if mode in ("record", "once"):
            raise pytest.UsageError("--wiretape-audit replays the tapes: it cannot be used "
                                    f"with --wiretape={mode}")
        mode = "replay"
    return mode


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
    if mode == "off":
        return
    from .session import SessionPlugin

    plugin = SessionPlugin(config, ns, mode)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    if not (_runs_no_tests(ns) or _xdist_controller(ns)):
        plugin.start()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wiretape(tape=None, *, ignore_query=[], ignore_body_paths=[], match_headers=[], "
        "ignore_host=False, redact_headers=[], redact_query=[], redact_json=[]): the test's "
        "wiretape tape (shared by name) and its matching and redaction options",
    )


@pytest.fixture
def wiretape(request: pytest.FixtureRequest) -> Iterator[WiretapeFixture]:
    """The session's wiretape proxy and this test's tape (skips when wiretape is off)."""
    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    handle = plugin.fixture_for(request.node) if plugin is not None else None
    if handle is None:
        pytest.skip("wiretape is off: run with --wiretape=record, replay or once")
    yield handle
