"""Command-line parsing for `wiretape`; each command hands off to the layer that does the work."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
from wiretape.storage import db
from wiretape.storage.errors import WiretapeError
from wiretape.storage.exchange import Mode, OnMiss, SequencePolicy

from .settings import (
    ServeSettings,
    SettingsError,
    check_regexes,
    check_tape_name,
    check_upstream,
    parse_address,
    split_names,
)

EXIT_USAGE = 2


class UserError(click.ClickException):
    """A user mistake: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE


def env(flag: str) -> str:
    return "WIRETAPE_" + flag.upper().replace("-", "_")


def opt(flag: str, **kw: Any) -> Any:
    """A `serve` flag with its WIRETAPE_* variable (the flag wins over the variable)."""
    return click.option(f"--{flag}", envvar=env(flag), show_envvar=True, **kw)


def _choice(enum: Any) -> click.Choice[str]:
    return click.Choice([e.value for e in enum], case_sensitive=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wiretape")
def cli() -> None:
    """wiretape: record real HTTP dependencies, replay them offline, audit drift."""


@cli.command()
@opt("mode", type=_choice(Mode), default="record", help="record, replay or passthrough")
@opt("tape", default="default", help="tape to record into / replay from")
@opt("db", default="sqlite:///./wiretape.db", help="SQLAlchemy URL of the store")
@opt("listen", default="127.0.0.1:8080", help="proxy address HOST:PORT")
@opt("admin", default="127.0.0.1:8081", help="admin API address HOST:PORT")
@opt("upstream", default=None, help="reverse-proxy mode: forward to this base URL")
@opt("on-miss", type=_choice(OnMiss), default="error", help="replay miss: error, forward, record")
@opt("sequence", type=_choice(SequencePolicy), default="repeat-last",
     help="after the last recording of a key: repeat-last, cycle or strict")
@opt("overwrite", is_flag=True, default=False, help="record mode: empty the tape first")
@opt("token", default=None, help="admin API bearer token")
@opt("confdir", default="~/.wiretape", help="folder of the CA certificate and key")
@opt("upstream-insecure", is_flag=True, default=False,
     help="do not verify upstream TLS certificates")
@opt("ignore-host", multiple=True, help="regex: tunnel these hosts untouched (repeatable)")
@opt("redact-header", multiple=True, help="more header names to redact (repeatable)")
@opt("redact-query", multiple=True, help="more query parameters to redact (repeatable)")
@opt("redact-json", multiple=True, help="more JSON fields to redact (repeatable)")
@opt("replay-latency", default="none", help="replay delay: none, recorded or milliseconds")
@opt("upstream-timeout", default="60",
     help="seconds to wait for an upstream's response head before failing (0: no limit)")
@opt("ignore-query", multiple=True, help="matching: query parameters to ignore (repeatable)")
@opt("ignore-body-path", multiple=True, help="matching: JSON paths to ignore, e.g. $.timestamp")
@opt("match-header", multiple=True, help="matching: headers that take part in the key")
@opt("match-ignore-host", is_flag=True, default=False,
     help="matching: leave scheme, host and port out of the key")
@opt("tape-file", default=None, type=click.Path(dir_okay=False),
     help="load this HAR file into --tape before serving (replacing what the tape held)")
@opt("audit-every", default=None,
     help="audit the current tape against the live upstreams this often: 30s, 15m, 24h, 1d")
@opt("audit-header", multiple=True,
     help="'Name: value' sent with scheduled audits' requests (credentials; repeatable)")
@opt("log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
def serve(**kw: Any) -> None:
    """Run the recording/replay proxy and the admin API."""
    from .flags import parse_duration, parse_header

    try:
        settings = ServeSettings(
            mode=Mode(kw["mode"].lower()),
            tape=check_tape_name(kw["tape"]),
            db=_url(kw["db"]),
            listen=parse_address("--listen", kw["listen"]),
            admin=parse_address("--admin", kw["admin"]),
            upstream=check_upstream(kw["upstream"]),
            on_miss=OnMiss(kw["on_miss"].lower()),
            sequence=SequencePolicy(kw["sequence"].lower()),
            overwrite=kw["overwrite"],
            token=kw["token"] or None,
            confdir=kw["confdir"],
            upstream_insecure=kw["upstream_insecure"],
            ignore_hosts=check_regexes("--ignore-host", kw["ignore_host"]),
            redact_headers=split_names(kw["redact_header"]),
            redact_query=split_names(kw["redact_query"]),
            redact_json=split_names(kw["redact_json"]),
            replay_latency=kw["replay_latency"],
            upstream_timeout=kw["upstream_timeout"],
            ignore_query=split_names(kw["ignore_query"]),
            ignore_body_paths=tuple(kw["ignore_body_path"]),
            match_headers=split_names(kw["match_header"]),
            match_ignore_host=kw["match_ignore_host"],
            log_level=kw["log_level"],
            audit_every=parse_duration(kw["audit_every"], "--audit-every")
            if kw["audit_every"] else None,
            audit_headers=tuple(parse_header(h, "--audit-header") for h in kw["audit_header"]),
            tape_file=kw["tape_file"],
        )
        from wiretape.proxy.addon import parse_latency, parse_upstream_timeout

        parse_latency(settings.replay_latency)
        parse_upstream_timeout(settings.upstream_timeout)
    except ValueError as e:
        raise UserError(str(e)) from e
    setup_logging(settings.log_level)
    from wiretape.proxy.dispatch import skip_default_addons_import

    skip_default_addons_import()
    from . import serve as serve_mod

    try:
        code = serve_mod.run(settings)
    except (SettingsError, db.InvalidDatabaseURL) as e:
        raise UserError(str(e)) from e
    sys.exit(code)


@cli.group(name="db")
def db_group() -> None:
    """Schema migrations of the store (Alembic)."""


db_option = click.option("--db", envvar="WIRETAPE_DB", default="sqlite:///./wiretape.db",
                       show_envvar=True, help="SQLAlchemy URL of the store")


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


def open_store(url: str) -> Any:
    """An engine on the store, migrated first (like `serve`, these commands bring the schema
    up to date, so they work on a new database file)."""
    url = _url(url)
    db.ensure_current(url)
    return db.make_engine(url)


def _url(value: str) -> str:
    return db.check_url(value, "--db")  # InvalidDatabaseURL names the flag


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
    # ls, export and import (cli/records.py), diff and audit (cli/drift.py) import
    # UserError and the shared options from here
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
