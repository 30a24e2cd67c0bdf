"""The interception CA in --confdir: created on first use, key readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from mitmproxy import certs

# mitmproxy loads the CA from `<confdir>/mitmproxy-ca.pem` (a fixed name in its tlsconfig
# addon), so the files keep mitmproxy's names; the certificate itself is named wiretape.
CA_BASENAME = "mitmproxy"
CA_NAME = "wiretape CA"
KEY_SIZE = 2048  # mitmproxy's default `key_size`
KEY_FILES = (f"{CA_BASENAME}-ca.pem", f"{CA_BASENAME}-ca.p12")  # hold the private key


def ca_cert_path(confdir: str) -> str:
    """The certificate clients trust (PEM, no key)."""
    return os.path.join(confdir, f"{CA_BASENAME}-ca-cert.pem")


def ensure_ca(confdir: str) -> str:
    """Create the CA if missing; make its key files 0600 whatever made them; return the
    certificate's path.

    mitmproxy writes key files under a 077 umask already; the chmod covers a confdir made
    by hand or copied with looser modes. A folder we create is 0700; an existing one keeps
    its mode (a shared volume may need others to read the certificate).
    """
    path = Path(confdir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (path / f"{CA_BASENAME}-ca.pem").exists():
        certs.CertStore.create_store(
            path, CA_BASENAME, KEY_SIZE, organization="wiretape", cn=CA_NAME
        )
    for name in KEY_FILES:
        key = path / name
        if key.exists() and key.stat().st_mode & 0o777 != 0o600:
            os.chmod(key, 0o600)
    return ca_cert_path(confdir)
