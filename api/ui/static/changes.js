// A list of changes ({path, kind, old, new}, as the diff endpoints give them) side by side:
// breaking ones first, noise greyed at the end.

import {fmtValue, h, marked, verdictBadge} from "./dom.js";

const RANK = {breaking: 0, additive: 1, value: 2, latency: 3};

/** The drift class a change falls in, by the rules audits use (README, "Audit a tape"). */
export function changeClass(c) {
  if (c.path === "response.status") {
    return String(c.old)[0] !== String(c.new)[0] ? "breaking" : "value";
  }
  if (c.kind === "removed" || c.kind === "type_changed") return "breaking";
  if (c.path === "response.headers.content-type") return "breaking";
  if (c.kind === "added") return "additive";
  return "value";
}

export const changeKey = (c) =>
  `${c.path}\u0000${c.kind}\u0000${JSON.stringify(c.old)}\u0000${JSON.stringify(c.new)}`;

/**
 * `all`: the strict diff's changes; `counted`: the non-strict ones. What only the strict
 * diff has is noise (timestamps, request ids) and is shown greyed.
 */
export function classify(all, counted) {
  const kept = new Set(counted.map(changeKey));
  return all.map((c) => ({...c, noise: !kept.has(changeKey(c)), cls: changeClass(c)}))
    .sort((x, y) => (x.noise - y.noise) || (RANK[x.cls] - RANK[y.cls]) ||
      x.path.localeCompare(y.path));
}

export const worst = (changes) => changes.filter((c) => !c.noise)
  .reduce((w, c) => (w === null || RANK[c.cls] < RANK[w] ? c.cls : w), null);

export function changeTable(changes, {a = "A", b = "B"} = {}) {
  if (!changes.length) return h("p", {class: "muted"}, "No differences.");
  return h("table", {class: "grid changes"},
    h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Path"), h("th", {}, "Kind"),
      h("th", {}, a), h("th", {}, b))),
    h("tbody", {}, changes.map((c) => h("tr", {class: c.noise ? "noise" : `c-${c.cls}`,
      dataset: {path: c.path, kind: c.kind}},
    h("td", {}, c.noise ? h("span", {class: "tag", title: "differs between answers to the " +
      "same request: left out unless strict"}, "noise") : verdictBadge(c.cls)),
    h("td", {class: "mono"}, c.path),
    h("td", {class: `kind k-${c.kind}`}, c.kind),
    h("td", {class: "mono old"}, c.kind === "added" ? "—" : marked(fmtValue(c.old))),
    h("td", {class: "mono new"}, c.kind === "removed" ? "—" : marked(fmtValue(c.new)))))));
}
