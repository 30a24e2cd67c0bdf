// Calls to the admin API, and the bearer token when `wiretape serve --token` is set.
//
// The token is asked for once (on the first 401), kept in sessionStorage for this tab and
// sent as `Authorization: Bearer`; never in a URL or a cookie. Every state-changing request
// is JSON with `Content-Type: application/json`, which a cross-site form cannot send.

import {h} from "./dom.js";

const TOKEN_KEY = "wiretape.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * api("GET", "/api/recordings", {query: {tape: "x"}}) -> parsed JSON (null for 204).
 * Throws ApiError with the API's `detail` for 4xx/5xx answers.
 */
export async function api(method, path, {query, body, signal} = {}) {
  const qs = query ? new URLSearchParams(clean(query)).toString() : "";
  const url = qs ? `${path}?${qs}` : path;
  for (;;) {
    const headers = {Accept: "application/json"};
    const given = token();
    if (given) headers.Authorization = `Bearer ${given}`;
    let payload;
    if (method !== "GET" && method !== "HEAD") {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body ?? {});
    }
    const r = await fetch(url, {
      method, headers, body: payload, signal, credentials: "omit", cache: "no-store",
      redirect: "error",
    });
    if (r.status === 401) {
      if (given) forgetToken();
      await askToken(given ? "That token was refused. Try again:" : null);
      continue;
    }
    if (r.status === 204) return null;
    const data = await r.json().catch(() => null);
    if (!r.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : r.statusText;
      throw new ApiError(r.status, `${detail} (HTTP ${r.status})`);
    }
    return data;
  }
}

/** Drops empty values so they never reach the API as `?status=`. */
export function clean(query) {
  const out = {};
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "" && v !== false) out[k] = String(v);
  }
  return out;
}

// -- the token prompt ---------------------------------------------------------------------

let pending = null;

/** One prompt for every request that got a 401 meanwhile. */
function askToken(problem) {
  if (!pending) {
    pending = new Promise((resolve) => showPrompt(problem, resolve)).finally(() => {
      pending = null;
    });
  }
  return pending;
}

function showPrompt(problem, resolve) {
  const input = h("input", {
    type: "password", name: "token", autocomplete: "off", required: true,
    "aria-label": "admin API token", id: "token-input",
  });
  const form = h("form", {class: "token-form", method: "dialog"},
    h("h2", {}, "Admin API token"),
    h("p", {}, problem || "This wiretape runs with --token. Enter the token to continue:"),
    input,
    h("p", {class: "muted small"},
      "Kept in this tab's session storage only, and sent as a bearer header."),
    h("div", {class: "actions"}, h("button", {type: "submit", class: "primary"}, "Use token")),
  );
  const dialog = h("dialog", {class: "token-dialog", id: "token-dialog"}, form);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    dialog.close();
    dialog.remove();
    resolve();
  });
  // Escape would leave every waiting request hanging: keep the prompt until a token is given
  dialog.addEventListener("cancel", (ev) => ev.preventDefault());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}
