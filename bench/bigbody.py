"""A 1 GiB body recorded and replayed through `wiretape serve`: memory and time to first byte.

    .venv/bin/python -m bench.bigbody                 # 1 GiB, about two minutes
    .venv/bin/python -m bench.bigbody --size-mb 200   # smaller, for a quick look

An origin in this process answers `GET /big` (Content-Length) and `GET /big-chunked`
(chunked, no length) after 100 ms of "thinking", as a real service would, with a body made
on the fly (never held whole). The client reads through the proxy and hashes what it gets.
For each of record and replay the wiretape process's RSS is read before (after one small
warm-up request) and at its peak (VmHWM, reset first) until the recording is stored; time to
first byte is from sending the request to the first body byte. Results go to
bench/results/bigbody.md and .json; bench/README.md has the last run's.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import (
    HOST,
    BenchError,
    Proc,
    free_port,
    peak_rss_kb,
    port_open,
    reset_peak_rss,
    rss_kb,
)

ROOT = Path(__file__).resolve().parent
BLOCK = hashlib.sha256(b"wiretape").digest() * (65536 // 32)  # 64 KiB
THINK = 0.1  # seconds the origin takes before it answers


def body_blocks(size: int) -> Any:
    for i in range(0, size, len(BLOCK)):
        # each block differs from the last (a counter up front): nothing repeats exactly
        block = i.to_bytes(8, "big") + BLOCK[8:]
        yield block[: size - i]


class Origin:
    """A raw asyncio HTTP/1.1 origin on a thread of its own."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Origin:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                path = "/" + path.split("/", 3)[3] if path.startswith("http") else path
                await asyncio.sleep(THINK)
                if path == "/small":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif path == "/big":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream"
                                 b"\r\nContent-Length: %d\r\n\r\n" % self.size)
                    for block in body_blocks(self.size):
                        writer.write(block)
                        await writer.drain()
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream"
                                 b"\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for block in body_blocks(self.size):
                        writer.write(b"%x\r\n%b\r\n" % (len(block), block))
                        await writer.drain()
                    writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def fetch(url: str, proxy_port: int | None) -> dict[str, Any]:
    """GET url (through the proxy if given): time to first body byte, total, digest."""
    host, port = (HOST, proxy_port) if proxy_port else (HOST, int(url.split(":")[2].split("/")[0]))
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", url if proxy_port else "/" + url.split("/", 3)[3])
    resp = conn.getresponse()
    first = resp.read1(65536)
    ttfb = time.perf_counter() - t0
    sha = hashlib.sha256(first)
    n = len(first)
    while chunk := resp.read1(1 << 20):
        sha.update(chunk)
        n += len(chunk)
    total = time.perf_counter() - t0
    conn.close()
    return {"status": resp.status, "ttfb_s": round(ttfb, 4), "total_s": round(total, 2),
            "bytes": n, "sha256": sha.hexdigest(),
            "recording": resp.headers.get("Wiretape-Recording")}


def expected_sha(size: int) -> str:
    sha = hashlib.sha256()
    for block in body_blocks(size):
        sha.update(block)
    return sha.hexdigest()


def recordings(admin: int) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{admin}/api/recordings?limit=10") as r:
        return len(json.load(r)["items"])


def serve(work: Path, mode: str, name: str) -> tuple[Proc, int, int]:
    proxy, admin = free_port(), free_port()
    exe = str(Path(sys.executable).parent / "wiretape")
    proc = Proc(name, [exe, "serve", "--mode", mode,
                       "--db", f"sqlite:///{work / 'wiretape.db'}", "--listen",
                       f"{HOST}:{proxy}", "--admin", f"{HOST}:{admin}", "--confdir",
                       str(work / "conf")], cpu=1, log_path=work / f"{name}.log").start()
    deadline = time.monotonic() + 60
    while not (port_open(proxy) and port_open(admin)):
        if not proc.alive() or time.monotonic() > deadline:
            raise BenchError(f"wiretape did not start:\n{proc.log_tail()}")
        time.sleep(0.1)
    return proc, proxy, admin


def measure(proc: Proc, proxy: int, admin: int, url: str, stored: int | None) -> dict[str, Any]:
    """One big GET through wiretape; RSS before and at peak (until `stored` recordings are
    in the store, when recording)."""
    fetch(url.rsplit("/", 1)[0] + "/small", proxy)  # warm-up (and the replay loopback)
    time.sleep(0.5)
    before = rss_kb(proc.pid) or 0
    reset_peak_rss(proc.pid)
    t0 = time.monotonic()
    got = fetch(url, proxy)
    deadline = time.monotonic() + 600
    while stored is not None and recordings(admin) < stored:
        if time.monotonic() > deadline:
            raise BenchError("the recording was not stored in 10 minutes")
        time.sleep(0.2)
    if stored is not None:
        got["stored_after_s"] = round(time.monotonic() - t0, 1)
    peak = peak_rss_kb(proc.pid) or 0
    got.update(rss_before_mb=round(before / 1024, 1), rss_peak_mb=round(peak / 1024, 1),
               rss_growth_mb=round((peak - before) / 1024, 1))
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--out", default=str(ROOT / "results" / "bigbody"))
    args = ap.parse_args(argv)
    size = args.size_mb * 1024 * 1024
    origin = Origin(size).start()
    want = expected_sha(size)
    results: dict[str, Any] = {"size_bytes": size, "think_s": THINK, "points": []}
    with tempfile.TemporaryDirectory(prefix="wiretape-bigbody-") as tmp:
        work = Path(tmp)
        for path in ("/big", "/big-chunked"):
            url = f"http://{HOST}:{origin.port}{path}"
            direct = fetch(url, None)
            rec, proxy, admin = serve(work, "record", f"record{path.replace('/', '-')}")
            n = recordings(admin)
            recorded = measure(rec, proxy, admin, url, n + 2)
            rec.stop()
            rep, proxy, admin = serve(work, "replay", f"replay{path.replace('/', '-')}")
            replayed = measure(rep, proxy, admin, url, None)
            rep.stop()
            for what, point in (("direct", direct), ("record", recorded),
                                ("replay", replayed)):
                if point["sha256"] != want or point["bytes"] != size:
                    raise BenchError(f"{path} {what}: the body came back different")
                point.update(path=path, what=what,
                             ttfb_x_direct=round(point["ttfb_s"] / direct["ttfb_s"], 2))
                results["points"].append(point)
                print(json.dumps(point), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    rows = ["| body | through | first byte | x direct | whole body | stored after | RSS before "
            "| RSS peak | growth |", "|---|---|---|---|---|---|---|---|---|"]
    for p in results["points"]:
        rss = (f"{p['rss_before_mb']} MB | {p['rss_peak_mb']} MB | {p['rss_growth_mb']} MB"
               if "rss_peak_mb" in p else " | | ")
        stored = f"{p['stored_after_s']} s" if "stored_after_s" in p else ""
        rows.append(f"| `{p['path']}` | {p['what']} | {p['ttfb_s'] * 1000:.0f} ms | "
                    f"{p['ttfb_x_direct']}x | {p['total_s']} s | {stored} | {rss} |")
    table = "\n".join(rows)
    out.with_suffix(".md").write_text(
        f"{args.size_mb} MiB body, origin answering after {THINK * 1000:.0f} ms; byte-exact "
        f"every time (SHA-256 checked).\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
