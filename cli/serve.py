"""`wiretape serve`: the mitmproxy master and the admin API on one event loop, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn
from mitmproxy import exceptions, master, options
from mitmproxy.addons import (
    core,
    disable_h2c,
    dns_resolver,
    errorcheck,
    next_layer,
    proxyserver,
    tlsconfig,
    update_alt_svc,
)
from mitmproxy.proxy import mode_servers
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from wiretape.api.app import ApiSettings, create_app
from wiretape.drift.audit import AuditOptions, AuditRunner, audit_every
from wiretape.proxy import dispatch
from wiretape.proxy.addons import Wiretape
from wiretape.proxy.certs import ensure_ca
from wiretape.proxy.workarounds import strict_http1_requests
from wiretape.proxy.writer import Writer
from wiretape.storage import db, har
from wiretape.storage import repository as repo
from wiretape.storage.errors import Unavailable
from wiretape.storage.exchange import Mode
from wiretape.storage.matching import MatchRules
from wiretape.storage.notify import Notifier
from wiretape.storage.redact import Redactor

from . import logscrub
from .settings import Address, ServeSettings, SettingsError

log = logging.getLogger("wiretape.serve")

# Shutdown's bounds: requests in flight get this long to finish (new ones are refused
# at once), then the database this long to take what is queued; what it has not taken by
# then is named in the log, one error line per exchange, and the exit status is 1.
DRAIN_SECONDS = 10.0
WRITE_SECONDS = 20.0


class ProxyMaster(master.Master):
    """mitmproxy with only the addons a recording proxy needs.

    mitmdump's DumpMaster loads 30-odd default addons and mitmproxy walks every one of them
    for every hook of every request: in bench/results/profiles that dispatch was the largest
    single cost (about 40% of bare mitmdump's CPU). None of the others (playback, map
    local/remote, sticky cookies, onboarding...) is reachable from wiretape's flags.
    """

    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts)
        # mitmproxy 8's `add_log` hook: every log record formatted twice and dispatched to
        # every addon through the event loop's self-pipe; none of ours listens
        self._legacy_log_events.uninstall()
        dispatch.install(self)
        strict_http1_requests()  # HTTP/9.9 and garbage get 400 at once (proxy/workarounds.py)
        self.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            dns_resolver.DnsResolver(),
            disable_h2c.DisableH2C(),  # h2c upgrades are not supported by mitmproxy
            update_alt_svc.UpdateAltSvc(),  # reverse mode: keep Alt-Svc pointing at us
            errorcheck.ErrorCheck(),
        )


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns SIGINT/SIGTERM, so the writer
    is flushed before the process exits."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


def prepare_store(settings: ServeSettings, redactor: Redactor) -> None:
    """Migrate (the schema, and the match keys of tapes an older wiretape recorded), then
    publish this process's mode, tape and rules to the shared state."""
    db.ensure_current(settings.db)
    engine = db.make_engine(settings.db)
    try:
        db.ensure_keys_current(engine)
        _publish(engine, settings, redactor)
    except DBAPIError as e:  # e.g. a read-only SQLite file already at the newest schema
        raise Unavailable(db.unavailable_message(settings.db, e)) from e
    finally:
        engine.dispose()


def _publish(engine: Engine, settings: ServeSettings, redactor: Redactor) -> None:
    with db.make_sessions(engine).begin() as s:
        repo.init_state(s, settings.mode, settings.tape, settings.on_miss)
        tape = repo.ensure_tape(s, settings.tape)
        rules = settings.matching
        if rules is not None and rules != MatchRules.from_dict(tape.matching):
            repo.set_matching(s, settings.tape, rules)
        if settings.overwrite and settings.mode is Mode.RECORD:
            n = repo.empty_tape(s, settings.tape)
            log.info("--overwrite: emptied tape %s (%d recordings)", settings.tape, n)
        if settings.tape_file is not None:
            load_tape_file(s, settings, redactor)


def load_tape_file(s: Session, settings: ServeSettings, redactor: Redactor) -> None:
    """--tape-file: the tape becomes exactly what the HAR file holds (so a restart is
    idempotent); the command line's matching flags, if any, still win over the file's."""
    path = settings.tape_file
    assert path is not None
    try:
        tape = har.loads(Path(path).read_bytes())
    except OSError as e:
        raise SettingsError(f"--tape-file {path}: {e.strerror or e}") from e
    except har.HarError as e:
        raise SettingsError(f"--tape-file {path}: {e}") from e
    matching = None if settings.matching is not None else tape.matching
    ids = repo.import_exchanges(
        s, settings.tape, [redactor.exchange(ex) for ex in tape.exchanges], replace=True,
        matching=matching,
    )
    log.info("--tape-file: loaded %d recordings from %s into tape %s",
             len(ids), path, settings.tape)


