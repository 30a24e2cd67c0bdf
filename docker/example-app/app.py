"""Example service under test: calls a public HTTP API the way a real service would.

It knows nothing about wiretape. Like any service it honours HTTP_PROXY / HTTPS_PROXY /
NO_PROXY and trusts the certificates in SSL_CERT_FILE; docker/compose.yaml sets those so
that every call goes through wiretape, which records it (record profile) or answers it from
docker/tapes/app.har (replay profile). Exit status 0 when every answer is the expected one.
"""

import json
import os
import sys
import urllib.error
import urllib.request

BASE = os.environ.get("EXAMPLE_API", "https://httpbin.org")


def call(method: str, path: str, payload: object | None = None) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{BASE}{path}", data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            recording = response.headers.get("Wiretape-Recording")
            body = json.load(response)
    except urllib.error.HTTPError as e:
        if e.headers.get("Wiretape") == "miss":
            # wiretape had no recording for this request: its answer says what came closest
            print(f"{method} {path}: not on the tape\n{e.read().decode()}", file=sys.stderr)
        else:
            print(f"{method} {path}: HTTP {e.code}", file=sys.stderr)
        sys.exit(1)
    source = f"replayed from recording {recording}" if recording else "live"
    print(f"{method} {path}: ok ({source})")
    return body


def main() -> None:
    slideshow = call("GET", "/json")["slideshow"]
    assert slideshow["title"] == "Sample Slide Show", slideshow
    echoed = call("POST", "/anything", {"order": 42, "items": ["tea", "biscuits"]})
    assert echoed["json"] == {"order": 42, "items": ["tea", "biscuits"]}, echoed
    print("example app: all answers as expected")


if __name__ == "__main__":
    main()
