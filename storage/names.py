"""Tape names: the one rule, for the command line, the admin API and the store."""

from __future__ import annotations

import re

from .errors import InvalidInput

# letters, digits, '.', '_' and '-', starting with a letter or digit, never '..' (no path
# tricks when a tape name ends up in a file name), at most TAPE_NAME_MAX characters
TAPE_NAME_PATTERN = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$"
TAPE_NAME_MAX = 200
TAPE_NAME_HELP = (f"1-{TAPE_NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter "
                  "or digit")

_TAPE_NAME = re.compile(TAPE_NAME_PATTERN)


class InvalidTapeName(InvalidInput):
    """A tape name that breaks the rule."""


def check_tape_name(name: str) -> str:
    if len(name) > TAPE_NAME_MAX or _TAPE_NAME.fullmatch(name) is None:
        raise InvalidTapeName(f"tape name {name!r} must be 1-{TAPE_NAME_MAX} letters, digits, "
                              "'.', '_' or '-' and start with a letter or digit")
    return name
