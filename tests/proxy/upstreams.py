"""Test upstreams for the proxy tests: an HTTP/HTTPS origin with raw control over what it
writes, self-signed certificates made here, servers that fail in each way, and a listener
that counts connection attempts."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import send


def self_signed_cert(folder: Path, name: str = "origin") -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def private_ca(folder: Path, name: str = "Private Test CA") -> tuple[Path, Path, Path]:
    """A CA of our own and a server certificate it signed for localhost and 127.0.0.1, as a
    company CA or a TLS-inspecting proxy makes them: (ca.pem, server-cert.pem,
    server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "origin.test")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server-cert.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths[2])
    return paths


Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    """Routes "METHOD /path" to functions that write the response themselves."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *a: Any) -> None:
        pass

    def body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status: int, body: bytes = b"",
              headers: list[tuple[str, str]] | None = None) -> None:
        """A whole response; header values are str, sent as latin-1 (any byte goes)."""
        send(self, status, body, headers or [])

    def _handle(self) -> None:
        origin = self.server.origin
        origin.requests.append((self.command, self.path, list(self.headers.items())))
        route = origin.routes.get(f"{self.command} {self.path.split('?')[0]}")
        if route is None:
            self.body()
            self.reply(404, b"no route")
        else:
            route(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    origin: Origin

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()  # TCP only: the TLS handshake runs in the thread
        self.origin.connections += 1
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.origin.tls is not None:
            try:
                request = self.origin.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class Origin:
    """A real HTTP(S) server on a free loopback port; `connections` counts TCP accepts."""

    def __init__(self, tls_dir: Path | None = None,
                 cert: tuple[Path, Path] | None = None) -> None:
        """HTTPS with a self-signed certificate made in `tls_dir`, or with `cert` (cert.pem,
        key.pem) given; plain HTTP without either."""
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, list[tuple[str, str]]]] = []
        self.connections = 0
        self.tls: ssl.SSLContext | None = None
        self.cert: Path | None = None
        if tls_dir is not None and cert is None:
            cert = self_signed_cert(tls_dir)
        if cert is not None:
            self.cert, key = cert
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(self.cert, key)
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.origin = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def route(self, key: str, fn: Route) -> None:
        self.routes[key] = fn

    def start(self) -> Origin:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RawServer:
    """Accepts connections on a loopback port (a free one unless given) and hands each socket
    to `behave(conn)` in a thread: for upstreams that reset, stall or break off mid-body.
    `accepted` counts the connections."""

    def __init__(self, behave: Callable[[socket.socket], None], port: int = 0) -> None:
        self.sock = socket.socket()
        # a given port is one a stopped upstream held a moment ago
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.behave = behave
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.behave(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class CountingListener(RawServer):
    """Counts every connection attempt (and drops it): bound where a stopped upstream was,
    it proves replay never tries to reach the network."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(lambda _conn: None, port)


def read_request_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def reset(conn: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def resetting(conn: socket.socket) -> None:
    read_request_head(conn)
    reset(conn)


def breaking_off_mid_body(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n"
                 b"only part of it")
    time.sleep(0.05)
    reset(conn)


def stalling(seconds: float) -> Callable[[socket.socket], None]:
    def behave(conn: socket.socket) -> None:
        read_request_head(conn)
        time.sleep(seconds)
    return behave


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes to a port and read until the peer closes (or stops talking)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def without_header(raw: bytes, name: bytes) -> bytes:
    """Raw HTTP/1 response bytes with every line of one header removed."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n")
             if not ln.lower().startswith(name.lower() + b":")]
    return b"\r\n".join(lines) + sep + body
