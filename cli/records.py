"""`wiretape ls`, `export` and `import`: recordings and tapes from the command line."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from wiretape.storage import db

from .errors import UserError
from .settings import check_tape_name, split_names
from .store import db_option, open_store


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


@click.command(name="ls")
@db_option
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


@click.command(name="export")
@db_option
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


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@db_option
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
