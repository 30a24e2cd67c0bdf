"""The web UI's recordings page in headless chromium: time until the rows are on screen, on a
tape of 100,000 recordings against one of 100 in the same store (a ratio, and milliseconds).

    .venv/bin/python -m bench.ui_list                 # about 2 minutes, most of it seeding
    .venv/bin/python -m bench.ui_list --n 20000 --reps 5

Each view is opened `--reps` times in a fresh page; the time is `performance.now()` (from the
start of the navigation) when the first row (or "no recordings") is in the document: the
document, its modules, GET /api/tapes and /api/recordings done and the table built. Needs
Debian's chromium (WIRETAPE_CHROMIUM to point elsewhere) and Playwright (the test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.harness import free_port
from bench.seed import seed

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# (name, query); {tape} is filled in. "older page" opens the first page, then clicks Older.
VIEWS = [
    ("first page", "tape={tape}"),
    ("method=POST", "tape={tape}&method=POST"),
    ("path + status", "tape={tape}&path=/api/items&status=404"),
    ("text in bodies", "tape={tape}&q=item-0123"),
    ("older page", "OLDER"),
]
SHOWN = "() => document.querySelector('#recordings tbody tr, #empty') && performance.now()"


def _serve(db: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    wiretape = str(Path(sys.executable).parent / "wiretape")
    admin = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRETAPE_")}
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [wiretape, "serve", "--db", db, "--mode", "replay", "--tape", "small",
         "--listen", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{admin}",
         "--confdir", str(workdir / "conf")],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{admin}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # bounded wait for the admin API
        if proc.poll() is not None:
            raise SystemExit(f"wiretape serve exited: see {workdir / 'serve.log'}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("wiretape serve did not answer within 60 s")


def _measure(browser: Any, base: str, tape: str, query: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        if query == "OLDER":
            page.goto(f"{base}/ui/recordings?tape={quote(tape)}")
            page.wait_for_selector("#older")
            t0 = page.evaluate("performance.now()")
            # the click swaps the page out at once (the old rows go before it returns)
            page.click("#older")
            return float(page.wait_for_function(SHOWN).json_value()) - float(t0)
        page.goto(f"{base}/ui/recordings?{query.format(tape=quote(tape))}")
        return float(page.wait_for_function(SHOWN).json_value())
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="recordings on the big tape")
    p.add_argument("--small", type=int, default=100, help="recordings on the small tape")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    a = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("WIRETAPE_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    workdir = Path(tempfile.mkdtemp(prefix="wiretape-ui-bench-"))
    db = f"sqlite:///{workdir / 'ui.db'}"
    seeded = [seed(db, "big", a.n, 9), seed(db, "small", a.small, 9)]
    print(f"seeded: {json.dumps(seeded)}", file=sys.stderr)
    proc, base = _serve(db, workdir)
    rows: list[dict[str, Any]] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for tape in ("small", "big"):
                _measure(browser, base, tape, VIEWS[0][1])  # warm-up: caches, first import
            for name, query in VIEWS:
                result: dict[str, Any] = {"view": name}
                for tape in ("small", "big"):
                    times = sorted(_measure(browser, base, tape, query) for _ in range(a.reps))
                    result[tape] = {"median_ms": round(statistics.median(times), 1),
                                    "max_ms": round(times[-1], 1)}
                result["ratio"] = round(result["big"]["median_ms"] /
                                        max(result["small"]["median_ms"], 0.1), 2)
                rows.append(result)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| view | {a.small} recordings, median (max) | {a.n:,} recordings, median (max) "
          "| ratio |")
    print("|---|---|---|---|")
    for r in rows:
        s, b = r["small"], r["big"]
        print(f"| {r['view']} | {s['median_ms']} ms ({s['max_ms']}) | {b['median_ms']} ms "
              f"({b['max_ms']}) | {r['ratio']}x |")
    if a.out:
        a.out.write_text(json.dumps({"n": a.n, "small": a.small, "reps": a.reps, "views": rows},
                                    indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
