"""The benchmark harness runs end to end for one short point, so it cannot rot.

No timing is asserted: only that every requested target was measured and that the JSON and
Markdown results have the shape the README and the lead's reports rely on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
Results = tuple[dict[str, Any], str]
TARGETS = ["origin", "mitmdump", "wiretape-replay"]

pytestmark = [
    pytest.mark.skipif(shutil.which("wrk") is None,
                       reason="wrk is not installed (apt-get install -y wrk)"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                       reason="the benchmark pins wrk and the proxy to two different cores"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    out = tmp_path_factory.mktemp("bench") / "smoke"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--targets", ",".join(TARGETS),
         "--scale-sizes", "100", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md").read_text()


def test_every_target_is_measured_with_ratios_to_mitmdump(results: Results) -> None:
    res, _ = results
    assert res["skipped"] == {} or set(res["skipped"]) <= {"admin_list/postgresql"}
    rows = {r["target"]: r for r in res["throughput"]["summary"]}
    assert sorted(rows) == sorted(TARGETS)
    for r in rows.values():
        assert r["connections"] == 16 and r["reps"] == 1
        assert r["requests"] > 0 and r["rps"] > 0
        for key in ("p50_ms", "p99_ms", "rss_mb", "errors", "non2xx"):
            assert key in r
        assert set(r["x_mitmdump"]) >= {"rps", "p50_ms", "p99_ms", "rss_mb"}
    assert rows["mitmdump"]["x_mitmdump"]["rps"] == 1.0
    assert rows["wiretape-replay"]["startup_s"] is not None
    raw = res["throughput"]["raw"]
    assert {p["target"] for p in raw} == set(TARGETS)


def test_scale_admin_and_targets_sections(results: Results) -> None:
    res, _ = results
    (scale,) = res["scale"]["summary"]
    assert scale["recordings"] == 100 and scale["rps"] > 0 and scale["startup_s"] > 0
    assert res["admin_list"]["sqlite"]["status"] in ("ok", "not available")
    if res["admin_list"]["sqlite"]["status"] == "ok":
        assert res["admin_list"]["sqlite"]["n"] > 0
    names = [t["target"] for t in res["targets"]]
    assert len(names) == 6
    for t in res["targets"]:
        assert t["met"] in (True, False, None) and t["goal"]
    assert res["meta"]["pinning"]["server_under_test_cpu"] != \
        res["meta"]["pinning"]["load_generator_and_harness_cpu"]


def test_markdown_report(results: Results) -> None:
    _, md = results
    assert md.startswith("# wiretape benchmark")
    for heading in ("## Targets", "## Throughput and latency", "## Replay at scale",
                    "## Admin API list page", "## Workload"):
        assert heading in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "(1.00x)" in ln]
    assert any("mitmdump forward" in ln for ln in table)
