"""Values of flags more than one command reads: `Name: value` headers and durations."""

from __future__ import annotations

import re

from wiretape.storage.errors import InvalidInput
from wiretape.storage.headers import InvalidHeader, check_header, is_token


class InvalidDuration(InvalidInput):
    """A duration flag that is not a number with s, m, h or d."""


def parse_header(text: str, flag: str = "--header") -> tuple[str, str]:
    """`Authorization: Bearer x` -> ("Authorization", "Bearer x")."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not is_token(name):
        raise InvalidHeader(f"{flag} {text!r} must be 'Name: value', e.g. "
                            "'Authorization: Bearer …'")
    try:
        return check_header(name, value.strip())
    except InvalidHeader as e:
        raise InvalidHeader(f"{flag} {text!r}: {e}") from e


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*\Z", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, flag: str) -> float:
    """`30s`, `15m`, `24h`, `1d` (or plain seconds) -> seconds."""
    m = _DURATION.match(text or "")
    seconds = float(m.group(1)) * _UNIT[m.group(2).lower()] if m else 0.0
    if seconds <= 0:
        raise InvalidDuration(f"{flag} {text!r} must be a positive number with s, m, h or d, "
                              "e.g. 30s, 15m, 24h, 1d")
    return seconds
