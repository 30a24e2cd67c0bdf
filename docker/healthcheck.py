"""Container health check: exit 0 when wiretape's admin API answers GET /api/health."""

import json
import os
import sys
import urllib.request

# The same variable `wiretape serve` reads, so the check follows the admin address it was
# given. A wildcard bind is reached through loopback from inside the container.
host, _, port = os.environ.get("WIRETAPE_ADMIN", "127.0.0.1:8081").rpartition(":")
host = host.strip("[]")
if host in ("", "0.0.0.0", "::", "*"):
    host = "127.0.0.1"
if ":" in host:
    host = f"[{host}]"

# No proxy, whatever HTTP_PROXY says: CI systems (GitLab among them) hand the job's
# variables to service containers too, and a health check sent through a proxy tells
# nothing about this container.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(f"http://{host}:{port}/api/health", timeout=3) as response:
        status = json.load(response).get("status")
except (OSError, ValueError) as e:
    print(f"wiretape is not healthy: {e}", file=sys.stderr)
    sys.exit(1)
if status != "ok":
    print(f"wiretape is not healthy: status {status!r}", file=sys.stderr)
    sys.exit(1)
