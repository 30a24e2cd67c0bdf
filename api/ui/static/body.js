// A body as the API gives it ({encoding: json|text|base64, content}, already decoded from
// gzip/br/deflate), shown as a JSON tree, text, hex or an image. Everything recorded is
// shown as text nodes: a recorded "<script>" is characters on the screen, nothing more.

import {fill, fmtSize, h, marked, text} from "./dom.js";

const TEXT_LIMIT = 256 * 1024; // characters shown before "show all"
const HEX_LIMIT = 64 * 1024; // bytes shown in the hex view
// images previewed through a data: URL (the CSP's img-src allows data:); the recorded
// Content-Type is only looked up here, never copied into the URL
const IMAGE_TYPES = new Map([
  ["image/png", "image/png"], ["image/jpeg", "image/jpeg"], ["image/jpg", "image/jpeg"],
  ["image/gif", "image/gif"], ["image/webp", "image/webp"], ["image/avif", "image/avif"],
  ["image/bmp", "image/bmp"], ["image/x-icon", "image/x-icon"],
  ["image/vnd.microsoft.icon", "image/x-icon"], ["image/svg+xml", "image/svg+xml"],
]);

export function header(headers, name) {
  const lower = name.toLowerCase();
  const found = headers.find(([n]) => n.toLowerCase() === lower);
  return found ? found[1] : null;
}

/** The viewer: tabs for every way this body can be read, the best one open. */
export function bodyView(body, headers) {
  const type = (header(headers, "content-type") || "").split(";")[0].trim().toLowerCase();
  const encoding = header(headers, "content-encoding");
  const bytes = bodyBytes(body);
  if (!bytes.length && body.encoding !== "json") {
    return h("div", {class: "body empty muted"}, "(empty body)");
  }
  const views = [];
  if (body.encoding === "json") views.push(["JSON", () => jsonTree(body.content)]);
  if (body.encoding === "base64" && IMAGE_TYPES.has(type)) {
    views.push(["Image", () => imageView(body.content, IMAGE_TYPES.get(type))]);
  }
  views.push(["Text", () => textView(body.encoding === "json"
    ? JSON.stringify(body.content, null, 2) : decodeText(body, bytes))]);
  views.push(["Hex", () => hexView(bytes)]);
  const content = h("div", {class: "body-content"});
  const tabs = h("div", {class: "tabs", role: "tablist"});
  const open = (i) => {
    tabs.querySelectorAll("button").forEach((b, j) => {
      b.classList.toggle("active", i === j);
      b.setAttribute("aria-selected", String(i === j));
    });
    fill(content, views[i][1]());
  };
  views.forEach(([label], i) => tabs.append(
    h("button", {type: "button", role: "tab", class: "tab", onclick: () => open(i)}, label)));
  const info = [`${fmtSize(bytes.length)}`, type || "no content type",
    encoding ? `decoded from ${encoding}` : null, body.encoding === "base64" ? "binary" : null];
  const view = h("div", {class: "body"},
    h("div", {class: "body-bar"}, tabs, h("span", {class: "muted small"},
      info.filter(Boolean).join(" · "))),
    content);
  open(0);
  return view;
}

/** The body's bytes as shown (UTF-8 of text and compact JSON; base64 decoded). */
export function bodyBytes(body) {
  if (body.encoding === "base64") {
    const bin = atob(body.content || "");
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  const s = body.encoding === "json" ? JSON.stringify(body.content) : body.content || "";
  return new TextEncoder().encode(s);
}

function decodeText(body, bytes) {
  if (body.encoding === "text") return body.content || "";
  return new TextDecoder("utf-8", {fatal: false}).decode(bytes);
}

function textView(s) {
  const pre = h("pre", {class: "code"});
  if (s.length <= TEXT_LIMIT) return fill(pre, marked(s));
  fill(pre, marked(s.slice(0, TEXT_LIMIT)));
  const more = h("button", {type: "button", class: "link", onclick: () => {
    fill(pre, marked(s));
    more.remove();
  }}, `show all ${s.length.toLocaleString("en")} characters`);
  return h("div", {}, pre, more);
}

function hexView(bytes) {
  const shown = bytes.subarray(0, HEX_LIMIT);
  const lines = [];
  for (let off = 0; off < shown.length; off += 16) {
    const row = shown.subarray(off, off + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."))
      .join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  const pre = h("pre", {class: "code hex"}, lines.join("\n"));
  if (bytes.length <= HEX_LIMIT) return pre;
  return h("div", {}, pre, h("p", {class: "muted small"},
    `first ${fmtSize(HEX_LIMIT)} of ${fmtSize(bytes.length)}`));
}

function imageView(b64, mime) {
  return h("div", {class: "image"},
    h("img", {src: `data:${mime};base64,${b64}`, alt: "response body as an image"}));
}

// -- JSON tree ----------------------------------------------------------------------------

/** Objects and arrays fold; levels below the third are built only when opened. */
export function jsonTree(value) {
  return h("div", {class: "json code"}, node(value, null, 0));
}

function node(value, key, depth) {
  const label = key === null ? null : h("span", {class: "k"}, `${key}: `);
  if (value === null || typeof value !== "object") {
    return h("div", {class: "leaf"}, label, scalar(value));
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (!entries.length) return h("div", {class: "leaf"}, label, `${open}${close}`);
  const summary = h("summary", {}, label, open,
    h("span", {class: "muted small"}, ` ${entries.length} ${isArray ? "items" : "keys"} `));
  const details = h("details", {class: "branch"}, summary);
  const children = h("div", {class: "children"});
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    for (const [k, v] of entries) children.append(node(v, isArray ? k : JSON.stringify(k),
      depth + 1));
    children.append(text(close));
  };
  details.append(children);
  details.addEventListener("toggle", () => details.open && build());
  if (depth < 3) {
    build();
    details.open = true;
  }
  return details;
}

function scalar(v) {
  if (typeof v === "string") return h("span", {class: "s"}, marked(JSON.stringify(v)));
  if (typeof v === "number") return h("span", {class: "n"}, String(v));
  return h("span", {class: "b"}, String(v));
}
