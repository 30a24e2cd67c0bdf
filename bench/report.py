"""The Markdown report of one benchmark run (the JSON file holds the same and the raw points)."""

from __future__ import annotations

from typing import Any

LABELS = {
    "origin": "origin direct (floor)",
    "mitmdump": "mitmdump forward (baseline)",
    "mitmdump-record": "mitmdump -w (record)",
    "mitmdump-replay": "mitmdump --server-replay",
    "wiretape-record": "wiretape record",
    "wiretape-replay": "wiretape replay",
}


def _num(v: Any, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def _x(v: float | None) -> str:
    return f" ({v:.2f}x)" if v is not None else ""


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def markdown(res: dict[str, Any]) -> str:
    m = res["meta"]
    mach = m["machine"]
    cfg = m["config"]
    out = [
        f"# wiretape benchmark, {m['date']}",
        "",
        f"Command: `{m['command']}` (commit {m['commit'] or '?'}, {m.get('elapsed_s', '?')} s)",
        "",
        f"Machine: {mach['cpu'] or 'unknown CPU'}, {mach['cores']} cores, Linux "
        f"{mach['kernel']}, Python {mach['python']}, mitmproxy {mach['mitmproxy']}, "
        f"{mach['wrk']}. wrk and the harness on CPU "
        f"{m['pinning']['load_generator_and_harness_cpu']}, the server under test on CPU "
        f"{m['pinning']['server_under_test_cpu']}.",
        "",
        f"Each point: wrk ({cfg['wrk']}) for {cfg['seconds_per_point']:g} s after "
        f"{cfg['warmup_s']:g} s of warm-up per server start; {cfg['rounds']} interleaved "
        f"round(s); medians; errors and non-2xx summed over the rounds.",
        "",
    ]
    foreign = [r.get("foreign_cpu") or 0 for r in res.get("throughput", {}).get("summary", [])]
    foreign += [s.get("foreign_cpu") or 0 for s in res.get("scale", {}).get("summary", [])]
    if foreign and max(foreign) > 0.1:
        out += [f"**Warning: other processes used up to {max(foreign):.2f} cores (median per "
                "point) of the benchmark's two while it ran; the figures are noisier than on "
                "a quiet machine.** See the `other CPU` column.", ""]
    tgt = res.get("targets", [])
    if tgt:
        out += ["## Targets", "",
                "| target | measured | goal | verdict | implied by CPU ms/req |",
                "|---|---|---|---|---|"]
        for t in tgt:
            val = (f"{t['measured']:g}{t['unit']}" if t["measured"] is not None
                   else f"– ({t['note']})")
            cpu = t.get("implied_by_cpu")
            out.append(f"| {t['target']} | {val} | {t['goal']} | {_verdict(t['met'])} "
                       f"| {f'{cpu:g}x' if cpu is not None else ''} |")
        out += ["", "The last column: the same ratio computed from the servers' CPU time per "
                "request instead of req/s; it moves far less when other processes share the "
                "machine.", ""]
    thr = res.get("throughput")
    if thr:
        out += [
            "## Throughput and latency, realistic mix",
            "",
            "Ratios in brackets are to bare `mitmdump` (forward proxy) at the same connection "
            "count in this run.",
            "",
            "| target | conns | req/s | p50 ms | p99 ms | peak RSS MB | CPU ms/req | errors "
            "| non-2xx | startup s | other CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in thr["summary"]:
            x = r["x_mitmdump"]
            out.append(
                f"| {LABELS.get(r['target'], r['target'])} | {r['connections']} "
                f"| {_num(r['rps'])}{_x(x['rps'])} | {_num(r['p50_ms'], 2)}{_x(x['p50_ms'])} "
                f"| {_num(r['p99_ms'], 2)}{_x(x['p99_ms'])} "
                f"| {_num(r['rss_mb'], 1)}{_x(x['rss_mb'])} "
                f"| {_num(r['cpu_ms_per_req'], 3)}{_x(x['cpu_ms_per_req'])} "
                f"| {r['errors']} | {r['non2xx']} | {_num(r['startup_s'], 2)} "
                f"| {_num(r.get('foreign_cpu'), 2)} |")
        out += ["", "non-2xx: the mix's intended misses (replay) and the origin's 404s for them "
                "(live); errors: socket errors and timeouts; CPU ms/req: the server's own CPU "
                "time per request; other CPU: cores used by processes outside the benchmark "
                "during the point.", ""]
    sc = res.get("scale")
    if sc:
        out += [
            "## Replay at scale (wiretape, SQLite, 16 connections, random recorded keys)",
            "",
            "| recordings | req/s | p50 ms | p99 ms | startup s (until it answers a recorded "
            "request) | RSS after start MB | peak RSS MB | CPU ms/req | errors | non-2xx "
            "| other CPU |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in sc["summary"]:
            out.append(
                f"| {s['recordings']:,} | {_num(s['rps'])} | {_num(s['p50_ms'], 2)} "
                f"| {_num(s['p99_ms'], 2)} | {_num(s['startup_s'], 2)} "
                f"| {_num(s['rss_after_start_mb'], 1)} | {_num(s['peak_rss_mb'], 1)} "
                f"| {_num(s.get('cpu_ms_per_req'), 3)} | {s['errors']} | {s['non2xx']} "
                f"| {_num(s.get('foreign_cpu'), 2)} |")
        out += ["", "non-2xx: the seeded tape answers one item in fifty with a recorded 404.", ""]
    al = res.get("admin_list")
    if al:
        out += ["## Admin API list page (`GET /api/recordings`, 50 per page)", ""]
        for backend, a in al.items():
            if a.get("status") != "ok":
                out += [f"- {backend}: {a.get('status')}: {a.get('reason', '')}", ""]
                continue
            out += [
                f"{backend}, {a['recordings']:,} recordings: p50 {a['p50_ms']} ms, "
                f"p99 {a['p99_ms']} ms over {a['n']} requests ({a['errors']} errors)",
                "",
                "| filter | n | p50 ms | p99 ms |",
                "|---|---:|---:|---:|",
            ]
            for f in a["filters"]:
                out.append(f"| {f['filter']} | {f['n']} | {f['p50_ms']} | {f['p99_ms']} |")
            out.append("")
    w = res.get("workload")
    if w:
        sh = w["share"]
        out += [
            "## Workload",
            "",
            f"One cycle of {w['requests_per_cycle']} requests ({w['distinct_requests']} "
            f"distinct): GET {sh['GET']:.0%}, POST {sh['POST']:.0%}, PUT {sh['PUT']:.0%}, "
            f"DELETE {sh['DELETE']:.0%}; {sh['sequence_keys']:.0%} poll keys recorded three "
            f"times (replayed as a sequence); {sh['replay_misses']:.1%} never recorded "
            f"(replay misses); request bodies up to {w['request_body_bytes']['max']:,} bytes; "
            "JSON answers of 0.1-6 KB, a third of the user resources gzip-encoded.",
            "",
        ]
    if res.get("skipped"):
        out += ["## Skipped", ""]
        out += [f"- {k}: {v}" for k, v in res["skipped"].items()]
        out.append("")
    if res.get("notes"):
        out += ["## Notes", ""]
        out += [f"- {n}" for n in res["notes"]]
        out.append("")
    return "\n".join(out)
