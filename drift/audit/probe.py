"""The audit's network side: recorded requests re-sent to their live upstreams with httpx."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence

import httpx
from wiretape.storage.bodies import is_streamed
from wiretape.storage.exchange import (
    Exchange,
    Failure,
    FailureKind,
    Headers,
    Request,
    Response,
    Stream,
    Truncation,
    header_value,
)
from wiretape.storage.headers import HOP_BY_HOP
from wiretape.storage.redact import is_redacted

from .options import AuditOptions, Target, answered

# Not forwarded when a recorded request is sent again: hop-by-hop headers, and
# Content-Length and Expect, which httpx handles for the body it sends.
NOT_SENT = HOP_BY_HOP | {"content-length", "expect"}


def request_headers(req: Request, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The recorded request's headers to send again: hop-by-hop ones and REDACTED values
    left out, the extra ones added (replacing recorded headers of the same name)."""
    replaced = {n.lower() for n, _ in extra}
    kept = [(n, v) for n, v in req.headers
            if n.lower() not in NOT_SENT and n.lower() not in replaced and not is_redacted(n, v)]
    return kept + list(extra)


def failure_kind(e: Exception) -> FailureKind:
    """The kind of failure, as the proxy records it (refused, reset, timeout, error)."""
    if isinstance(e, httpx.TimeoutException):
        return FailureKind.TIMEOUT
    # httpx words a refusal "All connection attempts failed"; the OS error is in the chain
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return FailureKind.REFUSED
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return FailureKind.RESET
        cause = cause.__cause__ or cause.__context__
    if "refused" in str(e).lower():
        return FailureKind.REFUSED
    if isinstance(e, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return FailureKind.RESET
    return FailureKind.ERROR


def read_limit(recorded: Exchange) -> int | None:
    """How much of the live body to read: as much as the recording holds when it is a
    stream stored before its end (an endless watch stream would never end here either)."""
    resp = recorded.response
    if resp is None or resp.stream is None or resp.stream.truncated is None:
        return None
    return resp.size


async def send(client: httpx.AsyncClient, req: Request,
               extra: Sequence[tuple[str, str]] = (), limit: int | None = None) -> Exchange:
    """One live exchange for a recorded request. The exchange keeps the recorded request
    (never the extra headers); the response body is kept as sent (not decoded), like the
    proxy records it; with a `limit`, only its first `limit` bytes are read."""
    started_ns = time.time_ns()
    t0 = time.perf_counter()
    try:
        # httpx.Request, not client.build_request: no client default headers (Accept-Encoding,
        # User-Agent) are added to what the recording sent
        live = httpx.Request(req.method, req.url, headers=request_headers(req, extra),
                             content=req.body or None)
        resp = await client.send(live, stream=True)
        head_ms = (time.perf_counter() - t0) * 1000
        try:
            pieces: list[bytes] = []
            chunks: list[tuple[float, int]] = []  # as the proxy keeps a streamed answer's
            size = 0
            async for chunk in resp.aiter_raw():
                pieces.append(chunk)
                chunks.append(((time.perf_counter() - t0) * 1000, len(chunk)))
                size += len(chunk)
                if limit is not None and size >= limit:
                    break
            body = b"".join(pieces)[:limit]
        finally:
            await resp.aclose()
    except httpx.HTTPError as e:
        ms = (time.perf_counter() - t0) * 1000
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return Exchange(req, None, Failure(failure_kind(e), message), started_ns, ms)
    ms = (time.perf_counter() - t0) * 1000
    headers: Headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in resp.headers.raw)
    stream = None
    if chunks and is_streamed(req.method, resp.status_code, header_value(
            headers, "content-type"), header_value(headers, "content-length")):
        # a refresh re-records it with its chunks, as the proxy would have
        truncated = Truncation.CLIENT if limit is not None and size >= limit else None
        stream = Stream(head_ms, tuple(chunks), truncated).fitted(len(body))
    response = Response(resp.status_code, headers, body, resp.reason_phrase, resp.http_version,
                        stream=stream)
    return Exchange(req, response, None, started_ns, ms)


def verification(options: AuditOptions) -> ssl.SSLContext | bool:
    """How live answers' TLS is verified: not at all, against the CA the proxy verifies
    upstreams with (serve's --upstream-ca), or as httpx does by default."""
    if not options.verify_tls:
        return False
    if options.ca_file or options.ca_dir:
        return ssl.create_default_context(cafile=options.ca_file, capath=options.ca_dir)
    return True


async def probe(
    targets: Sequence[Target],
    options: AuditOptions,
    progress: Callable[[int], None] | None = None,
) -> dict[int, list[Exchange]]:
    """Live answers per recording id: one for each, two for the first `noise_probes`
    recordings of each GET/HEAD/OPTIONS endpoint (when the first one got an answer)."""
    tick = progress or (lambda _n: None)
    sem = asyncio.Semaphore(options.concurrency)
    answers: dict[int, list[Exchange]] = {t.id: [] for t in targets}
    done_at: dict[int, float] = {}
    limits = httpx.Limits(max_connections=options.concurrency,
                          max_keepalive_connections=options.concurrency)
    # An explicit transport: HTTP_PROXY and friends are not used (they often point at
    # wiretape itself), while SSL_CERT_FILE / SSL_CERT_DIR still name a private CA.
    transport = httpx.AsyncHTTPTransport(verify=verification(options), trust_env=True,
                                         limits=limits)
    async with httpx.AsyncClient(transport=transport, timeout=options.timeout,
                                 follow_redirects=False) as client:

        async def one(t: Target, not_before: float = 0.0) -> None:
            delay = not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with sem:
                ex = await send(client, t.exchange.request, options.headers,
                                read_limit(t.exchange))
            answers[t.id].append(ex)
            done_at[t.id] = time.monotonic()
            tick(1)

        # tasks start in capture order, so a sequence (pending, then confirmed) is re-sent
        # in the order it was recorded
        await asyncio.gather(*(one(t) for t in targets))
        per_endpoint: dict[str, int] = {}
        second = []
        for t in targets:
            n = per_endpoint.get(t.endpoint, 0)
            if n < options.noise_probes and t.probed_twice and answered(answers[t.id][0]):
                per_endpoint[t.endpoint] = n + 1
                second.append(one(t, done_at[t.id] + options.probe_gap))
        await asyncio.gather(*second)
    return answers


def planned(targets: Sequence[Target], options: AuditOptions) -> int:
    """How many requests `probe` sends at most (for a progress bar)."""
    endpoints: dict[str, int] = {}
    for t in targets:
        if t.probed_twice:
            endpoints[t.endpoint] = min(endpoints.get(t.endpoint, 0) + 1, options.noise_probes)
    return len(targets) + sum(endpoints.values())
