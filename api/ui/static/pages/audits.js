// Audits: a tape's history, starting an audit (POST /api/tapes/{name}/audit), and one
// audit's verdict per endpoint, polled every second until it has finished.

import {api} from "../api.js";
import {banner, field, fill, fmtMs, fmtTime, h, select, statusBadge, verdictBadge} from "../dom.js";
import {shortUrl} from "./recordings.js";

const CLASSES = ["breaking", "additive", "value", "latency"];
const RANK = {breaking: 0, additive: 1, value: 2, latency: 3, ok: 4};
export const POLL_MS = 1000;

export async function render(root, ctx) {
  const [mode, tapes] = await Promise.all([
    api("GET", "/api/mode", {signal: ctx.signal}).catch(() => null),
    api("GET", "/api/tapes", {signal: ctx.signal}),
  ]);
  const tape = ctx.query.get("tape") || mode?.tape || tapes[0]?.name || "";
  const tapeSel = select({id: "audit-tape"}, tapes.map((t) => t.name), tape);
  tapeSel.addEventListener("change", () =>
    ctx.navigate(`/ui/audits?tape=${encodeURIComponent(tapeSel.value)}`));
  root.append(h("div", {class: "title-row"}, h("h1", {}, "Audits"), tapeSel));
  if (!tapes.some((t) => t.name === tape)) {
    root.append(h("p", {class: "muted"}, "No tape to audit yet."));
    return;
  }
  root.append(startForm(tape, ctx));
  const history = await api("GET", `/api/tapes/${encodeURIComponent(tape)}/audits`,
    {signal: ctx.signal});
  root.append(h("h2", {}, `History of ${tape}`), historyTable(history));
}

