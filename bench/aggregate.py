"""From raw points to the report's figures: medians over rounds, ratios to bare mitmdump,
and whether each goal is met."""

from __future__ import annotations

import functools
import operator
import statistics
from collections.abc import Callable
from typing import Any

from .config import BASELINE


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def aggregate(
    raw: list[dict[str, Any]], targets: list[str], conns: list[int]
) -> list[dict[str, Any]]:
    """Medians over the rounds of each (target, connections), and ratios to bare mitmdump
    at the same connection count in this run."""
    rows: list[dict[str, Any]] = []
    for t in targets:
        for c in conns:
            pts = [p for p in raw if p["target"] == t and p["connections"] == c]
            if not pts:
                continue
            rows.append({
                "target": t, "connections": c, "reps": len(pts),
                **{k: median([p[k] for p in pts]) for k in (
                    "rps", "p50_ms", "p99_ms", "rss_mb", "cpu_ms_per_req", "startup_s",
                    "drain_s", "foreign_cpu")},
                "foreign_cpu_max": max(p["foreign_cpu"] for p in pts),
                "errors": sum(p["errors"] for p in pts),
                "non2xx": sum(p["non2xx"] for p in pts),
                "requests": sum(p["requests"] for p in pts),
                "capped": any(p["capped"] for p in pts),
            })
    base = {r["connections"]: r for r in rows if r["target"] == BASELINE}
    for r in rows:
        b = base.get(r["connections"])
        r["x_mitmdump"] = {k: (round(r[k] / b[k], 3) if b and r[k] and b[k] else None)
                           for k in ("rps", "p50_ms", "p99_ms", "rss_mb", "cpu_ms_per_req")}
    return rows


def at(rows: list[dict[str, Any]], target: str, c: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["target"] == target and r["connections"] == c), None)


def check_targets(res: dict[str, Any], c: int) -> list[dict[str, Any]]:
    rows = res.get("throughput", {}).get("summary", [])
    out: list[dict[str, Any]] = []

    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        if a and b and a["rps"] and b["rps"]:
            return round(float(a["rps"]) / float(b["rps"]), 3)
        return None

    def cpu_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        # req/s the CPU cost per request implies: steadier than req/s on a busy machine
        if a and b and a["cpu_ms_per_req"] and b["cpu_ms_per_req"]:
            return round(float(b["cpu_ms_per_req"]) / float(a["cpu_ms_per_req"]), 3)
        return None

    def add(name: str, value: float | None, goal: str, ok: Callable[[float], bool],
            unit: str = "", why: str = "", by_cpu: float | None = None) -> None:
        out.append({"target": name, "measured": value, "unit": unit, "goal": goal,
                    "met": None if value is None else bool(ok(value)),
                    "note": why if value is None else "", "implied_by_cpu": by_cpu})

    pairs = [("wiretape-record", "mitmdump", "wiretape record vs bare mitmdump forward",
              0.9), ("wiretape-replay", "mitmdump-replay",
                     "wiretape replay vs mitmdump --server-replay", 1.5)]
    for ours, theirs, name, goal in pairs:
        a, b = at(rows, ours, c), at(rows, theirs, c)
        at_least: Callable[[float], bool] = functools.partial(operator.le, goal)
        add(f"{name}, req/s at {c} conns", ratio(a, b), f">= {goal}x", at_least, "x",
            "not measured", cpu_ratio(a, b))
    scale = {s["recordings"]: s for s in res.get("scale", {}).get("summary", [])}
    sizes = res["meta"]["config"]["scale_sizes"]
    big, small = (max(scale), min(scale)) if scale else (max(sizes), min(sizes))
    sc = (round(scale[big]["rps"] / scale[small]["rps"], 3)
          if scale and big != small and scale[small]["rps"] else None)
    sc_cpu = (round(scale[small]["cpu_ms_per_req"] / scale[big]["cpu_ms_per_req"], 3)
              if scale and big != small and scale[big].get("cpu_ms_per_req") else None)
    add(f"replay req/s at {big} vs {small} recordings", sc, ">= 0.9x (within 10%)",
        lambda v: v >= 0.9, "x", "not measured", sc_cpu)
    add(f"replay startup with {big} recordings", scale[big]["startup_s"] if scale else None,
        "< 3 s", lambda v: v < 3.0, "s", "not measured")
    for backend in ("sqlite", "postgresql"):
        a = res.get("admin_list", {}).get(backend, {})
        add(f"admin list page p99 at {big} recordings, {backend}",
            a.get("p99_ms") if a.get("status") == "ok" else None, "< 100 ms",
            lambda v: v < 100, "ms", a.get("reason", a.get("status", "not measured")))
    return out
