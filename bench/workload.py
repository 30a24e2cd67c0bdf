"""The workloads: a realistic test-suite mix, the replay-scale requests, and priming a tape.

The mix looks like what a service's test suite sends through wiretape: mostly GETs of JSON
resources (some answered gzip-encoded), POSTs and PUTs with JSON bodies of a few KB, a login
that carries a password, payment status polled repeatedly (a key recorded several times, so
replay walks a sequence), and a few requests that were never recorded (misses in replay).

The request list is built here once and written as a Lua table that `mix.lua` loads, so the
same bytes go through every target. Priming sends each distinct request through a recording
proxy (wiretape or `mitmdump -w`) as often as the tape should hold it.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Req:
    method: str
    path: str  # origin-form target: path and query
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    prime_times: int = 1  # how many times priming records it (0: never, a replay miss)
    weight: int = 1  # how many times it appears in one cycle of the mix

    @property
    def kind(self) -> str:
        return f"{self.method} {self.path.split('?')[0].rsplit('/', 1)[0]}"


def _headers(port: int, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (
        ("Host", f"{HOST}:{port}"),
        ("User-Agent", "wiretape-bench/1 (test-suite mix)"),
        ("Accept", "application/json"),
        ("Accept-Encoding", "gzip"),
        ("Authorization", "Bearer bench-secret-token"),
        *extra,
    )


def _order_body(i: int) -> bytes:
    doc = {
        "customer": {"id": i, "email": f"c{i}@example.test", "tier": ["gold", "std"][i % 2]},
        "items": [{"sku": f"SKU-{i:03d}-{k:03d}", "qty": 1 + (i + k) % 4,
                   "note": "gift wrap please" if k % 5 == 0 else ""} for k in range(30 + i % 20)],
        "shipping": {"street": f"{i} Benchmark Road", "city": "Loopback", "zip": f"{i:05d}"},
        "currency": "EUR",
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def mix_requests(port: int) -> list[Req]:
    """The distinct requests of the mix, each with its weight and priming count."""
    json_ct = ("Content-Type", "application/json")
    reqs: list[Req] = []
    for i in range(60):
        reqs.append(Req("GET", f"/api/users/{i}?include=profile&locale=en", _headers(port),
                        weight=2))
    for p in range(1, 21):
        reqs.append(Req("GET", f"/api/catalog?page={p}&sort=price", _headers(port)))
    for i in range(40):
        reqs.append(Req("POST", "/api/orders", _headers(port, json_ct), _order_body(i)))
    for i in range(10):
        body = json.dumps({"name": f"user-{i}", "bio": "lorem ipsum " * (180 + 20 * i),
                           "prefs": {"news": bool(i % 2)}}).encode()
        reqs.append(Req("PUT", f"/api/users/{i}", _headers(port, json_ct), body))
    for i in range(2):
        body = json.dumps({"username": f"user-{i}", "password": "hunter2"}).encode()
        reqs.append(Req("POST", "/api/login", _headers(port, json_ct), body, weight=2))
    for i in range(10):
        # polled three times while the payment settles: a recorded sequence
        reqs.append(Req("GET", f"/api/payments/{i}", _headers(port), prime_times=3, weight=3))
    for i in range(5):
        reqs.append(Req("DELETE", f"/api/sessions/{i}", _headers(port)))
    reqs.append(Req("GET", "/health", _headers(port), weight=5))
    for i in range(3):
        reqs.append(Req("GET", f"/api/unrecorded/{i}?page=2", _headers(port), prime_times=0))
    return reqs


def mix_cycle(port: int, seed: int = 8) -> list[Req]:
    """One cycle of the mix in a fixed shuffled order; wrk walks it round and round."""
    cycle = [r for r in mix_requests(port) for _ in range(r.weight)]
    random.Random(seed).shuffle(cycle)
    return cycle


def describe_mix(port: int = 0) -> dict[str, object]:
    cycle = mix_cycle(port)
    n = len(cycle)
    return {
        "requests_per_cycle": n,
        "distinct_requests": len(mix_requests(port)),
        "share": {
            "GET": round(sum(r.method == "GET" for r in cycle) / n, 3),
            "POST": round(sum(r.method == "POST" for r in cycle) / n, 3),
            "PUT": round(sum(r.method == "PUT" for r in cycle) / n, 3),
            "DELETE": round(sum(r.method == "DELETE" for r in cycle) / n, 3),
            "replay_misses": round(sum(r.prime_times == 0 for r in cycle) / n, 3),
            "sequence_keys": round(sum(r.prime_times > 1 for r in cycle) / n, 3),
        },
        "request_body_bytes": {"max": max(len(r.body) for r in cycle),
                               "mean": round(sum(len(r.body) for r in cycle) / n)},
    }


def _lua_str(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= o < 127:
            out.append(ch)
        else:
            out.append(f"\\{o:03d}")
    out.append('"')
    return "".join(out)


def write_lua_requests(path: Path, port: int) -> Path:
    """The mix as a Lua table of {method, absolute-url, headers, body} for `mix.lua`."""
    lines = ["-- generated by bench/workload.py; one cycle of the realistic mix", "return {"]
    for r in mix_cycle(port):
        hdrs = ", ".join(f"[{_lua_str(k)}]={_lua_str(v)}" for k, v in r.headers)
        body = _lua_str(r.body.decode("latin-1")) if r.body else "nil"
        url = f"http://{HOST}:{port}{r.path}"
        lines.append(f"  {{{_lua_str(r.method)}, {_lua_str(url)}, {{{hdrs}}}, {body}}},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    return path


class PrimeError(RuntimeError):
    """Priming a tape through a recording proxy failed."""


def prime(proxy_port: int, origin_port: int, timeout: float = 60.0) -> int:
    """Send every distinct request of the mix through a recording proxy, as many times as
    the tape should hold it; returns how many exchanges were sent."""
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(HOST, proxy_port, timeout=10)
    sent = 0
    try:
        for r in mix_requests(origin_port):
            for _ in range(r.prime_times):  # bounded: prime_times <= 3
                if time.monotonic() > deadline:
                    raise PrimeError(f"priming took longer than {timeout:.0f}s")
                conn.putrequest(r.method, f"http://{HOST}:{origin_port}{r.path}",
                                skip_host=True, skip_accept_encoding=True)
                for k, v in r.headers:
                    conn.putheader(k, v)
                if r.body or r.method in ("POST", "PUT"):
                    conn.putheader("Content-Length", str(len(r.body)))
                conn.endheaders(r.body or None)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 500:
                    raise PrimeError(f"{r.method} {r.path} answered {resp.status} while priming")
                sent += 1
    finally:
        conn.close()
    return sent
