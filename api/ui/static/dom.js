// Building the page: elements and text nodes only. Recorded data is attacker-controlled, so
// nothing here ever parses a string as HTML (the CSP's Trusted Types would refuse it anyway).

/**
 * h("a", {href: "/ui/", class: "x", onclick: fn}, "text", child, [more]) -> HTMLAnchorElement
 * Strings and numbers become text nodes; null, undefined and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "disabled" ||
               name === "selected") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const text = (value) => document.createTextNode(String(value));

// -- formatting ---------------------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** An ISO time as local "2026-12-03 08:03:22" (null -> ""). */
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3 min ago", "2 days ago": for freshness at a glance. */
export function fmtAgo(iso) {
  if (!iso) return "";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 60) return "just now";
  const units = [[86400, "day"], [3600, "hour"], [60, "min"]];
  for (const [n, unit] of units) {
    if (s >= n) {
      const v = Math.floor(s / n);
      return `${v} ${unit}${v === 1 || unit === "min" ? "" : "s"} ago`;
    }
  }
  return "";
}

export function fmtSize(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** A value as JSON text, for old/new columns (undefined shows as an em dash). */
export function fmtValue(v) {
  if (v === undefined) return "—";
  return JSON.stringify(v);
}

// -- small shared pieces ------------------------------------------------------------------

/** Status badge: coloured by class, "failed" for an upstream failure. */
export function statusBadge(status, failure) {
  if (status === null || status === undefined) {
    return h("span", {class: "status s-fail", title: failure || "upstream failed"},
      failure || "failed");
  }
  return h("span", {class: `status s-${String(status)[0]}xx`}, status);
}

const VERDICTS = new Set(["ok", "breaking", "additive", "value", "latency", "refreshed"]);

export function verdictBadge(verdict) {
  if (!verdict) return h("span", {class: "muted"}, "—");
  const cls = VERDICTS.has(verdict) ? verdict : "unknown";
  return h("span", {class: `verdict v-${cls}`}, verdict);
}

/** A message line above a page's content: kind is "error", "ok" or "info". */
export function banner(kind, message) {
  return h("p", {class: `banner ${kind}`, role: kind === "error" ? "alert" : "status"}, message);
}

/** Marks every "REDACTED" in a string so redacted values stand out. */
export function marked(value) {
  const s = String(value);
  if (!s.includes("REDACTED")) return text(s);
  const parts = s.split("REDACTED");
  const out = h("span");
  parts.forEach((part, i) => {
    if (i > 0) out.append(h("mark", {class: "redacted", title: "redacted before storage"},
      "REDACTED"));
    if (part) out.append(text(part));
  });
  return out;
}

/** A <select> with options [[value, label], ...] or [value, ...]. */
export function select(attrs, options, current) {
  return h("select", attrs, options.map((o) => {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    return h("option", {value, selected: String(value) === String(current ?? "")}, label);
  }));
}

export function field(label, control, hint) {
  return h("label", {class: "field"}, h("span", {}, label), control,
    hint ? h("small", {class: "muted"}, hint) : null);
}
