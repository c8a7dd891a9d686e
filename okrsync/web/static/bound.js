// The binding page's lists: every bound KR (with a link to edit it), one binding's versions, and
// retiring it (a reason, then a confirmation).
import { api, el, fill, fmtTime, link, say, sayError, table } from "/static/app.js";

/** Every bound key result, retired ones too; active ones link to their edit page. */
export async function drawBound(node) {
  const { bindings } = await api("/api/bindings");
  const rows = bindings.map((b) =>
    el(
      "tr",
      { "data-testid": "bound-row", "data-id": b.id, "data-status": b.status },
      el("td", {}, link(`/kr/${encodeURIComponent(b.id)}`, b.id)),
      el("td", { text: b.spec.title || "" }),
      el("td", { text: b.objective_id }),
      el("td", { text: b.spec.metric }),
      el("td", { text: Object.entries(b.spec.dimensions || {}).map(([k, v]) => `${k}=${v}`).join(", ") }),
      el("td", { class: "num", text: b.spec.target }),
      el("td", { text: b.status }),
      el("td", { class: "num", text: String(b.version) }),
      el("td", { class: "muted", text: `${b.updated_by} ${fmtTime(b.updated_at)}` }),
      el("td", {}, b.status === "active" ? link(`/bind?edit=${encodeURIComponent(b.id)}`, "edit or retire", { testid: "bound-edit" }) : null),
    ),
  );
  fill(
    node,
    rows.length
      ? table(["id", "title", "objective", "metric", "pins", "target", "status", "version", "last change", ""], rows, { testid: "bound-table" })
      : el("p", { class: "empty", text: "No bound key results yet." }),
  );
}

/** A binding's versions, newest first, each with what changed against the one before. */
export function drawVersions(node, b) {
  const rows = [...b.versions].reverse().map((v) =>
    el(
      "tr",
      { "data-testid": "version-row", "data-version": String(v.version), "data-action": v.action },
      el("td", { class: "num", text: String(v.version) }),
      el("td", {}, el("code", { text: v.action })),
      el("td", { text: v.actor }),
      el("td", { class: "time", text: fmtTime(v.at) }),
      el("td", { text: v.reason }),
      el("td", { "data-testid": "version-changes", text: v.changes }),
    ),
  );
  fill(node, table(["version", "what", "who", "when", "why", "changes"], rows, { testid: "versions-table" }));
}

/** Retire: a reason first, then a confirmation naming what happens. */
export function startRetire(b, status) {
  const ask = document.getElementById("retire-confirm");
  document.getElementById("retire").addEventListener("click", () => {
    const why = document.getElementById("retire-reason").value.trim();
    if (!why) {
      say(status, "Say why the key result is retired", "error", "the reason is kept in the audit log");
      document.getElementById("retire-reason").focus();
      return;
    }
    document.getElementById("retire-question").textContent =
      `Retire ${b.id}, “${b.spec.title || b.id}”? It leaves the objectives tree and is no longer computed; its values, their records and its versions stay.`;
    say(status, "");
    ask.hidden = false;
    document.getElementById("retire-yes").focus();
  });
  document.getElementById("retire-no").addEventListener("click", () => (ask.hidden = true));
  document.getElementById("retire-yes").addEventListener("click", async () => {
    const why = document.getElementById("retire-reason").value.trim();
    try {
      const done = await api(`/api/bindings/${encodeURIComponent(b.id)}/retire`, { method: "POST", body: { reason: why } });
      ask.hidden = true;
      fill(
        status,
        el("span", { "data-testid": "retired", text: `Retired ${done.id} (version ${done.version}). Its values and records stay: ` }),
        link(`/kr/${encodeURIComponent(done.id)}`, "open its page", { testid: "retired-link" }),
      );
      status.dataset.kind = "info";
      status.hidden = false;
      for (const node of document.querySelectorAll("#bind-form input, #bind-form select, #bind-form button, #retire-section button, #retire-section input")) node.disabled = true;
      const fresh = await api(`/api/bindings/${encodeURIComponent(b.id)}`);
      drawVersions(document.getElementById("versions"), fresh);
      await drawBound(document.getElementById("bound"));
    } catch (e) {
      sayError(status, e);
    }
  });
}
