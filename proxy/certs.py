"""The interception CA in --confdir: created on first use, key readable by its owner only."""

from __future__ import annotations

import os

from mitmproxy import certs

CA_BASENAME = "mitmproxy"


def ca_cert_path(confdir: str) -> str:
    return os.path.join(confdir, f"{CA_BASENAME}-ca-cert.pem")


def ensure_ca(confdir: str) -> str:
    """Create the CA if missing (mitmproxy writes the key files with umask 077)."""
    os.makedirs(confdir, mode=0o700, exist_ok=True)
    certs.CertStore.from_store(confdir, CA_BASENAME, 2048)
    for name in (f"{CA_BASENAME}-ca.pem", f"{CA_BASENAME}-ca.p12"):
        path = os.path.join(confdir, name)
        if os.path.exists(path):
            os.chmod(path, 0o600)
    return ca_cert_path(confdir)
