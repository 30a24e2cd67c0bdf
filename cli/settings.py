"""Typed, validated settings for `wiretape serve` (kept apart from the server's lifecycle)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from wiretape.storage import names
from wiretape.storage.exchange import Mode, OnMiss, SequencePolicy


class SettingsError(ValueError):
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
    if not 0 < port < 65536:
        raise SettingsError(f"{flag} port {port} must be between 1 and 65535")
    return Address(host, port)


def check_tape_name(name: str) -> str:
    """The store's one tape-name rule (raises storage.names.InvalidTapeName)."""
    return names.check_tape_name(name)


def check_upstream(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"--upstream {value!r} must be a base URL like http://orders:8080")
    return value.rstrip("/")


def check_regexes(flag: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        try:
            re.compile(v)
        except re.error as e:
            raise SettingsError(f"{flag} {v!r} is not a valid regular expression: {e}") from e
    return values


def split_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeatable name flags also accept comma-separated lists (handy in WIRETAPE_* vars)."""
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


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
    replay_latency: str
    upstream_timeout: str
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

    def __post_init__(self) -> None:
        if not self.admin.is_loopback and not self.token:
            raise SettingsError(
                f"--admin {self.admin} is not a loopback address: set --token "
                "(or WIRETAPE_TOKEN) so the admin API is not open to the network"
            )

    @property
    def confdir_path(self) -> str:
        return os.path.expanduser(self.confdir)

    @property
    def has_matching_flags(self) -> bool:
        return bool(
            self.ignore_query or self.ignore_body_paths or self.match_headers
            or self.match_ignore_host
        )
