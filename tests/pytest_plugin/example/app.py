"""A small app under test: it reaches its dependencies with requests, with httpx over
HTTP/2, and with curl in a subprocess. It knows nothing of wiretape."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import requests


def order(base: str, number: int, **kw: Any) -> dict[str, Any]:
    r = requests.get(f"{base}/orders/{number}", timeout=10, **kw)
    r.raise_for_status()
    return dict(r.json())


def counter(base: str) -> int:
    r = requests.get(f"{base}/counter", timeout=10)
    r.raise_for_status()
    return int(r.json()["n"])


def catalog(base: str) -> tuple[str, dict[str, Any]]:
    with httpx.Client(http2=True, timeout=10) as client:
        r = client.get(f"{base}/catalog")
        r.raise_for_status()
        return r.http_version, dict(r.json())


def ping(base: str) -> str:
    done = subprocess.run(["curl", "-sS", "--fail", "--max-time", "20", f"{base}/ping"],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"curl failed: {done.stderr.strip()}")
    return done.stdout
