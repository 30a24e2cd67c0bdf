"""What every `wiretape` command shares: the usage-error exit status, one-line user errors,
and the WIRETAPE_* variable of a flag. (Kept out of cli/main.py, which imports the commands:
a command module importing main would be a cycle.)"""

from __future__ import annotations

import click

EXIT_USAGE = 2


class UserError(click.ClickException):
    """A user mistake: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE


def env(flag: str) -> str:
    """The environment variable of a flag: `--on-miss` is WIRETAPE_ON_MISS."""
    return "WIRETAPE_" + flag.upper().replace("-", "_")
