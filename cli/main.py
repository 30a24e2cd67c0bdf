"""Command-line parsing for `wiretape`; each command hands off to the layer that does the work."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
from wiretape.storage import db
from wiretape.storage.errors import WiretapeError

from .errors import EXIT_USAGE, UserError
from .settings import ServeSettings, opt, serve_flags
from .store import check_db_url as _url
from .store import db_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wiretape")
def cli() -> None:
    """wiretape: record real HTTP dependencies, replay them offline, audit drift."""


@cli.command()
@serve_flags
def serve(settings: ServeSettings) -> None:
    """Run the recording/replay proxy and the admin API."""
    setup_logging(settings.log_level)
    from wiretape.proxy.dispatch import skip_default_addons_import

    skip_default_addons_import()
    from . import serve as serve_mod

    sys.exit(serve_mod.run(settings))


@cli.group(name="db")
def db_group() -> None:
    """Schema migrations of the store (Alembic)."""


@db_group.command()
@db_option
def upgrade(**kw: Any) -> None:
    """Upgrade the store to the newest schema."""
    url = _url(kw["db"])
    db.upgrade(url)
    click.echo(f"upgraded to {db.current_revision(url)}")


@db_group.command()
@click.argument("revision")
@db_option
def downgrade(revision: str, **kw: Any) -> None:
    """Downgrade the store to REVISION (e.g. 0001, or base)."""
    url = _url(kw["db"])
    try:
        db.downgrade(url, revision)
    except Exception as e:  # alembic raises CommandError / KeyError-like for unknown revs
        if e.__class__.__name__ in ("CommandError", "ResolutionError", "RevisionError"):
            raise UserError(f"cannot downgrade to {revision!r}: {e}") from e
        raise
    click.echo(f"downgraded to {db.current_revision(url) or 'base'}")


@cli.command()
@opt("confdir", default="~/.wiretape", help="folder of the CA certificate and key")
def ca(confdir: str) -> None:
    """Print the path of the CA certificate clients should trust (created if missing)."""
    from wiretape.proxy.certs import ensure_ca

    click.echo(ensure_ca(os.path.expanduser(confdir)))


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":
        # mitmproxy's per-connection chatter and alembic's plugin list are not what a
        # wiretape user reads
        logging.getLogger("mitmproxy").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _add_commands() -> None:
    # ls, export and import (cli/records.py), diff and audit (cli/drift.py)
    from . import drift, records

    for command in (records.ls, records.export_cmd, records.import_cmd, drift.diff,
                    drift.audit):
        cli.add_command(command)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's usage errors become one line on stderr and exit 2."""
    try:
        cli.main(args=argv, prog_name="wiretape", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("wiretape: aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        click.echo(f"wiretape: error: {e.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        click.echo(f"wiretape: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except WiretapeError as e:  # raised by storage or drift: the one place it is shown
        click.echo(f"wiretape: error: {e}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:
        click.echo(f"wiretape: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "),
                   err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(0)


if __name__ == "__main__":
    main()
