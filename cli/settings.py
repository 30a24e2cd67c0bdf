"""Typed, validated settings for `wiretape serve` (kept apart from the server's lifecycle).

Each flag is parsed once, by its click type, into the value the server uses; a bad value
is a SettingsError naming the flag (one line and exit 2, like every WiretapeError).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click
from wiretape.proxy.options import LATENCY_MS, UPSTREAM_TIMEOUT_S, check_range
from wiretape.storage import db
from wiretape.storage.errors import InvalidInput, WiretapeError
from wiretape.storage.exchange import Mode, OnMiss, SequencePolicy
from wiretape.storage.matching import MatchRules, parse_body_path
from wiretape.storage.redact import Redactor


class SettingsError(InvalidInput):
    """A flag or WIRETAPE_* variable has a value wiretape cannot use."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

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


def parse_address(flag: str, value: str) -> Address:
    host, sep, port_s = value.strip().rpartition(":")
    if not sep or not port_s.isdigit():
        raise SettingsError(f"{flag} {value!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "0.0.0.0"
    port = int(port_s)
    if not 0 <= port < 65536:
        raise SettingsError(f"{flag} port {port} must be between 0 (any free port) and 65535")
    return Address(host, port)


TAPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_tape_name(name: str) -> str:
    if not TAPE_NAME.match(name) or ".." in name:
        raise SettingsError(
            f"tape name {name!r} must be 1-200 letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    return name


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

class FlagType(click.ParamType):
    """A click type from a parser `(flag, text) -> value` whose errors name the flag; a
    ValueError becomes a SettingsError (one line, exit 2, like every WiretapeError)."""

    def __init__(self, name: str, parse: Callable[[str, str], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default given as its parsed value
        flag = param.opts[0] if param is not None and param.opts else self.name
        try:
            return self._parse(flag, value)
        except WiretapeError:
            raise
        except ValueError as e:
            raise SettingsError(str(e)) from e


def _prefixed(check: Callable[[str], Any]) -> Callable[[str, str], Any]:
    """A parser from a check whose messages do not name the flag (storage's never do)."""
    def parse(flag: str, value: str) -> Any:
        try:
            return check(value)
        except ValueError as e:
            raise SettingsError(f"{flag}: {e}") from e
    return parse


def _body_path(value: str) -> str:
    parse_body_path(value)
    return value


def _duration(flag: str, value: str) -> float:
    from wiretape.storage.audit import parse_duration

    return parse_duration(value, flag)


def _header(flag: str, value: str) -> tuple[str, str]:
    from wiretape.storage.audit import parse_header

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


class EnumChoice(click.Choice[str]):
    """A choice among a StrEnum's values (the user's words), given as the enum member."""

    def __init__(self, enum: type[Mode] | type[OnMiss] | type[SequencePolicy]) -> None:
        super().__init__([e.value for e in enum], case_sensitive=False)
        self.enum = enum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
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
    # the command line's matching rules; None when no matching flag is given (the tape
    # keeps its own)
    matching: MatchRules | None = field(init=False)

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

    @property
    def confdir_path(self) -> str:
        return os.path.expanduser(self.confdir)

    def redactor(self) -> Redactor:
        """The one Redactor of a `serve` process: the defaults and the --redact-* names."""
        return Redactor.with_extra(self.redact_headers, self.redact_query, self.redact_json)


def pass_settings(command: Callable[[ServeSettings], None]) -> Callable[..., None]:
    """Hand a click command its flags as one ServeSettings: each flag's name (its `dest`)
    is the field it fills."""

    @functools.wraps(command)
    def with_settings(**flags: Any) -> None:
        command(ServeSettings(**flags))

    return with_settings
