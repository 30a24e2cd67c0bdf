"""A fast HTTP/1.1 origin for the benchmark: raw asyncio protocol, keep-alive, cached answers.

It must never be the bottleneck, so it parses only what it needs (request line,
Content-Length, Connection, Accept-Encoding), answers from a cache of prebuilt response
bytes, and runs in a process of its own (`python -m bench.origin --port N`), pinned by the
harness to a core of its own choosing. It prints `READY <port>` once it listens.

Routes (the realistic mix of `bench/workload.py` uses all of them):
  GET  /health                  small text
  GET  /api/users/{i}           2-4 KB JSON; gzip-encoded when asked and i % 3 == 0
  GET  /api/catalog?page=N      ~5 KB JSON, gzip-encoded when asked
  GET  /api/items/{i}           ~1 KB JSON
  GET  /api/payments/{i}        a sequence: pending, processing, confirmed, pending, ...
  POST /api/orders              201, JSON derived from the request body
  POST /api/login               200, JSON with a token (redacted when recorded)
  PUT  /api/users/{i}           200, JSON echo of the size
  DELETE /api/sessions/{i}      204
  POST /__reset                 restarts the payment sequences
  anything else                 404 JSON
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import signal
import sys

REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 404: b"Not Found",
           400: b"Bad Request"}
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024


def _response(status: int, body: bytes, ctype: bytes = b"application/json",
              extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"Unknown")),
            b"Server: wiretape-bench-origin"]
    if status != 204:
        head.append(b"Content-Type: " + ctype)
        head.append(b"Content-Length: %d" % len(body))
    for k, v in extra:
        head.append(k + b": " + v)
    return b"\r\n".join(head) + b"\r\n\r\n" + (body if status != 204 else b"")


def user_doc(i: int) -> dict[str, object]:
    # deterministic, a few KB, the shape of a real API answer
    return {
        "id": i,
        "name": f"user-{i:05d}",
        "email": f"user{i}@example.test",
        "profile": {
            "bio": ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (4 + i % 5)),
            "locale": ["en", "fr", "de"][i % 3],
            "tags": [f"tag-{(i * 7 + k) % 97}" for k in range(12)],
        },
        "orders": [{"id": i * 100 + k, "total": round((i + k) * 3.17, 2),
                    "status": "shipped" if k % 2 else "pending"} for k in range(10 + i % 8)],
    }


def catalog_doc(page: int) -> dict[str, object]:
    return {
        "page": page,
        "items": [{"sku": f"SKU-{page:03d}-{k:03d}", "title": f"Product {page}/{k}",
                   "price": round(1 + (page * 31 + k) % 400 / 3, 2), "stock": (page + k) % 17,
                   "description": "A fine product for benchmarking proxies. " * 2}
                  for k in range(25)],
        "next": page + 1,
    }


def item_doc(i: int) -> dict[str, object]:
    return {"id": i, "sku": f"ITEM-{i:06d}", "price": round((i % 997) * 1.13, 2),
            "description": "Item used by the replay scale benchmark. " * (4 + i % 6),
            "attributes": {f"a{k}": (i * k) % 31 for k in range(12)}}


class Origin:
    """Route table and caches; one per process."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str, bool], bytes] = {}
        self.body_cache: dict[bytes, bytes] = {}
        self.payments: dict[str, int] = {}
        self.requests = 0

    def _json(self, status: int, doc: object, gz: bool) -> bytes:
        body = json.dumps(doc, separators=(",", ":")).encode()
        if gz:
            return _response(status, gzip.compress(body, 6, mtime=0),
                             extra=((b"Content-Encoding", b"gzip"), (b"Vary", b"Accept-Encoding")))
        return _response(status, body)

    def answer(self, method: str, target: str, gzip_ok: bool, body: bytes) -> bytes:
        self.requests += 1
        if target.startswith(("http://", "https://")):
            slash = target.find("/", target.find("//") + 2)
            target = target[slash:] if slash >= 0 else "/"
        path, _, query = target.partition("?")
        if method == "GET":
            if path.startswith("/api/payments/"):
                n = self.payments.get(path, 0)
                self.payments[path] = n + 1
                state = ("pending", "processing", "confirmed")[n % 3]
                return self._json(200, {"payment": path.rsplit("/", 1)[1], "state": state},
                                  False)
            key = (path, query, gzip_ok)
            hit = self.cache.get(key)
            if hit is not None:
                return hit
            resp = self._build_get(path, query, gzip_ok)
            if len(self.cache) < 200_000:
                self.cache[key] = resp
            return resp
        if method == "POST" and path == "/api/orders":
            digest = hashlib.blake2b(body, digest_size=8).digest()
            hit = self.body_cache.get(digest)
            if hit is None:
                try:
                    doc = json.loads(body or b"{}")
                    n = len(doc.get("items", [])) if isinstance(doc, dict) else 0
                except ValueError:
                    return _response(400, b'{"error":"invalid json"}')
                hit = self._json(201, {"order": digest.hex(), "status": "created", "items": n,
                                       "links": {"self": f"/api/orders/{digest.hex()}"}}, False)
                if len(self.body_cache) < 100_000:
                    self.body_cache[digest] = hit
            return hit
        if method == "POST" and path == "/api/login":
            return self._json(200, {"token": "secret-token-" + hashlib.md5(body).hexdigest(),
                                    "expires_in": 3600}, False)
        if method == "PUT" and path.startswith("/api/users/"):
            return self._json(200, {"updated": path.rsplit("/", 1)[1], "bytes": len(body)},
                              False)
        if method == "DELETE" and path.startswith("/api/sessions/"):
            return _response(204, b"")
        if method == "POST" and path == "/__reset":
            self.payments.clear()
            return self._json(200, {"reset": True}, False)
        return self._json(404, {"error": "not found", "path": path}, False)

    def _build_get(self, path: str, query: str, gzip_ok: bool) -> bytes:
        if path == "/health":
            return _response(200, b"ok\n", b"text/plain")
        parts = path.split("/")
        try:
            if path.startswith("/api/users/") and len(parts) == 4:
                i = int(parts[3])
                return self._json(200, user_doc(i), gzip_ok and i % 3 == 0)
            if path == "/api/catalog":
                page = 1
                for kv in query.split("&"):
                    if kv.startswith("page="):
                        page = int(kv[5:] or 1)
                return self._json(200, catalog_doc(page), gzip_ok)
            if path.startswith("/api/items/") and len(parts) == 4:
                return self._json(200, item_doc(int(parts[3])), False)
        except ValueError:
            pass
        return self._json(404, {"error": "not found", "path": path}, False)


