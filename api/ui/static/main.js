// The UI's entry point: a tiny router over real URLs (/ui/recordings?status=500 can be
// shared), the navigation bar and the current mode shown on every page.

import {api} from "./api.js";
import {banner, fill, h} from "./dom.js";
import * as audits from "./pages/audits.js";
import * as diffs from "./pages/diffs.js";
import * as exchange from "./pages/exchange.js";
import * as misses from "./pages/misses.js";
import * as recordings from "./pages/recordings.js";
import * as tapes from "./pages/tapes.js";

// [pattern, page module, nav entry]; a page exports render(root, ctx)
const ROUTES = [
  [/^\/ui\/?$/, tapes, "tapes"],
  [/^\/ui\/tapes\/?$/, tapes, "tapes"],
  [/^\/ui\/recordings\/?$/, recordings, "recordings"],
  [/^\/ui\/recordings\/(\d+)\/?$/, exchange, "recordings"],
  [/^\/ui\/misses\/?$/, misses, "misses"],
  [/^\/ui\/diff\/?$/, diffs, "diff"],
  [/^\/ui\/audits\/?$/, audits, "audits"],
  [/^\/ui\/audits\/(\d+)\/?$/, {render: audits.renderOne}, "audits"],
];

let current = null; // {controller}: the page being shown, aborted when another one opens

/** Go to a UI URL without reloading (pushes history unless `replace`). */
export function navigate(url, {replace = false} = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  show();
}

async function show() {
  current?.controller.abort();
  const controller = new AbortController();
  current = {controller};
  const main = document.getElementById("main");
  const path = location.pathname;
  const found = ROUTES.map(([re, page, nav]) => [re.exec(path), page, nav])
    .find(([m]) => m);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", Boolean(found) && a.dataset.page === found[2]);
  }
  const root = h("div", {class: "page"});
  fill(main, root);
  if (!found) {
    root.append(banner("error", `No page at ${path}.`));
    return;
  }
  const [match, page] = found;
  const ctx = {
    params: match.slice(1),
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    navigate,
    refreshState,
  };
  try {
    await page.render(root, ctx);
  } catch (e) {
    if (controller.signal.aborted || e.name === "AbortError") return;
    root.append(banner("error", e.message || String(e)));
  }
  refreshState();
}

/** The mode, tape and on-miss policy in the header, re-read after each page change. */
export async function refreshState() {
  const el = document.getElementById("state");
  try {
    const s = await api("GET", "/api/mode");
    fill(el,
      h("span", {class: `mode m-${s.mode}`}, s.mode),
      h("span", {}, " tape "), h("a", {href: `/ui/recordings?tape=${encodeURIComponent(s.tape)}`},
        s.tape),
      s.mode === "replay" ? h("span", {class: "muted"}, ` · on miss ${s.on_miss}`) : null);
  } catch (e) {
    fill(el, h("span", {class: "muted"}, e.status === 404 ? "no mode set" : ""));
  }
}

// Links inside the UI change the page in place; anything else (new tab, other origins,
// downloads) is left to the browser.
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey ||
      ev.altKey) return;
  const a = ev.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui")) return;
  if (url.pathname.startsWith("/ui/static/")) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", show);
show();
