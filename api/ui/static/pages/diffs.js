// Diffs: two tapes (?a=&b=) or two recordings (?ra=&rb=), changes side by side with the
// API's paths and kinds, breaking first, noise greyed. Each diff is asked for twice, strict
// and not: what only the strict one has is noise.

import {api} from "../api.js";
import {changeTable, classify, worst} from "../changes.js";
import {banner, field, fmtMs, h, select, statusBadge, verdictBadge} from "../dom.js";
import {shortUrl} from "./recordings.js";

export async function render(root, ctx) {
  const q = ctx.query;
  const tapes = await api("GET", "/api/tapes", {signal: ctx.signal});
  root.append(h("h1", {}, "Diffs"), pickers(q, tapes, ctx));
  const out = h("div", {id: "diff"});
  root.append(out);
  if (q.get("a") && q.get("b")) await tapeDiff(out, q.get("a"), q.get("b"), ctx);
  else if (q.get("ra") && q.get("rb")) await recordingDiff(out, q.get("ra"), q.get("rb"), ctx);
  else out.append(h("p", {class: "muted"}, "Pick two tapes (baseline first) or two recordings."));
}

function pickers(q, tapes, ctx) {
  const names = tapes.map((t) => t.name);
  const a = select({name: "a", id: "tape-a"}, [["", "choose…"], ...names], q.get("a"));
  const b = select({name: "b", id: "tape-b"}, [["", "choose…"], ...names], q.get("b"));
  const tapeForm = h("form", {class: "panel row", id: "tape-diff-form"},
    h("strong", {}, "Two tapes"), field("A (baseline)", a), field("B", b),
    h("button", {type: "submit", class: "primary"}, "Compare tapes"));
  tapeForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (a.value && b.value) {
      ctx.navigate(`/ui/diff?a=${encodeURIComponent(a.value)}&b=${encodeURIComponent(b.value)}`);
    }
  });
  const ra = h("input", {type: "number", min: 1, name: "ra", value: q.get("ra") || "",
    class: "narrow", id: "rec-a"});
  const rb = h("input", {type: "number", min: 1, name: "rb", value: q.get("rb") || "",
    class: "narrow", id: "rec-b"});
  const recForm = h("form", {class: "panel row", id: "recording-diff-form"},
    h("strong", {}, "Two recordings"), field("A", ra), field("B", rb),
    h("button", {type: "submit", class: "primary"}, "Compare recordings"));
  recForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (ra.value && rb.value) ctx.navigate(`/ui/diff?ra=${ra.value}&rb=${rb.value}`);
  });
  return h("div", {class: "pickers"}, tapeForm, recForm);
}

async function both(path, ctx) {
  const [all, counted] = await Promise.all([
    api("GET", path, {query: {strict: "true"}, signal: ctx.signal}),
    api("GET", path, {query: {strict: "false"}, signal: ctx.signal}),
  ]);
  return {all, counted};
}

async function recordingDiff(out, ra, rb, ctx) {
  let d;
  try {
    d = await both(`/api/recordings/${encodeURIComponent(ra)}/diff/${encodeURIComponent(rb)}`,
      ctx);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    out.append(banner("error", e.message));
    return;
  }
  const changes = classify(d.all.changes, d.counted.changes);
  out.append(
    h("h2", {}, "Recording ", h("a", {href: `/ui/recordings/${ra}`}, `#${ra}`), " → ",
      h("a", {href: `/ui/recordings/${rb}`}, `#${rb}`)),
    summaryLine(d.counted.identical, changes),
    changeTable(changes, {a: `#${ra}`, b: `#${rb}`}));
}

function summaryLine(identical, changes) {
  const noise = changes.filter((c) => c.noise).length;
  const w = worst(changes);
  return h("p", {class: "summary"},
    identical ? h("span", {class: "pass"}, "identical") : [verdictBadge(w || "value"),
      ` ${changes.length - noise} difference(s)`],
    noise ? h("span", {class: "muted"}, ` · ${noise} noise`) : null);
}

