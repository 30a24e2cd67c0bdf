"""Which certificates verify upstream TLS, for the proxy and for drift audits alike:
--upstream-ca, else SSL_CERT_FILE / SSL_CERT_DIR (as OpenSSL-based tools read them), else the
system's store (where a company CA is usually installed), else certifi's bundle (mitmproxy's
and httpx's own default)."""

from __future__ import annotations

import logging
import os
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import certifi
from cryptography import x509
from cryptography.x509.oid import NameOID
from wiretape.proxy.certs import CA_NAME
from wiretape.storage.errors import InvalidInput

log = logging.getLogger(__name__)


class TrustError(InvalidInput):
    """A CA bundle or folder given to verify upstreams with that cannot be used."""


@dataclass(frozen=True, slots=True)
class UpstreamTrust:
    """CA certificates to verify upstreams with: a PEM bundle, a hashed directory, or both."""

    ca_file: str | None
    ca_dir: str | None = None
    source: str = "certifi"  # where they came from, for the start-up log

    def describe(self) -> str:
        where = " and ".join(p for p in (self.ca_file, self.ca_dir) if p)
        return f"{where} ({self.source})"


def _certificates(flag: str, path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TrustError(f"{flag} {path}: {e.strerror or e}") from e
    try:
        with warnings.catch_warnings():
            # system bundles hold a few old certificates cryptography frowns upon
            warnings.simplefilter("ignore")
            certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TrustError(f"{flag} {path}: no PEM certificate in it")
    return certs


def check_ca_file(flag: str, path: str) -> str:
    """A readable PEM file holding at least one certificate (its path, ~ expanded)."""
    path = os.path.expanduser(path)
    _certificates(flag, path)
    return path


def _only_wiretape_ca(certs: list[x509.Certificate]) -> bool:
    def name(c: x509.Certificate) -> object:
        found = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return found[0].value if found else None
    return all(name(c) == CA_NAME for c in certs)


def upstream_trust(ca_file: str | None, environ: Mapping[str, str] | None = None
                   ) -> UpstreamTrust:
    """What verifies upstream TLS. `ca_file` (--upstream-ca, already checked) wins; else
    SSL_CERT_FILE and SSL_CERT_DIR, both if both are set; else the system store.

    An SSL_CERT_FILE that holds nothing but wiretape's own CA is what the README tells
    clients to set: a shell that exported it for them would otherwise make every upstream
    fail verification, so it is passed over, with a warning.
    """
    if ca_file:
        return UpstreamTrust(ca_file, None, "--upstream-ca")
    env = os.environ if environ is None else environ
    file = env.get("SSL_CERT_FILE") or None
    folder = env.get("SSL_CERT_DIR") or None
    if file is not None:
        if _only_wiretape_ca(_certificates("SSL_CERT_FILE", file)):
            log.warning("SSL_CERT_FILE %s holds only wiretape's own CA (meant for clients); "
                        "not used to verify upstreams", file)
            file = None
    if folder is not None and not os.path.isdir(folder):
        raise TrustError(f"SSL_CERT_DIR {folder}: not a directory")
    if file is None and folder is None:
        return system_store()
    names = [n for n, v in (("SSL_CERT_FILE", file), ("SSL_CERT_DIR", folder)) if v]
    return UpstreamTrust(file, folder, " and ".join(names))


def system_store() -> UpstreamTrust:
    """OpenSSL's own default locations (Debian: /usr/lib/ssl/cert.pem, the system bundle),
    where they exist; else certifi's bundle (a Python built with an OpenSSL of its own may
    have none)."""
    paths = ssl.get_default_verify_paths()
    file = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    folder = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if file is None and folder is None:
        return UpstreamTrust(certifi.where())
    return UpstreamTrust(file, folder, "system store")
