"""`wiretape diff` and `wiretape audit`: parse the command line, hand off to drift/, report."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import click
from wiretape.drift.kinds import DEFAULT_FAIL_ON, DriftClass, ReportFormat
from wiretape.storage.db import make_sessions

from .errors import EXIT_USAGE, env
from .settings import check_tape_name, split_names
from .store import db_option, open_store

EXIT_DIFFERS = 1

_formats = click.Choice([f.value for f in ReportFormat], case_sensitive=False)
_fail_on = click.Choice([c.value for c in DriftClass], case_sensitive=False)


def _write(text: str, output: str | None) -> None:
    if output in (None, "-"):
        click.echo(text, nl=False)
        return
    assert output is not None
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)


@click.command()
@click.argument("tape_a")
@click.argument("tape_b")
@click.option("--format", "fmt", type=_formats, default=ReportFormat.TEXT.value, show_default=True,
              help="text (read at a glance), json, or junit (CI)")
@click.option("--strict", is_flag=True, default=False,
              help="keep noise (timestamps, request ids) in the verdict")
@click.option("-o", "--output", default=None,
              help="write the report to this file (the text summary still goes to stdout)")
@db_option
def diff(tape_a: str, tape_b: str, fmt: str, strict: bool, output: str | None, db: str) -> None:
    """Diff tape TAPE_A (baseline) against TAPE_B (branch), paired by match key.

    Exit 0 when they are the same, 1 when something differs, 2 on a usage error."""
    from wiretape.drift import compare
    from wiretape.drift.render import render_junit, render_text

    a, b = check_tape_name(tape_a), check_tape_name(tape_b)
    engine = open_store(db)
    try:
        with make_sessions(engine)() as s:
            result = compare.tape_diff(s, a, b, strict)
    finally:
        engine.dispose()
    form = ReportFormat(fmt.lower())
    if form is ReportFormat.JSON:
        import json

        report = json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
    elif form is ReportFormat.JUNIT:
        report = render_junit(result, f"wiretape diff {a} {b}")
    else:
        report = render_text(result)
    _write(report, output)
    if output not in (None, "-") and form is not ReportFormat.TEXT:
        click.echo(render_text(result), nl=False)
    sys.exit(0 if result.identical else EXIT_DIFFERS)


@click.command()
@click.option("--tape", envvar=env("tape"), show_envvar=True, default="default",
              show_default=True, help="tape to audit")
@click.option("-H", "--header", "headers", multiple=True,
              help="'Name: value' sent with every request, e.g. credentials that redaction "
                   "removed (repeatable; never stored)")
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True,
              help="requests in flight at once")
@click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=10.0,
              show_default=True, help="seconds per request")
@click.option("--format", "fmt", type=_formats, default=ReportFormat.TEXT.value, show_default=True,
              help="text (read at a glance), json, or junit (CI)")
@click.option("--fail-on", type=_fail_on, default=DEFAULT_FAIL_ON.value, show_default=True,
              help="exit 1 on drift at or above this class: breaking > additive > value > latency")
@click.option("--strict", is_flag=True, default=False,
              help="keep noise (timestamps, request ids) in the verdict")
@click.option("--refresh", is_flag=True, default=False,
              help="re-record what drifted (the live answer replaces the recorded one)")
@click.option("--upstream-insecure", is_flag=True, default=False,
              help="do not verify upstream TLS certificates")
@click.option("--upstream-ca", default=None, envvar=env("upstream-ca"), show_envvar=True,
              help="PEM bundle to verify upstream TLS with (else SSL_CERT_FILE/SSL_CERT_DIR, "
                   "else certifi)")
@click.option("--redact-header", multiple=True, envvar=env("redact-header"),
              help="with --refresh: more header names to redact (repeatable)")
@click.option("--redact-query", multiple=True, envvar=env("redact-query"),
              help="with --refresh: more query parameters to redact (repeatable)")
@click.option("--redact-json", multiple=True, envvar=env("redact-json"),
              help="with --refresh: more JSON fields to redact (repeatable)")
@click.option("-o", "--output", default=None,
              help="write the report to this file (the text report still goes to stdout)")
@db_option
def audit(**kw: Any) -> None:
    """Re-send every recorded request of a tape to the live upstream and report drift.

    Each difference from the recording is classified: breaking (field removed, type
    changed, status class changed), additive (new field or header), value (same shape,
    other value) or latency (live slower than 2x recorded). What differs between two live
    answers (timestamps, request ids) is noise, left out unless --strict.

    Exit 0 when nothing drifted at or above --fail-on, 1 when something did, 2 on a usage
    error (unknown tape, bad --header)."""
    from wiretape.drift.audit import AuditOptions, TapeAudit
    from wiretape.storage.models import AuditTrigger
    from wiretape.storage.redact import Redactor

    from .flags import parse_header
    from .tls import check_ca_file, upstream_trust

    tape = check_tape_name(kw["tape"])
    headers = tuple(parse_header(h) for h in kw["headers"])
    ca = check_ca_file("--upstream-ca", kw["upstream_ca"]) if kw["upstream_ca"] else None
    trust = upstream_trust(ca)
    options = AuditOptions(
        headers=headers, concurrency=kw["concurrency"], timeout=kw["timeout"],
        strict=kw["strict"], fail_on=DriftClass(kw["fail_on"].lower()), refresh=kw["refresh"],
        verify_tls=not kw["upstream_insecure"], ca_file=trust.ca_file, ca_dir=trust.ca_dir,
    )
    redactor = Redactor.with_extra(split_names(kw["redact_header"]),
                                   split_names(kw["redact_query"]),
                                   split_names(kw["redact_json"]))
    engine = open_store(kw["db"])
    try:
        sessions = make_sessions(engine)
        job = TapeAudit.begin(sessions, tape, options, trigger=AuditTrigger.CLI,
                              redactor=redactor)
        with _progress(job.planned) as tick:
            try:
                report = asyncio.run(job.run(tick))
            except KeyboardInterrupt as e:  # the audit is stored as failed ("interrupted")
                raise click.exceptions.Abort() from e
    finally:
        engine.dispose()
    fmt = ReportFormat(kw["fmt"].lower())
    _write(report.render(fmt), kw["output"])
    if kw["output"] not in (None, "-") and fmt is not ReportFormat.TEXT:
        click.echo(report.render(ReportFormat.TEXT), nl=False)
    sys.exit(EXIT_DIFFERS if report.failing else 0)


class _progress:
    """A tqdm bar on stderr when stderr is a terminal; nothing otherwise (CI logs)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty() and self.total:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="auditing", unit="req", file=sys.stderr,
                            leave=False)
            return self.bar.update
        return lambda _n: None

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["EXIT_DIFFERS", "EXIT_USAGE", "audit", "diff"]