async function tapeDiff(out, a, b, ctx) {
  let d;
  try {
    d = await both(`/api/tapes/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`, ctx);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    out.append(banner("error", e.message));
    return;
  }
  const counted = new Map(d.counted.changed.map((p) => [`${p.match_key}/${p.seq}`, p.changes]));
  const pairs = d.all.changed.map((p) => {
    const changes = classify(p.changes, counted.get(`${p.match_key}/${p.seq}`) || []);
    return {...p, changes, worst: worst(changes)};
  });
  const rank = (p) => ({breaking: 0, additive: 1, value: 2}[p.worst] ?? 3);
  pairs.sort((x, y) => rank(x) - rank(y) || x.endpoint.localeCompare(y.endpoint));
  const real = pairs.filter((p) => p.worst);
  const r = d.counted;
  out.append(
    h("h2", {}, `Tape ${a} → ${b}`),
    h("p", {class: "summary", id: "tape-diff-summary"},
      r.identical ? h("span", {class: "pass"}, "identical") : h("span", {class: "fail"}, "differs"),
      ` · ${real.length} changed · ${r.removed.length} only in ${a} · ${r.added.length} only in` +
      ` ${b} · ${r.unchanged} unchanged` +
      (pairs.length - real.length ? ` (${pairs.length - real.length} of them noise only)` : "")));
  if (r.status_class_changes.length) {
    out.append(h("h3", {}, "Status class changes"), h("ul", {class: "plain"},
      r.status_class_changes.map((s) => h("li", {}, verdictBadge("breaking"), ` ${s.endpoint}: `,
        h("strong", {}, `${s.from} → ${s.to}`), " ", pairLinks(s.a_id, s.b_id)))));
  }
  if (pairs.length) {
    out.append(h("h3", {}, "Changed"));
    for (const p of pairs) {
      out.append(h("div", {class: ["pair", p.worst ? null : "noise"], dataset: {endpoint: p.endpoint}},
        h("div", {class: "pair-head"}, p.worst ? verdictBadge(p.worst) : h("span", {class: "tag"},
          "noise only"), " ", h("span", {class: "mono"}, shortUrl(p.url)),
        p.seq ? h("span", {class: "muted"}, ` seq ${p.seq}`) : null, " ",
        pairLinks(p.a_id, p.b_id)),
        changeTable(p.changes, {a, b})));
    }
  }
  for (const [title, items] of [[`Only in ${a} (removed)`, r.removed],
    [`Only in ${b} (added)`, r.added]]) {
    if (!items.length) continue;
    out.append(h("h3", {}, title), h("table", {class: "grid"}, h("tbody", {}, items.map((e) =>
      h("tr", {}, h("td", {}, h("a", {href: `/ui/recordings/${e.id}`}, `#${e.id}`)),
        h("td", {class: "mono"}, shortUrl(e.url)), h("td", {}, statusBadge(e.status, e.failure)))))));
  }
  if (r.latency.length) out.append(h("h3", {}, "Latency per endpoint"), latencyTable(r, a, b));
}

function pairLinks(aId, bId) {
  return h("span", {class: "small"}, h("a", {href: `/ui/recordings/${aId}`}, `#${aId}`), " → ",
    h("a", {href: `/ui/recordings/${bId}`}, `#${bId}`), " ",
    h("a", {href: `/ui/diff?ra=${aId}&rb=${bId}`}, "(diff)"));
}

function latencyTable(r, a, b) {
  const cell = (s) => (s && s.count ? `${fmtMs(s.p50)} / ${fmtMs(s.p95)} (${s.count})` : "—");
  return h("table", {class: "grid"},
    h("thead", {}, h("tr", {}, ["Endpoint", `${a} p50 / p95`, `${b} p50 / p95`]
      .map((t) => h("th", {}, t)))),
    h("tbody", {}, r.latency.map((l) => h("tr", {}, h("td", {class: "mono"}, l.endpoint),
      h("td", {class: "num"}, cell(l.a)), h("td", {class: "num"}, cell(l.b))))),
    h("tfoot", {}, h("tr", {}, h("td", {}, "error rate"),
      h("td", {class: "num"}, pct(r.error_rate.a)), h("td", {class: "num"}, pct(r.error_rate.b)))));
}

const pct = (e) => (e ? `${(100 * e.rate).toFixed(1)}% of ${e.total}` : "—");