class OriginProtocol(asyncio.Protocol):
    __slots__ = ("origin", "transport", "buf")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        t = self.transport
        assert t is not None
        # bounded: each pass consumes one complete request from the buffer
        while buf:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    t.close()
                return
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                t.write(_response(400, b'{"error":"bad request line"}'))
                t.close()
                return
            clen = 0
            close = version == "HTTP/1.0"
            gz = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                n = name.strip().lower()
                if n == "content-length":
                    try:
                        clen = int(value)
                    except ValueError:
                        clen = -1
                elif n == "connection":
                    v = value.strip().lower()
                    close = v == "close" or (close and v != "keep-alive")
                elif n == "accept-encoding":
                    gz = "gzip" in value
                elif n == "transfer-encoding":
                    clen = -1  # chunked request bodies are not part of the workload
            if not 0 <= clen <= MAX_BODY:
                t.write(_response(400, b'{"error":"unsupported body"}'))
                t.close()
                return
            need = end + 4 + clen
            if len(buf) < need:
                return
            body = bytes(buf[end + 4:need])
            del buf[:need]
            t.write(self.origin.answer(method, target, gz, body))
            if close:
                t.close()
                return


async def serve(host: str, port: int) -> None:
    origin = Origin()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: OriginProtocol(origin), host, port,
                                      reuse_address=True, backlog=1024)
    actual = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {actual}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        print("the benchmark origin listens on loopback only", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(a.host, a.port))
    except OSError as e:
        print(f"origin: cannot listen on {a.host}:{a.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
