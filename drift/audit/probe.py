"""The audit's network side: recorded requests re-sent to their live upstreams with httpx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import httpx
from wiretape.storage.exchange import Exchange, Failure, FailureKind, Headers, Request, Response
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


async def send(client: httpx.AsyncClient, req: Request,
               extra: Sequence[tuple[str, str]] = ()) -> Exchange:
    """One live exchange for a recorded request. The exchange keeps the recorded request
    (never the extra headers); the response body is kept as sent (not decoded), like the
    proxy records it."""
    started_ns = time.time_ns()
    t0 = time.perf_counter()
    try:
        # httpx.Request, not client.build_request: no client default headers (Accept-Encoding,
        # User-Agent) are added to what the recording sent
        live = httpx.Request(req.method, req.url, headers=request_headers(req, extra),
                             content=req.body or None)
        resp = await client.send(live, stream=True)
        try:
            body = b"".join([chunk async for chunk in resp.aiter_raw()])
        finally:
            await resp.aclose()
    except httpx.HTTPError as e:
        ms = (time.perf_counter() - t0) * 1000
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return Exchange(req, None, Failure(failure_kind(e), message), started_ns, ms)
    ms = (time.perf_counter() - t0) * 1000
    headers: Headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in resp.headers.raw)
    response = Response(resp.status_code, headers, body, resp.reason_phrase, resp.http_version)
    return Exchange(req, response, None, started_ns, ms)


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
    transport = httpx.AsyncHTTPTransport(verify=options.verify_tls, trust_env=True,
                                         limits=limits)
    async with httpx.AsyncClient(transport=transport, timeout=options.timeout,
                                 follow_redirects=False) as client:

        async def one(t: Target, not_before: float = 0.0) -> None:
            delay = not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with sem:
                ex = await send(client, t.exchange.request, options.headers)
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
