// Misses, live: GET /api/misses is polled every second while the page is open and visible
// (simpler than a push channel and as cheap: one indexed query for the newest 100), and new
// misses appear at the top. Each shows its closest recordings with what differs.

import {api} from "../api.js";
import {fill, fmtTime, h, select} from "../dom.js";

export const POLL_MS = 1000;
const LIMIT = 100;

export async function render(root, ctx) {
  const tape = ctx.query.get("tape") || "";
  const tapes = await api("GET", "/api/tapes", {signal: ctx.signal});
  const live = h("span", {class: "live", id: "live"}, "live");
  const list = h("div", {id: "misses"});
  const tapeSel = select({name: "tape", id: "misses-tape"},
    [["", "all tapes"], ...tapes.map((t) => t.name)], tape);
  tapeSel.addEventListener("change", () => ctx.navigate(
    `/ui/misses${tapeSel.value ? `?tape=${encodeURIComponent(tapeSel.value)}` : ""}`));
  root.append(h("div", {class: "title-row"}, h("h1", {}, "Misses"), tapeSel, live),
    h("p", {class: "muted small"}, "Requests that found no recording in replay mode, newest " +
      "first, with the closest recordings of their tape and what differs."),
    list);

  const seen = new Set();
  let first = true;
  const poll = async () => {
    if (ctx.signal.aborted) return;
    if (document.visibilityState === "visible") {
      try {
        const misses = await api("GET", "/api/misses",
          {query: {tape, limit: LIMIT}, signal: ctx.signal});
        show(list, misses, seen, first, ctx);
        first = false;
        fill(live, `live · ${fmtTime(new Date().toISOString()).slice(11)}`);
        live.classList.remove("stale");
      } catch (e) {
        if (e.name === "AbortError") return;
        fill(live, `not updating: ${e.message}`);
        live.classList.add("stale");
      }
    }
    setTimeout(poll, POLL_MS);
  };
  await poll();
}

function show(list, misses, seen, first, ctx) {
  if (!misses.length && !seen.size) {
    fill(list, h("p", {class: "muted", id: "no-misses"}, "No misses yet. They appear here as " +
      "they happen."));
    return;
  }
  list.querySelector("#no-misses")?.remove();
  // oldest first, so each new one lands on top in order
  const fresh = misses.filter((m) => !seen.has(m.id)).reverse();
  for (const m of fresh) {
    seen.add(m.id);
    const card = missCard(m, ctx);
    if (!first) card.classList.add("new");
    list.prepend(card);
  }
  // keep the page as long as the journal's window
  while (list.children.length > LIMIT) list.lastElementChild.remove();
}

function missCard(m, ctx) {
  const closest = m.closest || [];
  const open = closest.length ? h("button", {type: "button", class: "primary open-closest",
    onclick: () => ctx.navigate(`/ui/recordings/${closest[0].id}`)},
  `Open closest (#${closest[0].id})`) : null;
  return h("article", {class: "miss panel", dataset: {id: m.id}},
    h("div", {class: "miss-head"},
      h("span", {class: "method"}, m.request.method), " ",
      h("span", {class: "mono url"}, m.request.url),
      h("span", {class: "muted small"}, ` · tape ${m.tape} · ${fmtTime(m.at)}`), open),
    closest.length ? closest.map((c) => closestView(m, c))
      : h("p", {class: "muted small"}, "The tape has no recordings to compare with."));
}

function closestView(miss, c) {
  return h("div", {class: "closest"},
    h("div", {}, h("a", {href: `/ui/recordings/${c.id}`}, `#${c.id}`), " ",
      urlDiff(miss.request.url, c.url)),
    differences(c.differences));
}

/** The closest recording's URL with the parts that differ from the request's marked. */
function urlDiff(live, recorded) {
  let a;
  let b;
  try {
    a = new URL(live);
    b = new URL(recorded);
  } catch {
    return h("span", {class: "mono"}, recorded);
  }
  const part = (value, differs) => (differs ? h("mark", {class: "diff"}, value) : value);
  const sent = new URLSearchParams(a.search);
  const params = [...new URLSearchParams(b.search)].map(([k, v], i) => [
    i ? "&" : "?", part(`${k}=${v}`, sent.getAll(k).join() !== new URLSearchParams(b.search)
      .getAll(k).join())]);
  return h("span", {class: "mono"},
    part(`${b.protocol}//`, a.protocol !== b.protocol), part(b.host, a.host !== b.host),
    part(b.pathname, a.pathname !== b.pathname), params);
}

// explain() words, e.g. "query param 'page': '2' != '1'" (live first), "query param 'page'
// not recorded (sent '2')", "query param 'x' missing (recorded '1')"
const PATTERNS = [
  [/^(.+?): (.*) != (.*)$/, (m) => [m[1], m[2], m[3]]],
  [/^(.+?) not recorded \(sent (.*)\)$/, (m) => [m[1], m[2], "—"]],
  [/^(.+?) missing \(recorded (.*)\)$/, (m) => [m[1], "—", m[2]]],
];

function differences(list) {
  if (!list || !list.length) return null;
  return h("table", {class: "differences"},
    h("thead", {}, h("tr", {}, h("th", {}, "differs"), h("th", {}, "request"),
      h("th", {}, "recording"))),
    h("tbody", {}, list.map((d) => {
      for (const [re, parts] of PATTERNS) {
        const m = re.exec(d);
        if (m) {
          const [what, sent, recorded] = parts(m);
          return h("tr", {}, h("th", {}, what), h("td", {class: "mono"}, h("mark", {class: "sent"},
            unquote(sent))), h("td", {class: "mono"}, h("mark", {class: "recorded"},
            unquote(recorded))));
        }
      }
      return h("tr", {}, h("td", {colspan: 3}, d));
    })));
}

const unquote = (s) => (s.length > 1 && s.startsWith("'") && s.endsWith("'") ? s.slice(1, -1) : s);
