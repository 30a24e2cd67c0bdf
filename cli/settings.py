"""Typed, validated settings for `wiretape serve` (kept apart from the server's lifecycle).

Each flag is parsed once, by its click type, into the value the server uses; a bad value
is a SettingsError naming the flag (one line and exit 2, like every WiretapeError).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import click
from wiretape.api.guard import host_name, is_ip_literal
from wiretape.proxy.options import LATENCY_MS, UPSTREAM_TIMEOUT_S, ReplayDate, check_range
from wiretape.storage import db
from wiretape.storage.errors import InvalidInput, WiretapeError
from wiretape.storage.exchange import Mode, OnMiss, SequencePolicy
from wiretape.storage.matching import MatchRules, parse_body_path
from wiretape.storage.names import check_tape_name as _check_tape_name
from wiretape.storage.redact import Redactor

from .errors import env
from .flags import parse_duration, parse_header
from .tls import UpstreamTrust, check_ca_file, upstream_trust

FC = TypeVar("FC", bound=Callable[..., Any])


class SettingsError(InvalidInput):
    """A flag or WIRETAPE_* variable has a value wiretape cannot use."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int
    fd: int | None = None  # `fd:N`: a listening socket inherited from the parent process

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def inherited_address(flag: str, value: str) -> Address:
    """`fd:N`: a TCP socket the parent bound (socket activation; a test harness that binds
    the ports itself and sets its clients up while serve starts)."""
    text = value.strip()[3:]
    if not text.isdigit():
        raise SettingsError(f"{flag} {value!r}: fd:N takes a file descriptor number")
    fd = int(text)
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        what = "not open" if e.errno == errno.EBADF else "not a socket"
        raise SettingsError(f"{flag} {value!r}: file descriptor {fd} is {what}") from e
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET,
                                                                 socket.AF_INET6):
            raise SettingsError(f"{flag} {value!r}: file descriptor {fd} is not a TCP socket")
        host, port = sock.getsockname()[:2]
    except OSError as e:
        raise SettingsError(f"{flag} {value!r}: file descriptor {fd} is not a bound "
                            f"socket ({e.strerror or e})") from e
    finally:
        sock.detach()  # the descriptor stays open for serve to listen on
    if not port:
        raise SettingsError(f"{flag} {value!r}: the socket on file descriptor {fd} is not "
                            "bound to a port")
    return Address(str(host), int(port), fd)


