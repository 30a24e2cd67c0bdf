"""Command-line parsing for `wiretape`; each command hands off to the layer that does the work."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
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


_db_opt = click.option("--db", envvar="WIRETAPE_DB", default="sqlite:///./wiretape.db",
                       show_envvar=True, help="SQLAlchemy URL of the store")


@db_group.command()
@_db_opt
def upgrade(**kw: Any) -> None:
    """Upgrade the store to the newest schema."""
    url = _url(kw["db"])
    db.upgrade(url)
    click.echo(f"upgraded to {db.current_revision(url)}")


@db_group.command()
@click.argument("revision")
@_db_opt
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


# -- recordings and tapes: ls, export, import ------------------------------------------------

def _tape_opt(required: bool) -> Any:
    return click.option("--tape", required=required, default=None,
                        help="tape name" + ("" if required else " (default: every tape)"))


def _when(flag: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise UserError(f"{flag} {value!r} must be an ISO 8601 date or time, "
                        "e.g. 2026-11-02T09:00:00Z") from e


def open_store(url: str) -> Any:
    """An engine on the store, migrated first (like `serve`, these commands bring the schema
    up to date, so they work on a new database file)."""
    url = _url(url)
    db.ensure_current(url)
    return db.make_engine(url)


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Plain aligned columns; the last column (the URL) is cut to the terminal's width."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers[:-1])]
    lead = sum(widths) + 2 * len(widths)
    room = max(20, shutil.get_terminal_size((160, 20)).columns - lead)

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells[:-1], widths, strict=True))]
        last = cells[-1] if len(cells[-1]) <= room else cells[-1][: room - 1] + "…"
        return "  ".join([*out, last]).rstrip()

    return [line(headers), *(line(r) for r in rows)]


@cli.command(name="ls")
@_db_opt
@_tape_opt(required=False)
@click.option("--method", default=None, help="HTTP method")
@click.option("--host", default=None, help="host, exactly")
@click.option("--path", default=None, help="path prefix, e.g. /api/orders")
@click.option("--status", type=click.IntRange(100, 599), default=None, help="response status")
@click.option("-q", "--query", "q", default=None, help="text in the request or response body")
@click.option("--since", default=None, help="recorded at or after (ISO 8601)")
@click.option("--until", default=None, help="recorded before (ISO 8601)")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="at most this many rows, newest first")
def ls(**kw: Any) -> None:
    """List recordings, newest first, with the same filters as GET /api/recordings."""
    from wiretape.storage import repository as repo

    f = repo.RecordingFilter(
        tape=check_tape_name(kw["tape"]) if kw["tape"] is not None else None,
        method=kw["method"], host=kw["host"], path=kw["path"],
        status=kw["status"], q=kw["q"], since=_when("--since", kw["since"]),
        until=_when("--until", kw["until"]),
    )
    engine = open_store(kw["db"])
    try:
        with db.make_sessions(engine)() as s:
            rows = repo.list_recordings(s, f, kw["limit"])
    finally:
        engine.dispose()
    if not rows:
        click.echo("no recordings match", err=True)
        return
    table = [[str(r.id), r.tape, str(r.seq), r.method,
              str(r.status) if r.status is not None else "failed",
              f"{r.duration_ms:.0f}", _size(r.response_size),
              r.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
              r.last_verified_at.strftime("%Y-%m-%d %H:%M") if r.last_verified_at else "never",
              r.last_verdict or "-", r.url] for r in rows]
    headers = ["ID", "TAPE", "SEQ", "METHOD", "STATUS", "MS", "SIZE", "RECORDED (UTC)",
               "VERIFIED (UTC)", "VERDICT", "URL"]
    for text in _table(headers, table, right={0, 2, 4, 5, 6}):
        click.echo(text)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


@cli.command(name="export")
@_db_opt
@_tape_opt(required=True)
@click.option("-o", "--output", default="-", show_default=True,
              help="HAR file to write ('-': standard output)")
def export_cmd(**kw: Any) -> None:
    """Write a tape as a HAR 1.2 file (keep it in git, open it in a browser's dev tools)."""
    from wiretape.api.version import wiretape_version
    from wiretape.storage import har

    name = check_tape_name(kw["tape"])
    target = kw["output"]
    engine = open_store(kw["db"])
    try:
        with db.make_sessions(engine)() as s:
            export = har.TapeExport(s, name, creator_version=wiretape_version())
            if target == "-":
                for chunk in export:
                    sys.stdout.write(chunk)
                return
            tmp = f"{target}.tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as out:
                    out.writelines(export)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            click.echo(f"exported {export.count} recordings of tape {name} to {target}",
                       err=True)
    finally:
        engine.dispose()


@cli.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@_db_opt
@_tape_opt(required=True)
@click.option("--replace", is_flag=True, default=False,
              help="empty the tape first (what `serve --tape-file` does)")
@click.option("--redact-header", multiple=True, help="more header names to redact")
@click.option("--redact-query", multiple=True, help="more query parameters to redact")
@click.option("--redact-json", multiple=True, help="more JSON fields to redact")
def import_cmd(file: str, **kw: Any) -> None:
    """Load a HAR file into a tape: all entries or none."""
    from wiretape.storage import repository as repo
    from wiretape.storage.redact import Redactor

    name = check_tape_name(kw["tape"])
    redactor = Redactor.with_extra(split_names(kw["redact_header"]),
                                   split_names(kw["redact_query"]),
                                   split_names(kw["redact_json"]))
    exchanges, matching = read_tape_file(file, redactor)
    engine = open_store(kw["db"])
    try:
        with db.make_sessions(engine).begin() as s:
            ids = repo.import_exchanges(s, name, exchanges, replace=kw["replace"],
                                        matching=matching)
    finally:
        engine.dispose()
    click.echo(f"imported {len(ids)} recordings into tape {name}")


def read_tape_file(path: str, redactor: Any) -> tuple[list[Any], dict[str, Any] | None]:
    """A HAR file's exchanges, redacted; UserError (one line) when it cannot be used."""
    from wiretape.storage import har

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        tape = har.loads(text)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e
    except (UnicodeDecodeError, har.HarError) as e:
        raise UserError(f"{path}: {e}") from e
    return [redactor.exchange(ex) for ex in tape.exchanges], tape.matching


def _url(value: str) -> str:
    try:
        return db.check_url(value)
    except db.InvalidDatabaseURL as e:
        raise UserError(f"--db: {e}") from e


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


def _add_drift_commands() -> None:
    # `wiretape diff` and `wiretape audit` live in cli/drift.py, which imports UserError
    # from here
    from . import drift

    cli.add_command(drift.diff)
    cli.add_command(drift.audit)


_add_drift_commands()


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
