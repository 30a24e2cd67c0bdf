// One exchange: request and response side by side (headers, body, timings), copy as curl,
// edit, delete, diff with another recording, and its audit history.

import {api, token} from "../api.js";
import {bodyView, header} from "../body.js";
import {
  banner, fill, fmtMs, fmtTime, h, marked, statusBadge, verdictBadge,
} from "../dom.js";
import {editForm} from "../editor.js";

export async function render(root, ctx) {
  const id = ctx.params[0];
  const rec = await api("GET", `/api/recordings/${id}`, {signal: ctx.signal});
  show(root, rec, ctx, null);
}

function show(root, rec, ctx, message) {
  const msg = h("div", {class: "msg", id: "exchange-msg"}, message);
  const sides = h("div", {class: "sides"}, requestSide(rec), responseSide(rec));
  const curl = h("div", {id: "curl"});
  const tape = encodeURIComponent(rec.tape);
  fill(root,
    h("h1", {}, `Recording ${rec.id}`),
    h("p", {class: "meta"},
      "tape ", h("a", {href: `/ui/recordings?tape=${tape}`}, rec.tape),
      ` · seq ${rec.seq} · recorded ${fmtTime(rec.recorded_at)} · took ${fmtMs(rec.duration_ms)}`,
      h("span", {class: "muted", title: "match key"}, ` · key ${rec.match_key.slice(0, 12)}`),
      rec.note ? [" · note: ", h("em", {}, rec.note)] : null),
    toolbar(rec, ctx, {root, msg, sides, curl}),
    msg, curl, sides,
    streamView(rec),
    h("h2", {}, "Audits of this recording"),
    auditHistory(rec, ctx));
}

function toolbar(rec, ctx, parts) {
  const other = h("input", {type: "number", min: 1, class: "narrow", placeholder: "id",
    "aria-label": "recording to diff with", id: "diff-with"});
  const diff = h("form", {class: "inline"}, other,
    h("button", {type: "submit"}, "Diff with"));
  diff.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (other.value) ctx.navigate(`/ui/diff?ra=${rec.id}&rb=${encodeURIComponent(other.value)}`);
  });
  const del = h("button", {type: "button", class: "danger", id: "delete"}, "Delete");
  del.addEventListener("click", () => confirmDelete(rec, ctx, del));
  const edit = h("button", {type: "button", class: "primary", id: "edit"}, "Edit response");
  edit.addEventListener("click", () => {
    const form = editForm(rec, {
      onSaved: (updated) => show(parts.root, updated, ctx,
        banner("ok", "Saved: replay serves this response from the next request.")),
      onCancel: () => show(parts.root, rec, ctx, null),
    });
    parts.sides.replaceChildren(requestSide(rec), form);
    edit.disabled = true;
  });
  const copy = h("button", {type: "button", id: "copy-curl"}, "Copy as curl");
  copy.addEventListener("click", () => showCurl(rec, parts.curl));
  return h("div", {class: "toolbar"}, edit, copy, diff, del);
}

function confirmDelete(rec, ctx, button) {
  // an in-page confirmation: window.confirm would block the page and tests alike
  const sure = h("button", {type: "button", class: "danger", id: "delete-confirm"},
    `Delete recording ${rec.id}`);
  const cancel = h("button", {type: "button"}, "Keep it");
  const box = h("span", {class: "confirm"}, "Replay will no longer serve it. ", sure, cancel);
  button.replaceWith(box);
  cancel.addEventListener("click", () => box.replaceWith(button));
  sure.addEventListener("click", async () => {
    try {
      await api("DELETE", `/api/recordings/${rec.id}`);
      ctx.navigate(`/ui/recordings?tape=${encodeURIComponent(rec.tape)}`);
    } catch (e) {
      box.replaceWith(banner("error", e.message));
    }
  });
}

function requestSide(rec) {
  const r = rec.request;
  return h("section", {class: "side", id: "request"},
    h("h2", {}, "Request"),
    h("p", {class: "start mono"}, h("span", {class: "method"}, r.method), " ", marked(r.url),
      h("span", {class: "muted"}, ` ${r.http_version}`)),
    headerTable(r.headers),
    bodyView(r.body, r.headers));
}