def mitm_options(settings: ServeSettings) -> dict[str, object]:
    """mitmproxy's and wiretape's options; set once the addons have declared them."""
    mode = f"reverse:{settings.upstream}" if settings.upstream else "regular"
    return dict(
        listen_host=settings.listen.host,
        listen_port=settings.listen.port,
        mode=[mode],
        confdir=settings.confdir_path,
        ssl_insecure=settings.upstream_insecure,
        ssl_verify_upstream_trusted_ca=settings.trust.ca_file,
        ssl_verify_upstream_trusted_confdir=settings.trust.ca_dir,
        ignore_hosts=list(settings.ignore_hosts),
        wiretape_sequence=settings.sequence.value,
        wiretape_replay_latency=settings.replay_latency.ms,
        wiretape_replay_recorded_latency=settings.replay_latency.recorded,
        wiretape_replay_date=settings.replay_date.value,
        wiretape_upstream_timeout=settings.upstream_timeout,
        # Replay must never reach the network: connect upstream only when a request is
        # really forwarded, and do not fetch upstream certificates to mint ours.
        connection_strategy="lazy",
        upstream_cert=False,
    )


def _reason(e: OSError) -> str:
    text = e.strerror or str(e)
    return text[:1].lower() + text[1:]


def _bound_socket(address: Address, flag: str) -> socket.socket:
    """A TCP socket bound to `address` (port 0: a free one), or Unavailable in one line;
    for `fd:N`, the socket inherited."""
    if address.fd is not None:
        return socket.socket(fileno=address.fd)
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every kept-alive admin API response waited 40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # as uvicorn and asyncio do: a port in TIME_WAIT from a previous run is free
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as e:
        sock.close()
        raise Unavailable(f"cannot listen on {address} ({flag}): {_reason(e)}") from e
    return sock


def bound_address(sock: socket.socket) -> Address:
    host, port = sock.getsockname()[:2]
    return Address(str(host), int(port))


class _DropErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


@contextlib.contextmanager
def _inherited_listener(address: Address) -> Generator[None]:
    """For `--listen fd:N`: mitmproxy's TCP server listens on the inherited socket instead
    of opening one (mitmproxy has no option for that; its servers are made by
    AsyncioServerInstance.listen, replaced here while they start)."""
    if address.fd is None:
        yield
        return
    sock = socket.socket(fileno=address.fd)
    original = mode_servers.AsyncioServerInstance.listen

    async def listen(self: mode_servers.AsyncioServerInstance[Any], host: str,
                     port: int) -> list[Any]:
        if self.mode.transport_protocol == "tcp" and port == address.port:
            return [await asyncio.start_server(self.handle_stream, sock=sock)]
        return await original(self, host, port)

    mode_servers.AsyncioServerInstance.listen = listen  # type: ignore[method-assign]
    try:
        yield
    finally:
        mode_servers.AsyncioServerInstance.listen = original  # type: ignore[method-assign]


async def start_proxy_servers(master: ProxyMaster, address: Address) -> Address:
    """Open the proxy's listening socket(s) before `master.run()` does, so that a port in
    use is one line and exit 2 rather than mitmproxy's error check exiting with 1 and every
    task's CancelledError; and so that the port really bound (for port 0) is known."""
    ps = master.addons.get("proxyserver")
    quiet = _DropErrors()  # mitmproxy logs the failure itself; ours says it once, with the flag
    proxy_log = logging.getLogger("mitmproxy.addons.proxyserver")
    proxy_log.addFilter(quiet)
    try:
        with _inherited_listener(address):
            ok = await ps.setup_servers()
    finally:
        proxy_log.removeFilter(quiet)
    if not ok:
        failures = [s.last_exception for s in ps.servers if s.last_exception is not None]
        cause = failures[0] if failures else None
        if isinstance(cause, OSError) and cause.errno is not None:
            # mitmproxy's message repeats the address; the errno's text is what is new
            why = _reason(OSError(cause.errno, os.strerror(cause.errno)))
        else:
            why = str(cause or "unknown error")
        raise Unavailable(f"cannot listen on {address} (--listen): {why}")
    host, port = ps.listen_addrs()[0][:2]
    return Address(str(host), int(port))


