"""The one tree of errors wiretape reports to its users: each class knows how it is shown.

Storage and drift raise these; the admin API renders them once (its exception handler:
`status` and `{"detail": str(exc)}`), the CLI once (one line on stderr, `exit_code`).
Messages are in the user's words and name no CLI flag or HTTP detail: the edge adds those.
They also subclass the builtin that fits (LookupError, ValueError) so that code catching
the builtin keeps working.
"""

from __future__ import annotations

from typing import ClassVar


class WiretapeError(Exception):
    """Something the user can fix or must know; never a bug (those stay tracebacks)."""

    status: ClassVar[int] = 400  # the admin API's HTTP status
    exit_code: ClassVar[int] = 2  # the CLI's exit status (2: usage or input error)


class NotFound(WiretapeError, LookupError):
    """An id or a name that does not exist."""

    status = 404

    def __str__(self) -> str:
        # LookupError's str() of a single argument is that argument; KeyError would quote it
        return str(self.args[0]) if self.args else "not found"


class Conflict(WiretapeError):
    """The request is valid but clashes with what is stored (a name already taken)."""

    status = 409


class InvalidInput(WiretapeError, ValueError):
    """A value wiretape cannot use: a bad rule, path, edit, file or setting."""

    status = 422


class Unavailable(WiretapeError):
    """Something wiretape needs is not there: the database, a port, a file it must write."""

    status = 503