function responseSide(rec) {
  const r = rec.response;
  if (!r) {
    const f = rec.failure || {kind: "error", message: ""};
    return h("section", {class: "side", id: "response"},
      h("h2", {}, "Response"),
      h("p", {class: "start"}, statusBadge(null, f.kind), " the upstream failed: ",
        h("span", {class: "mono"}, f.message || f.kind)),
      h("p", {class: "muted small"}, "Replay answers this request with the same kind of failure."));
  }
  return h("section", {class: "side", id: "response"},
    h("h2", {}, "Response"),
    h("p", {class: "start mono"}, statusBadge(r.status), ` ${r.reason}`,
      h("span", {class: "muted"}, ` ${r.http_version} · ${fmtMs(rec.duration_ms)}`)),
    headerTable(r.headers),
    bodyView(r.body, r.headers));
}

function headerTable(headers) {
  if (!headers.length) return h("p", {class: "muted small"}, "no headers");
  return h("table", {class: "headers"}, h("tbody", {}, headers.map(([n, v]) =>
    h("tr", {class: v.includes("REDACTED") ? "has-redacted" : null},
      h("th", {}, n), h("td", {class: "mono"}, marked(v))))));
}

const CHUNKS_SHOWN = 500;
const TRUNCATED = {
  client: "the client left before it ended (replay sends these chunks, then keeps the " +
    "stream open until the client leaves)",
  shutdown: "wiretape stopped before it ended (replay sends these chunks, then keeps the " +
    "stream open until the client leaves)",
  upstream: "the upstream broke off (replay sends these chunks, then breaks off too)",
};