def parse_address(flag: str, value: str) -> Address:
    if value.strip().lower().startswith("fd:"):
        return inherited_address(flag, value)
    host, sep, port_s = value.strip().rpartition(":")
    if not sep or not port_s.isdigit():
        raise SettingsError(f"{flag} {value!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "0.0.0.0"
    port = int(port_s)
    if not 0 <= port < 65536:
        raise SettingsError(f"{flag} port {port} must be between 0 (any free port) and 65535")
    return Address(host, port)


def check_tape_name(name: str) -> str:
    """The store's one tape-name rule (raises storage.names.InvalidTapeName)."""
    return _check_tape_name(name)


def check_upstream(flag: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{flag} {value!r} must be a base URL like http://orders:8080")
    return value.rstrip("/")


def check_regex(flag: str, value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise SettingsError(f"{flag} {value!r} is not a valid regular expression: {e}") from e
    return value


def split_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeatable name flags also accept comma-separated lists (handy in WIRETAPE_* vars)."""
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


@dataclass(frozen=True, slots=True)
class ReplayLatency:
    """--replay-latency: a fixed delay of each replayed response (0: none), or as long as
    its recording took."""

    ms: float = 0.0
    recorded: bool = False


def parse_latency(flag: str, value: str) -> ReplayLatency:
    v = value.strip().lower()
    if v == "none":
        return ReplayLatency()
    if v == "recorded":
        return ReplayLatency(recorded=True)
    try:
        ms = float(v.removesuffix("ms"))
    except ValueError as e:
        raise SettingsError(
            f"{flag} {value!r} must be none, recorded or a number of milliseconds") from e
    return ReplayLatency(ms=check_range(flag, ms, LATENCY_MS, "ms"))


def parse_timeout(flag: str, value: str) -> float:
    try:
        seconds = float(value.strip().lower().removesuffix("s"))
    except ValueError as e:
        raise SettingsError(
            f"{flag} {value!r} must be a number of seconds (0: wait forever)") from e
    return check_range(flag, seconds, UPSTREAM_TIMEOUT_S, "seconds")


# -- click types: each flag parsed once ----------------------------------------------------

class FlagType[T](click.ParamType[T]):
    """A click type from a parser `(flag, text) -> value` whose errors name the flag; a
    ValueError becomes a SettingsError (one line, exit 2, like every WiretapeError)."""

    def __init__(self, name: str, parse: Callable[[str, str], T]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> T:
        if not isinstance(value, str):
            return cast(T, value)  # a default given as its parsed value
        flag = param.opts[0] if param is not None and param.opts else self.name
        try:
            return self._parse(flag, value)
        except WiretapeError:
            raise
        except ValueError as e:
            raise SettingsError(str(e)) from e


def _prefixed[T](check: Callable[[str], T]) -> Callable[[str, str], T]:
    """A parser from a check whose messages do not name the flag (storage's never do)."""
    def parse(flag: str, value: str) -> T:
        try:
            return check(value)
        except ValueError as e:
            raise SettingsError(f"{flag}: {e}") from e
    return parse


def _body_path(value: str) -> str:
    parse_body_path(value)
    return value


def _duration(flag: str, value: str) -> float:
    return parse_duration(value, flag)


def _ca_file(flag: str, value: str) -> str | None:
    return check_ca_file(flag, value) if value.strip() else None  # empty variable: not set


def _header(flag: str, value: str) -> tuple[str, str]:
    return parse_header(value, flag)


ADDRESS = FlagType("address", parse_address)
TAPE = FlagType("tape", _prefixed(check_tape_name))
DATABASE_URL = FlagType("url", _prefixed(db.check_url))
UPSTREAM = FlagType("url", check_upstream)
REGEX = FlagType("regex", check_regex)
LATENCY = FlagType("latency", parse_latency)
SECONDS = FlagType("seconds", parse_timeout)
DURATION = FlagType("duration", _duration)
HEADER = FlagType("header", _header)
BODY_PATH = FlagType("path", _prefixed(_body_path))
CA_FILE = FlagType("file", _ca_file)


class EnumChoice[E: StrEnum](click.Choice[str]):
    """A choice among a StrEnum's values (the user's words), given as the enum member."""

    def __init__(self, enum: type[E]) -> None:
        super().__init__([e.value for e in enum], case_sensitive=False)
        self.enum = enum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> E:
        if isinstance(value, self.enum):
            return value
        return self.enum(super().convert(value, param, ctx))


def names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Callback of a repeatable name flag: its values, comma-separated lists split."""
    return split_names(values)


def header_names(ctx: click.Context, param: click.Parameter,
                 values: tuple[str, ...]) -> tuple[str, ...]:
    """Callback of --match-header: header names, valid as matching rules take them."""
    found = split_names(values)
    try:
        MatchRules.create(match_headers=found)
    except ValueError as e:
        raise SettingsError(f"{param.opts[0]}: {e}") from e
    return found


def empty_is_none(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An empty WIRETAPE_* variable counts as not set."""
    return value or None


def token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--token: not set when empty; refused when blank or padded with whitespace (a client
    cannot send that in `Authorization: Bearer`, and a blank one protects nothing)."""
    if not value:
        return None
    if not value.strip():
        raise SettingsError(f"{param.opts[0]} is only whitespace: give a real token "
                            "(e.g. openssl rand -hex 16)")
    if value != value.strip():
        raise SettingsError(f"{param.opts[0]} begins or ends with whitespace, which no "
                            "client can send in Authorization: Bearer")
    return value


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?", re.IGNORECASE)


def check_admin_host(flag: str, value: str) -> str:
    """--admin-host: a host name (`wiretape`), optionally with the port it is reached on
    (`wiretape:8081`, the port is not compared), an IP literal, or `*` for any host."""
    text = value.strip()
    if text == "*":
        return text
    name = host_name(text)
    if is_ip_literal(name) or _HOST_NAME.fullmatch(name):
        return name
    raise SettingsError(f"{flag} {value!r} must be a host name such as wiretape or "
                        "wiretape:8081 (or * for any)")


def admin_hosts(ctx: click.Context, param: click.Parameter,
                values: tuple[str, ...]) -> tuple[str, ...]:
    """Callback of --admin-host: names, comma-separated lists split, each checked."""
    return tuple(check_admin_host(param.opts[0], v) for v in split_names(values))


# -- the settings --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ServeSettings:
    mode: Mode
    tape: str
    db: str
    listen: Address
    admin: Address
    upstream: str | None
    on_miss: OnMiss
    sequence: SequencePolicy
    overwrite: bool
    token: str | None
    confdir: str
    upstream_insecure: bool
    ignore_hosts: tuple[str, ...]
    redact_headers: tuple[str, ...]
    redact_query: tuple[str, ...]
    redact_json: tuple[str, ...]
    replay_latency: ReplayLatency
    upstream_timeout: float  # seconds until the response head; 0 waits forever
    ignore_query: tuple[str, ...]
    ignore_body_paths: tuple[str, ...]
    match_headers: tuple[str, ...]
    match_ignore_host: bool
    log_level: str
    tape_file: str | None = None  # a HAR file loaded into `tape` before serving
    # --audit-every: audit the current tape this often, in seconds (None: never), sending
    # these --audit-header headers
    audit_every: float | None = None
    audit_headers: tuple[tuple[str, str], ...] = ()
    # --upstream-ca: a PEM bundle to verify upstream TLS with (checked: it holds certificates)
    upstream_ca: str | None = None
    replay_date: ReplayDate = ReplayDate.RECORDED
    # --admin-host: more host names the admin API answers to (DNS rebinding), "*" any
    admin_hosts: tuple[str, ...] = ()
    # the command line's matching rules; None when no matching flag is given (the tape
    # keeps its own)
    matching: MatchRules | None = field(init=False)
    # what verifies upstream TLS: --upstream-ca, SSL_CERT_FILE/SSL_CERT_DIR or certifi
    trust: UpstreamTrust = field(init=False)

    def __post_init__(self) -> None:
        if not self.admin.is_loopback and not self.token:
            raise SettingsError(
                f"--admin {self.admin} is not a loopback address: set --token "
                "(or WIRETAPE_TOKEN) so the admin API is not open to the network"
            )
        matching = None
        if (self.ignore_query or self.ignore_body_paths or self.match_headers
                or self.match_ignore_host):
            # each flag was checked by its click type: this cannot fail
            matching = MatchRules.create(
                ignore_query=self.ignore_query,
                ignore_body_paths=self.ignore_body_paths,
                match_headers=self.match_headers,
                ignore_host=self.match_ignore_host,
            )
        object.__setattr__(self, "matching", matching)
        object.__setattr__(self, "trust", upstream_trust(self.upstream_ca))

    @property
    def confdir_path(self) -> str:
        return os.path.expanduser(self.confdir)

    def redactor(self) -> Redactor:
        """The one Redactor of a `serve` process: the defaults and the --redact-* names."""
        return Redactor.with_extra(self.redact_headers, self.redact_query, self.redact_json)


def opt(flag: str, *dest: str, **kw: Any) -> Callable[[FC], FC]:
    """A flag with its WIRETAPE_* variable (the flag wins over the variable); `dest`, if
    given, is the ServeSettings field it fills (else the flag's name does)."""
    kw.setdefault("envvar", env(flag))
    return click.option(f"--{flag}", *dest, show_envvar=True, **kw)


SERVE_FLAGS = (
    opt("mode", type=EnumChoice(Mode), default="record", help="record, replay or passthrough"),
    opt("tape", type=TAPE, default="default", help="tape to record into / replay from"),
    opt("db", type=DATABASE_URL, default="sqlite:///./wiretape.db",
        help="SQLAlchemy URL of the store"),
    opt("listen", type=ADDRESS, default="127.0.0.1:8080",
        help="proxy address HOST:PORT (port 0: a free one), or fd:N (an inherited socket)"),
    opt("admin", type=ADDRESS, default="127.0.0.1:8081",
        help="admin API address HOST:PORT (port 0: a free one), or fd:N"),
    opt("upstream", type=UPSTREAM, default=None,
        help="reverse-proxy mode: forward to this base URL"),
    opt("on-miss", type=EnumChoice(OnMiss), default="error",
        help="replay miss: error, forward, record"),
    opt("sequence", type=EnumChoice(SequencePolicy), default="repeat-last",
        help="after the last recording of a key: repeat-last, cycle or strict"),
    opt("overwrite", is_flag=True, default=False, help="record mode: empty the tape first"),
    opt("token", default=None, callback=token, help="admin API bearer token"),
    # the plural variable reads better for a list; the singular is every flag's rule
    opt("admin-host", "admin_hosts", multiple=True, callback=admin_hosts,
        envvar=["WIRETAPE_ADMIN_HOSTS", env("admin-host")],
        help="another host name the admin API answers to, e.g. wiretape:8081 in compose "
             "(repeatable; * for any)"),
    opt("confdir", default="~/.wiretape", help="folder of the CA certificate and key"),
    opt("upstream-insecure", is_flag=True, default=False,
        help="do not verify upstream TLS certificates"),
    opt("upstream-ca", type=CA_FILE, default=None,
        help="PEM bundle to verify upstream TLS with (else SSL_CERT_FILE/SSL_CERT_DIR, "
             "else the system store)"),
    opt("ignore-host", "ignore_hosts", type=REGEX, multiple=True,
        help="regex: tunnel these hosts untouched (repeatable)"),
    opt("redact-header", "redact_headers", multiple=True, callback=names,
        help="more header names to redact (repeatable)"),
    opt("redact-query", multiple=True, callback=names,
        help="more query parameters to redact (repeatable)"),
    opt("redact-json", multiple=True, callback=names,
        help="more JSON fields to redact (repeatable)"),
    opt("replay-latency", type=LATENCY, default="none",
        help="replay delay: none, recorded or milliseconds"),
    opt("replay-date", type=EnumChoice(ReplayDate), default="recorded",
        help="Date header of replayed responses: recorded, or now (the replay time)"),
    opt("upstream-timeout", type=SECONDS, default="60",
        help="seconds to wait for an upstream's response head before failing (0: no limit)"),
    opt("ignore-query", multiple=True, callback=names,
        help="matching: query parameters to ignore (repeatable)"),
    opt("ignore-body-path", "ignore_body_paths", type=BODY_PATH, multiple=True,
        help="matching: JSON paths to ignore, e.g. $.timestamp"),
    opt("match-header", "match_headers", multiple=True, callback=header_names,
        help="matching: headers that take part in the key"),
    opt("match-ignore-host", is_flag=True, default=False,
        help="matching: leave scheme, host and port out of the key"),
    opt("tape-file", default=None, type=click.Path(dir_okay=False),
        help="load this HAR file into --tape before serving (replacing what the tape held)"),
    opt("audit-every", type=DURATION, default=None,
        help="audit the current tape against the live upstreams this often: 30s, 15m, 24h, 1d"),
    opt("audit-header", "audit_headers", type=HEADER, multiple=True,
        help="'Name: value' sent with scheduled audits' requests (credentials; repeatable)"),
    opt("log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info"),
)


def serve_flags(command: Callable[[ServeSettings], None]) -> Callable[..., None]:
    """`wiretape serve`'s flags, handed to `command` as one ServeSettings."""

    @functools.wraps(command)
    def with_settings(**flags: Any) -> None:
        command(ServeSettings(**flags))

    for flag in reversed(SERVE_FLAGS):  # as if stacked as decorators, in this order
        with_settings = flag(with_settings)
    return with_settings
