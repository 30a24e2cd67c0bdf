// Recordings: every filter of GET /api/recordings, newest first, one page at a time by
// cursor (never the whole tape: a tape may hold 100,000). The URL's query string is the
// filter, so a view can be shared or reloaded.

import {api} from "../api.js";
import {
  banner, field, fill, fmtMs, fmtSize, fmtTime, h, select, statusBadge, verdictBadge,
} from "../dom.js";

const FILTERS = ["tape", "method", "host", "path", "status", "q", "since", "until"];
const METHODS = ["", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
export const PAGE_SIZE = 50;
const NUMERIC = new Set(["#", "Seq", "Size", "Time"]);

export async function render(root, ctx) {
  const query = ctx.query;
  const results = h("div", {id: "results"});
  // the page of recordings is asked for at once, not after the tape list
  const page = loadPage(results, query, ctx);
  const tapes = await api("GET", "/api/tapes", {signal: ctx.signal});
  root.append(h("h1", {}, "Recordings"), filterForm(query, tapes, ctx), results);
  await page;
}

function filterForm(query, tapes, ctx) {
  const v = (name) => query.get(name) || "";
  const tapeSel = select({name: "tape"}, [["", "all tapes"], ...tapes.map((t) => t.name)],
    v("tape"));
  const methods = METHODS.includes(v("method")) ? METHODS : [...METHODS, v("method")];
  const form = h("form", {class: "panel filters", id: "filters"},
    field("Tape", tapeSel),
    field("Method", select({name: "method"}, methods.map((m) => [m, m || "any"]), v("method"))),
    field("Host", h("input", {name: "host", value: v("host"), size: 16,
      placeholder: "api.example.com"})),
    field("Path prefix", h("input", {name: "path", value: v("path"), size: 16,
      placeholder: "/api/orders"})),
    field("Status", h("input", {name: "status", value: v("status"), type: "number", min: 100,
      max: 599, class: "narrow"})),
    field("Text in bodies", h("input", {name: "q", value: v("q"), type: "search", size: 16,
      placeholder: "out of stock"})),
    field("Since", h("input", {name: "since", type: "datetime-local", step: 1,
      value: toLocalInput(v("since"))})),
    field("Until", h("input", {name: "until", type: "datetime-local", step: 1,
      value: toLocalInput(v("until"))})),
    h("div", {class: "actions"},
      h("button", {type: "submit", class: "primary"}, "Filter"),
      h("a", {href: "/ui/recordings", class: "button"}, "Clear")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      let value = String(data.get(name) || "").trim();
      if (value && (name === "since" || name === "until")) value = fromLocalInput(value);
      if (value) next.set(name, value);
    }
    const qs = next.toString();
    ctx.navigate(`/ui/recordings${qs ? `?${qs}` : ""}`);
  });
  return form;
}

async function loadPage(results, query, ctx) {
  const params = {limit: PAGE_SIZE};
  for (const name of [...FILTERS, "cursor"]) if (query.get(name)) params[name] = query.get(name);
  fill(results, h("p", {class: "muted"}, "Loading…"));
  let page;
  try {
    page = await api("GET", "/api/recordings", {query: params, signal: ctx.signal});
  } catch (e) {
    if (e.name === "AbortError") throw e;
    fill(results, banner("error", e.message));
    return;
  }
  if (!page.items.length) {
    fill(results, h("p", {class: "muted", id: "empty"},
      query.get("cursor") ? "No older recordings." : "No recordings match these filters."),
    pager(query, null));
    return;
  }
  const showTape = !query.get("tape");
  const table = h("table", {class: "grid recordings", id: "recordings"},
    h("thead", {}, h("tr", {}, [
      "#", showTape ? "Tape" : null, "Seq", "Method", "URL", "Status", "Type", "Size",
      "Time", "Recorded", "Verdict",
    ].filter(Boolean).map((t) => h("th", {class: NUMERIC.has(t) ? "num" : null}, t)))),
    h("tbody", {}, page.items.map((r) => row(r, showTape, ctx))));
  fill(results, table, pager(query, page.next_cursor, page.items.length));
}

function row(r, showTape, ctx) {
  const href = `/ui/recordings/${r.id}`;
  const tr = h("tr", {class: "link-row", dataset: {id: r.id}},
    h("td", {class: "num"}, h("a", {href}, r.id)),
    showTape ? h("td", {}, r.tape) : null,
    h("td", {class: "num"}, r.seq),
    h("td", {}, h("span", {class: "method"}, r.method)),
    h("td", {class: "url", title: r.url}, shortUrl(r.url)),
    h("td", {}, statusBadge(r.status)),
    h("td", {class: "muted small"}, (r.content_type || "").split(";")[0]),
    h("td", {class: "num"}, fmtSize(r.response_size)),
    h("td", {class: "num"}, fmtMs(r.duration_ms)),
    h("td", {class: "small"}, fmtTime(r.recorded_at)),
    h("td", {}, r.last_verdict ? verdictBadge(r.last_verdict) : ""));
  // the whole row opens the exchange; the id cell stays a real link (new tab, copy link)
  tr.addEventListener("click", (ev) => {
    if (ev.target.closest("a") || window.getSelection().toString()) return;
    ctx.navigate(href);
  });
  return tr;
}

function pager(query, nextCursor, shown) {
  const base = new URLSearchParams(query);
  base.delete("cursor");
  const newest = base.toString();
  const older = new URLSearchParams(base);
  if (nextCursor) older.set("cursor", nextCursor);
  return h("div", {class: "pager"},
    query.get("cursor") ? h("a", {href: `/ui/recordings${newest ? `?${newest}` : ""}`,
      class: "button", id: "newest"}, "← Newest") : null,
    shown ? h("span", {class: "muted"}, `${shown} shown, newest first`) : null,
    nextCursor ? h("a", {href: `/ui/recordings?${older}`, class: "button", id: "older"},
      "Older →") : null);
}

/** host[:port]/path?query, without the scheme: what tells recordings apart in a list. */
export function shortUrl(url) {
  const i = url.indexOf("://");
  return i >= 0 ? url.slice(i + 3) : url;
}

// datetime-local inputs hold local wall time; the URL and the API take ISO 8601 in UTC
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 19);
}

function fromLocalInput(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString().replace(".000Z", "Z");
}