async def _serve(settings: ServeSettings, redactor: Redactor,
                 admin_sock: socket.socket) -> int:
    engine = db.make_engine(settings.db)
    sessions = db.make_sessions(engine)
    notifier = Notifier()
    writer = Writer(sessions, redactor, notifier)
    wiretape = Wiretape(sessions, writer, redactor, notifier)
    # the CA before mitmproxy loads it: made here on first start (named for wiretape),
    # and its key files made owner-only even if an older confdir had them readable
    ensure_ca(settings.confdir_path)
    master = ProxyMaster(options.Options())
    master.addons.add(*wiretape.addons)
    try:
        master.options.update(**mitm_options(settings))
    except exceptions.OptionsError as e:
        raise SettingsError(str(e)) from e
    await asyncio.to_thread(wiretape.prepare)
    # listen only once the replay index is loaded: no request is answered from a half state
    proxy_address = await start_proxy_servers(master, settings.listen)
    admin_address = bound_address(admin_sock)
    writer.start()

    api = create_app(
        ApiSettings(
            db_url=settings.db,
            token=settings.token,
            confdir=settings.confdir_path,
            notifier=notifier,
            metrics_source=lambda: {"write_queue_depth": writer.depth,
                                    "recordings_written": writer.written},
            redactor=redactor,
            flush_writes=writer.flushed,
            proxy_address=str(proxy_address),
            admin_address=str(admin_address),
            upstream_ca_file=settings.trust.ca_file,
            upstream_ca_dir=settings.trust.ca_dir,
            # the names the admin address is reached by: its own, and the operator's
            admin_hosts=(settings.admin.host, *settings.admin_hosts),
        )
    )
    server = _ApiServer(
        uvicorn.Config(
            api, host=settings.admin.host, port=settings.admin.port,
            log_level="warning", access_log=False, lifespan="on",
        )
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    proxy_task = asyncio.create_task(master.run(), name="proxy")
    api_task = asyncio.create_task(server.serve(sockets=[admin_sock]), name="admin-api")
    audits = _AuditSchedule(settings, sessions, redactor)
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    # harnesses that pass port 0 read the real ports from this line (format documented in
    # the README) or from GET /api/health
    if not settings.upstream_insecure:
        log.info("upstream TLS verified with %s", settings.trust.describe())
    log.info(
        "wiretape %s: proxy on %s, admin API on http://%s, tape %s, store %s",
        settings.mode, proxy_address, admin_address, settings.tape,
        engine.url.render_as_string(hide_password=True),
    )
    done, _ = await asyncio.wait(
        {proxy_task, api_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
    )
    code = 0
    if stop_task not in done:
        log.error("a server stopped unexpectedly; shutting down")
        code = 1
    await audits.stop()
    server.should_exit = True  # the admin API stops alongside
    if not proxy_task.done():
        # stop listening, refuse what arrives on open connections, let what is in flight
        # finish: every exchange a client got an answer for is queued before the writer's
        # stop marker
        try:
            # a response still streaming is stored as far as it went (marked shutdown)
            # before its connection is closed
            rr = wiretape.record_replay
            await wiretape.drain.shutdown(master, DRAIN_SECONDS,
                                          streaming=lambda: rr.streaming.keys(),
                                          before_close=rr.done)
        except Exception:
            log.exception("closing the proxy's connections failed")
            code = 1
    master.shutdown()
    results = await asyncio.gather(proxy_task, api_task, return_exceptions=True)
    stop_task.cancel()
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            log.error("server failed: %s", r)
            code = 1
    if api_task.done() and not server.started and code == 0:
        code = 1
    # every captured exchange is written before the process exits, or named in the log
    pending = writer.depth
    stopped = await asyncio.to_thread(writer.close, WRITE_SECONDS)
    if writer.lost or not stopped:
        code = 1
        log.error("stopped; %d exchanges written in all, %d NOT written (named above)",
                  writer.written, writer.lost if stopped else writer.depth)
    else:
        log.info("stopped; %d exchanges written in all (%d were queued at shutdown)",
                 writer.written, pending)
    engine.dispose()
    return code


class _AuditSchedule:
    """--audit-every: audits of the current tape in the background. Each runs on a thread
    and event loop of its own (AuditRunner), never on the proxy's request path."""

    def __init__(self, settings: ServeSettings, sessions: sessionmaker[Session],
                 redactor: Redactor) -> None:
        self.runner = AuditRunner()
        self.task: asyncio.Task[None] | None = None
        if settings.audit_every is not None:
            options = AuditOptions(headers=settings.audit_headers,
                                   verify_tls=not settings.upstream_insecure,
                                   ca_file=settings.trust.ca_file,
                                   ca_dir=settings.trust.ca_dir)
            self.task = asyncio.create_task(
                audit_every(sessions, settings.audit_every, options, self.runner, redactor),
                name="audit-schedule",
            )
            log.info("auditing the current tape every %gs", settings.audit_every)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        # an audit still running is cancelled and stored as failed
        await asyncio.to_thread(self.runner.stop)


def _check_free(address: Address, flag: str) -> None:
    """Fail before migrating and loading tapes if a fixed port is taken (port 0 never is)."""
    if address.port != 0 and address.fd is None:
        _bound_socket(address, flag).close()


def run(settings: ServeSettings) -> int:
    redactor = settings.redactor()  # the process's one: store, proxy and admin API share it
    logscrub.install(redactor)
    admin_sock = _bound_socket(settings.admin, "--admin")
    try:
        _check_free(settings.listen, "--listen")
        prepare_store(settings, redactor)
        return asyncio.run(_serve(settings, redactor, admin_sock))
    finally:
        admin_sock.close()
