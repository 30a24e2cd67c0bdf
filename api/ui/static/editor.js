// Editing a recorded response: status, headers, body and note, checked as they are typed
// (a JSON body must parse before it can be saved), then PATCHed; the API checks the same
// again and its answer is shown as is. Replay serves the edit from the next request.

import {api} from "./api.js";
import {banner, field, fill, h, select} from "./dom.js";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function editForm(rec, {onSaved, onCancel}) {
  const resp = rec.response;
  const body = resp ? resp.body : {encoding: "text", content: ""};
  const status = h("input", {type: "number", name: "status", min: 100, max: 599, required: true,
    value: String(resp ? resp.status : 200), class: "narrow", id: "edit-status"});
  const headers = h("textarea", {name: "headers", rows: Math.min(12, (resp?.headers.length ?? 0) + 2),
    class: "code", spellcheck: "false", id: "edit-headers"});
  headers.value = (resp ? resp.headers : []).map(([n, v]) => `${n}: ${v}`).join("\n");
  const encoding = select({name: "encoding", id: "edit-encoding"},
    [["json", "JSON"], ["text", "text"], ["base64", "base64 (binary)"]], body.encoding);
  const content = h("textarea", {name: "body", rows: 14, class: "code", spellcheck: "false",
    id: "edit-body"});
  content.value = body.encoding === "json" ? JSON.stringify(body.content, null, 2)
    : body.content ?? "";
  // a body too big to show whole is shown by its first bytes: not editable here, and kept
  const partial = resp && resp.body_complete === false;
  if (partial) {
    content.disabled = true;
    encoding.disabled = true;
  }
  const note = h("input", {name: "note", value: rec.note || "", size: 40, id: "edit-note",
    placeholder: "why this was edited"});
  const problems = h("div", {class: "problems", id: "edit-problems", "aria-live": "polite"});
  const save = h("button", {type: "submit", class: "primary", id: "edit-save"}, "Save");
  const msg = h("div", {class: "msg"});

  const form = h("form", {class: "panel editor", id: "editor"},
    h("h2", {}, "Edit the recorded response"),
    h("div", {class: "row"}, field("Status", status), field("Body as", encoding),
      field("Note", note)),
    field("Headers", headers, "one per line, Name: value. Content-Length follows the body; " +
      "the body is stored with the Content-Encoding given here."),
    field("Body", content, partial ? "Too big to edit here: it is kept as it is. Replace " +
      "it through the API (PATCH with a body) if you must." : undefined),
    problems,
    h("div", {class: "actions"}, save,
      h("button", {type: "button", onclick: onCancel}, "Cancel")),
    msg);

  const check = () => {
    const found = validate();
    fill(problems, found.errors.map((e) => h("p", {class: "error"}, e)));
    save.disabled = found.errors.length > 0;
    return found;
  };

  function validate() {
    const errors = [];
    const code = Number(status.value);
    if (!Number.isInteger(code) || code < 100 || code > 599) {
      errors.push("Status must be a whole number from 100 to 599.");
    }
    const pairs = [];
    headers.value.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      const colon = line.indexOf(":");
      if (colon <= 0) {
        errors.push(`Header line ${i + 1} needs "Name: value".`);
        return;
      }
      pairs.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    });
    let parsed;
    if (partial) {
      return {errors, patch: {status: code, headers: pairs, note: note.value}};
    }
    if (encoding.value === "json") {
      try {
        parsed = JSON.parse(content.value);
      } catch (e) {
        errors.push(`Body is not valid JSON: ${e.message}`);
      }
    } else if (encoding.value === "base64" && !BASE64.test(content.value.replace(/\s+/g, ""))) {
      errors.push("Body is not valid base64.");
    }
    const value = encoding.value === "json" ? parsed
      : encoding.value === "base64" ? content.value.replace(/\s+/g, "") : content.value;
    return {errors, patch: {
      status: code, headers: pairs, body: {encoding: encoding.value, content: value},
      note: note.value,
    }};
  }

  for (const el of [status, headers, encoding, content, note]) el.addEventListener("input", check);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const {errors, patch} = check();
    if (errors.length) return;
    save.disabled = true;
    try {
      const updated = await api("PATCH", `/api/recordings/${rec.id}`, {body: patch});
      onSaved(updated);
    } catch (e) {
      fill(msg, banner("error", e.message));
      save.disabled = false;
    }
  });
  check();
  return form;
}