// A streamed response as it arrived: each chunk with when it came (ms since the request was
// sent, and since the chunk before), its size and, when short, its content; and a big body's
// download, since the response side shows only its first 64 KiB.
function streamView(rec) {
  const r = rec.response;
  if (!r || (!r.chunks && r.body_complete !== false)) return null;
  const parts = [h("h2", {}, r.chunks ? "Stream" : "Body")];
  if (r.body_complete === false) {
    const msg = h("span", {class: "small"});
    const button = h("button", {type: "button", id: "download-body"}, "Download the whole body");
    button.addEventListener("click", () => downloadBody(rec, button, msg));
    parts.push(h("p", {class: "muted small", id: "big-body"},
      `${r.size.toLocaleString()} bytes: too big to show whole, so the response shows its ` +
      "first 64 KiB. Replay reads it from the store as it sends it. ", button, " ", msg));
  }
  if (r.chunks) {
    const total = r.chunks.length;
    parts.push(h("p", {class: "meta", id: "stream-summary"},
      `${total} chunk${total === 1 ? "" : "s"} · head after ${fmtMs(r.head_ms)}` +
      (total ? ` · last chunk after ${fmtMs(r.chunks[total - 1].offset_ms)}` : ""),
      r.truncated ? " " : null,
      r.truncated ? h("span", {class: "tag truncated", id: "stream-truncated"},
        `stored before its end: ${TRUNCATED[r.truncated] || r.truncated}`) : null));
    let previous = r.head_ms;
    const rows = r.chunks.slice(0, CHUNKS_SHOWN).map((c) => {
      const gap = c.offset_ms - previous;
      previous = c.offset_ms;
      return h("tr", {},
        h("td", {class: "num"}, String(c.index)),
        h("td", {class: "num"}, fmtMs(c.offset_ms)),
        h("td", {class: "num muted"}, `+${fmtMs(gap)}`),
        h("td", {class: "num"}, `${c.size.toLocaleString()} B`),
        h("td", {}, c.content === null || c.content === undefined
          ? h("span", {class: "muted small"}, "not shown")
          : h("pre", {class: "code chunk"}, c.encoding === "base64"
            ? `base64: ${c.content}` : c.content)));
    });
    parts.push(h("table", {class: "grid chunks", id: "chunks"},
      h("thead", {}, h("tr", {}, ["#", "arrived", "after the one before", "size", "content"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
    if (total > CHUNKS_SHOWN) {
      parts.push(h("p", {class: "muted small"}, `and ${total - CHUNKS_SHOWN} more chunks`));
    }
  }
  return h("section", {class: "panel", id: "stream"}, parts);
}

async function downloadBody(rec, button, msg) {
  // fetch with the token (a plain link could not send it), then hand the bytes over
  button.disabled = true;
  try {
    const headers = {};
    const given = token();
    if (given) headers.Authorization = `Bearer ${given}`;
    const r = await fetch(`/api/recordings/${rec.id}/body`,
      {headers, credentials: "omit", cache: "no-store"});
    if (!r.ok) throw new Error(`the body could not be read (HTTP ${r.status})`);
    const url = URL.createObjectURL(await r.blob());
    const a = h("a", {href: url, download: `recording-${rec.id}.body`});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    fill(msg, "downloaded");
  } catch (e) {
    fill(msg, banner("error", e.message));
  } finally {
    button.disabled = false;
  }
}

function showCurl(rec, box) {
  const cmd = curlCommand(rec.request);
  const pre = h("pre", {class: "code curl", id: "curl-command"}, cmd);
  const note = cmd.includes("REDACTED")
    ? h("p", {class: "muted small"}, "Values shown as REDACTED were never stored: put the " +
      "real ones in before running it.") : null;
  const status = h("span", {class: "muted small"});
  fill(box, h("div", {class: "panel"}, h("div", {class: "row"}, h("strong", {}, "curl"), status),
    pre, note));
  navigator.clipboard?.writeText(cmd).then(
    () => fill(status, " copied to the clipboard"),
    () => fill(status, " select the command to copy it"));
}

const CURL_SKIP = new Set(["host", "content-length", "connection", "transfer-encoding",
  "content-encoding", "accept-encoding", "proxy-connection", "proxy-authorization", "keep-alive"]);

/** The recorded request as a curl command line (POSIX shell quoting). */
export function curlCommand(req) {
  const q = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;
  const parts = ["curl"];
  if (req.method !== "GET") parts.push("-X", q(req.method));
  for (const [n, v] of req.headers) {
    if (!CURL_SKIP.has(n.toLowerCase())) parts.push("-H", q(`${n}: ${v}`));
  }
  if (header(req.headers, "accept-encoding")) parts.push("--compressed");
  let prefix = "";
  const b = req.body;
  if (b.encoding === "json") {
    parts.push("--data-raw", q(JSON.stringify(b.content)));
  } else if (b.encoding === "text" && b.content) {
    parts.push("--data-raw", q(b.content));
  } else if (b.encoding === "base64" && b.content) {
    prefix = `printf %s ${q(b.content)} | base64 -d | `;
    parts.push("--data-binary", "@-");
  }
  parts.push(q(req.url));
  return prefix + parts.join(" ");
}

function auditHistory(rec, ctx) {
  const box = h("div", {id: "recording-audits"}, h("p", {class: "muted"}, "Loading…"));
  api("GET", `/api/recordings/${rec.id}/audits`, {signal: ctx.signal}).then((rows) => {
    if (!rows.length) {
      fill(box, h("p", {class: "muted"}, "No audit has checked this recording yet. ",
        h("a", {href: `/ui/audits?tape=${encodeURIComponent(rec.tape)}`}, "Audit its tape")));
      return;
    }
    fill(box, h("table", {class: "grid"},
      h("thead", {}, h("tr", {}, ["Audit", "Checked", "Verdict", "Live", "Findings"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, h("a", {href: `/ui/audits/${r.audit_id}`}, `#${r.audit_id}`)),
        h("td", {class: "small"}, fmtTime(r.checked_at)),
        h("td", {}, verdictBadge(r.verdict), r.refreshed ? h("span", {class: "tag"}, "refreshed")
          : null),
        h("td", {}, statusBadge(r.live_status, r.live_failure)),
        h("td", {}, r.findings.map((f) => h("div", {class: "small"},
          verdictBadge(f.class), " ", f.message))))))));
  }).catch((e) => {
    if (e.name !== "AbortError") fill(box, banner("error", e.message));
  });
  return box;
}