function startForm(tape, ctx) {
  const headers = h("textarea", {rows: 2, class: "code", id: "audit-headers",
    placeholder: "Authorization: Bearer …", spellcheck: "false"});
  const failOn = select({id: "audit-fail-on"}, CLASSES, "breaking");
  const concurrency = h("input", {type: "number", min: 1, max: 64, value: "4", class: "narrow"});
  const timeout = h("input", {type: "number", min: 1, max: 300, value: "10", class: "narrow"});
  const check = (label, id) => h("label", {class: "check"}, h("input", {type: "checkbox", id}),
    ` ${label}`);
  const strict = check("strict (keep noise)", "audit-strict");
  const refresh = check("re-record what drifted", "audit-refresh");
  const insecure = check("do not verify TLS", "audit-insecure");
  const msg = h("div", {class: "msg"});
  const form = h("form", {class: "panel", id: "audit-form"},
    h("p", {}, "Re-sends every recorded request of ", h("strong", {}, tape),
      " to its live upstream and classifies what drifted. Requests other than GET, HEAD and " +
      "OPTIONS are sent too: audit a staging service, not production."),
    h("div", {class: "row"},
      field("Extra headers", headers, "Name: value per line; values are never stored"),
      field("Fail on", failOn), field("Concurrency", concurrency), field("Timeout (s)", timeout),
      h("div", {class: "checks"}, strict, refresh, insecure)),
    h("div", {class: "actions"}, h("button", {type: "submit", class: "primary",
      id: "start-audit"}, "Start audit")),
    msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const extra = {};
    for (const line of headers.value.split("\n")) {
      if (!line.trim()) continue;
      const i = line.indexOf(":");
      if (i <= 0) {
        fill(msg, banner("error", `"${line}" is not "Name: value".`));
        return;
      }
      extra[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    try {
      const started = await api("POST", `/api/tapes/${encodeURIComponent(tape)}/audit`, {body: {
        headers: extra, fail_on: failOn.value, concurrency: Number(concurrency.value),
        timeout: Number(timeout.value), strict: strict.firstChild.checked,
        refresh: refresh.firstChild.checked, verify_tls: !insecure.firstChild.checked,
      }});
      ctx.navigate(`/ui/audits/${started.id}`);
    } catch (e) {
      fill(msg, banner("error", e.message));
    }
  });
  return form;
}

function historyTable(rows) {
  if (!rows.length) return h("p", {class: "muted"}, "No audits of this tape yet.");
  return h("table", {class: "grid", id: "audit-history"},
    h("thead", {}, h("tr", {}, ["Audit", "Started", "Status", "Verdict", "Recordings",
      "Drift", "Trigger"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((a) => h("tr", {},
      h("td", {}, h("a", {href: `/ui/audits/${a.id}`}, `#${a.id}`)),
      h("td", {class: "small"}, fmtTime(a.started_at)),
      h("td", {}, a.status),
      h("td", {}, passFail(a)),
      h("td", {class: "num"}, a.summary.recordings ?? ""),
      h("td", {}, classCounts(a.summary.by_class)),
      h("td", {class: "muted"}, a.trigger)))));
}

function passFail(a) {
  if (a.status === "running") return h("span", {class: "tag"}, "running");
  if (a.status === "failed") return h("span", {class: "fail"}, "failed");
  return a.summary.passed ? h("span", {class: "pass"}, "PASS")
    : h("span", {class: "fail"}, `FAIL (${a.fail_on})`);
}

function classCounts(byClass) {
  if (!byClass) return "";
  return CLASSES.filter((c) => byClass[c]).map((c) => [verdictBadge(c), ` ${byClass[c]} `]);
}

// -- one audit ----------------------------------------------------------------------------

export async function renderOne(root, ctx) {
  const id = ctx.params[0];
  const box = h("div", {id: "audit"});
  root.append(box);
  for (;;) {
    const audit = await api("GET", `/api/audits/${id}`, {signal: ctx.signal});
    showAudit(box, audit);
    if (audit.status !== "running") return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (ctx.signal.aborted) return;
  }
}

function showAudit(box, a) {
  const s = a.summary || {};
  const tape = encodeURIComponent(a.tape);
  const head = [
    h("h1", {}, `Audit ${a.id} of `, h("a", {href: `/ui/audits?tape=${tape}`}, a.tape)),
    h("p", {class: "summary", id: "audit-status", dataset: {status: a.status}},
      passFail(a), ` · started ${fmtTime(a.started_at)}`,
      a.finished_at ? ` · finished ${fmtTime(a.finished_at)}` : " · running…",
      s.recordings !== undefined ? ` · ${s.recordings} recordings, ${s.drifted} drifted` : "",
      ` · fail on ${a.fail_on}`, a.strict ? " · strict" : ""),
    a.error ? banner("error", a.error) : null,
    s.by_class ? h("p", {}, classCounts(s.by_class)) : null,
  ];
  if (a.status === "running" && !a.results.length) {
    fill(box, head, h("p", {class: "muted"}, "Waiting for the live answers…"));
    return;
  }
  fill(box, head, h("h2", {}, "Verdict per endpoint"), endpoints(a.results),
    noiseLearned(s.noise_learned));
}

function endpoints(results) {
  const by = new Map();
  for (const r of results) {
    if (!by.has(r.endpoint)) by.set(r.endpoint, []);
    by.get(r.endpoint).push(r);
  }
  const worstOf = (rs) => rs.map((r) => r.verdict).sort((x, y) => RANK[x] - RANK[y])[0];
  const groups = [...by.entries()].map(([ep, rs]) => ({ep, rs, worst: worstOf(rs)}))
    .sort((x, y) => RANK[x.worst] - RANK[y.worst] || x.ep.localeCompare(y.ep));
  // one table, a body per endpoint: the columns line up from one endpoint to the next
  return h("table", {class: "grid results", id: "endpoints"}, groups.map((g) =>
    h("tbody", {class: "endpoint", dataset: {endpoint: g.ep, verdict: g.worst}},
      h("tr", {class: "group"}, h("th", {colspan: 6}, verdictBadge(g.worst), " ",
        h("span", {class: "mono"}, g.ep),
        h("span", {class: "muted small"}, ` · ${g.rs.length} recording(s)`))),
      g.rs.map(resultRow))));
}

function resultRow(r) {
  const findings = [...r.findings].sort((x, y) => RANK[x.class] - RANK[y.class]);
  return h("tr", {},
    h("td", {}, r.recording_id ? h("a", {href: `/ui/recordings/${r.recording_id}`},
      `#${r.recording_id}`) : h("span", {class: "muted"}, "deleted")),
    h("td", {class: "mono small"}, shortUrl(r.url)),
    h("td", {}, verdictBadge(r.verdict), r.refreshed ? h("span", {class: "tag"}, "refreshed")
      : null),
    h("td", {}, "live ", statusBadge(r.live_status, r.live_failure)),
    h("td", {class: "num small"}, `${fmtMs(r.duration_ms)} (was ${fmtMs(r.recorded_duration_ms)})`),
    h("td", {}, findings.length ? findings.map((f) => h("div", {class: "finding"},
      verdictBadge(f.class), " ", f.message)) : h("span", {class: "muted small"},
      r.ignored ? `${r.ignored} noise difference(s) left out` : "")));
}

function noiseLearned(learned) {
  const entries = Object.entries(learned || {});
  if (!entries.length) return null;
  return h("div", {class: "noise-learned"}, h("h3", {}, "Noise left out"),
    h("p", {class: "muted small"}, "differs between two live answers to the same request"),
    h("ul", {class: "plain muted"}, entries.map(([ep, paths]) => h("li", {},
      h("span", {class: "mono"}, ep), ": ", paths.join(", ")))));
}
