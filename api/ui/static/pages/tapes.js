// Tapes: each with its recording count, matching rules, last audit and freshness; the
// current mode, tape and on-miss policy (PUT /api/mode), and "reset sequences".

import {api} from "../api.js";
import {banner, field, fill, fmtAgo, fmtTime, h, select, verdictBadge} from "../dom.js";

const MODES = ["record", "replay", "passthrough"];
const ON_MISS = ["error", "forward", "record"];

export async function render(root, ctx) {
  const [mode, tapes] = await Promise.all([
    api("GET", "/api/mode", {signal: ctx.signal}).catch((e) => {
      if (e.status === 404) return {mode: "record", tape: "default", on_miss: "error"};
      throw e;
    }),
    api("GET", "/api/tapes", {signal: ctx.signal}),
  ]);
  root.append(h("h1", {}, "Tapes"), modePanel(mode, tapes, ctx), tapeTable(tapes, mode, ctx));
}

function modePanel(mode, tapes, ctx) {
  const msg = h("div", {class: "msg"});
  const modeSel = select({name: "mode", id: "mode-select"}, MODES, mode.mode);
  const tapeIn = h("input", {name: "tape", id: "mode-tape", value: mode.tape, list: "tape-names",
    required: true, size: 18, autocomplete: "off"});
  const missSel = select({name: "on_miss", id: "mode-on-miss",
    title: "replay mode, a request no recording matches: answer 502, forward it, or record it"},
  ON_MISS, mode.on_miss);
  const names = h("datalist", {id: "tape-names"}, tapes.map((t) => h("option", {value: t.name})));
  const form = h("form", {class: "panel row", id: "mode-form"},
    field("Mode", modeSel), field("Tape", tapeIn), names,
    field("On miss", missSel),
    h("div", {class: "actions"},
      h("button", {type: "submit", class: "primary"}, "Apply"),
      h("button", {type: "button", id: "reset-sequences", onclick: reset,
        title: "the next replayed request of every key gets its first recording again"},
      "Reset sequences")),
    msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const s = await api("PUT", "/api/mode", {body: {
        mode: modeSel.value, tape: tapeIn.value.trim(), on_miss: missSel.value,
      }});
      fill(msg, banner("ok", `Now ${s.mode} on tape ${s.tape} (on miss: ${s.on_miss}).`));
      ctx.refreshState();
    } catch (e) {
      fill(msg, banner("error", e.message));
    }
  });

  async function reset() {
    try {
      const r = await api("POST", "/api/replay/reset", {body: {}});
      fill(msg, banner("ok", `Every replay sequence starts over (generation ${r.generation}).`));
    } catch (e) {
      fill(msg, banner("error", e.message));
    }
  }
  return form;
}

function tapeTable(tapes, mode, ctx) {
  if (!tapes.length) {
    return h("p", {class: "muted"},
      "No tapes yet: send traffic through the proxy in record mode and it lands on tape ",
      h("code", {}, mode.tape), ".");
  }
  const body = h("tbody");
  const table = h("table", {class: "grid", id: "tapes"},
    h("thead", {}, h("tr", {},
      ["Tape", "Recordings", "Matching rules", "Last audit", "Freshness", ""]
        .map((t) => h("th", {class: t === "Recordings" ? "num" : null}, t)))),
    body);
  for (const t of tapes) {
    const cells = {matching: h("td", {class: "muted"}, "…"), audit: h("td", {}, ""),
      fresh: h("td", {}, "")};
    const q = encodeURIComponent(t.name);
    body.append(h("tr", {dataset: {tape: t.name}},
      h("td", {}, h("a", {href: `/ui/recordings?tape=${q}`, class: "strong"}, t.name),
        t.name === mode.tape ? h("span", {class: "tag"}, "current") : null),
      h("td", {class: "num"}, t.recordings.toLocaleString("en")),
      cells.matching, cells.audit, cells.fresh,
      h("td", {class: "links"},
        h("a", {href: `/ui/audits?tape=${q}`}, "audits"), " ",
        h("a", {href: `/ui/diff?a=${q}`}, "diff"))));
    // one request per tape, filled in as each answers: a slow tape never holds up the table
    api("GET", `/api/tapes/${q}/overview`, {signal: ctx.signal}).then((o) => {
      fill(cells.matching, matchingText(o.matching));
      cells.matching.className = "";
      fill(cells.audit, auditCell(o.last_audit));
      fill(cells.fresh, freshnessCell(o.freshness, o.recordings));
    }).catch((e) => {
      if (e.name !== "AbortError") fill(cells.matching, h("span", {class: "error"}, e.message));
    });
  }
  return table;
}

function matchingText(m) {
  const parts = [];
  if (m.ignore_query.length) parts.push(`ignore query ${m.ignore_query.join(", ")}`);
  if (m.ignore_body_paths.length) parts.push(`ignore body ${m.ignore_body_paths.join(", ")}`);
  if (m.match_headers.length) parts.push(`match headers ${m.match_headers.join(", ")}`);
  if (m.ignore_host) parts.push("any host");
  return parts.length ? h("span", {class: "mono small"}, parts.join("; "))
    : h("span", {class: "muted"}, "default");
}

function auditCell(a) {
  if (!a) return h("span", {class: "muted"}, "never audited");
  const link = h("a", {href: `/ui/audits/${a.id}`}, `#${a.id}`);
  if (a.status === "running") return [link, " ", h("span", {class: "tag"}, "running")];
  if (a.status === "failed") return [link, " ", h("span", {class: "verdict v-breaking"}, "failed")];
  const worst = ["breaking", "additive", "value", "latency"].find((v) => a.verdicts[v]);
  return [link, " ",
    h("span", {class: a.passed ? "pass" : "fail"}, a.passed ? "PASS" : "FAIL"), " ",
    worst ? verdictBadge(worst) : verdictBadge("ok"),
    h("span", {class: "muted small", title: fmtTime(a.finished_at)}, ` ${fmtAgo(a.finished_at)}`)];
}

function freshnessCell(f, total) {
  if (!f.verified) return h("span", {class: "muted"}, total ? "not verified yet" : "");
  const counts = Object.entries(f.verdicts).map(([v, n]) => [verdictBadge(v), ` ${n} `]);
  return [
    h("span", {}, `${f.verified} of ${total} verified`),
    h("span", {class: "muted small", title: fmtTime(f.oldest_verified_at)},
      ` · oldest ${fmtAgo(f.oldest_verified_at)} `),
    h("div", {class: "small"}, counts)];
}
