// Bind a key result (`/bind`, roles with `bind`): library, pins from real values, preview, save; an
// objective of its own under an existing one. `/bind?edit=ID` edits a bound KR (preview with what would
// change, then a new version) or retires it (bound.js). Every change goes through /api/bindings.
import { $, api, el, fill, fmtShortTime, fmtValue, link, say, sayError, startPage, table } from "/static/app.js";
import { COLORS } from "/static/charts.js";
import { drawBound, drawVersions, startRetire } from "/static/bound.js";

const status = $("page-status");
const editing = new URLSearchParams(location.search).get("edit");
let library = null;
let chart = null;
let current = null; // the binding being edited (GET /api/bindings/{id})

async function main() {
  await startPage({ active: "bind" });
  library = await api("/api/bindings/library");
  const objectives = library.objectives.map((o) => el("option", { value: o, text: o }));
  fill($("objective"), ...objectives);
  fill($("obj-parent"), ...objectives.map((o) => o.cloneNode(true)));
  fill($("metric"), ...library.metrics.map((m) => el("option", { value: m.name, text: m.name })));
  $("metric").addEventListener("change", drawMetric);
  $("new-objective").addEventListener("change", () => {
    const on = $("new-objective").checked;
    $("new-objective-fields").hidden = !on;
    $("objective").disabled = on;
    for (const id of ["obj-id", "obj-title"]) $(id).required = on;
  });
  $("baseline-start").addEventListener("change", () => ($("baseline").disabled = $("baseline-start").checked));
  $("preview").addEventListener("click", () => preview().catch((e) => sayError(status, e)));
  $("bind-form").addEventListener("submit", (e) => {
    e.preventDefault();
    save().catch((err) => sayError(status, err));
  });
  $("bind-form").addEventListener("input", () => ($("save").disabled = true)); // preview what you save
  drawMetric();
  if (editing) await startEdit(editing);
  await drawBound($("bound"));
  say(status, "");
}

/** Fill the form with the bound KR's current version: id and creation fields fixed. */
async function startEdit(id) {
  current = await api(`/api/bindings/${encodeURIComponent(id)}`);
  const s = current.spec;
  document.title = `Edit ${current.id} · okrsync`;
  $("page-h1").textContent = `Edit ${current.id}`;
  $("page-about").textContent =
    "Change the key result and preview it before saving: saving makes a new version (before and after go to the audit log); values computed before keep the definition they had.";
  $("define-title").textContent = `Definition (version ${current.version}, ${current.status})`;
  $("kr-id").value = current.id;
  $("kr-id").readOnly = true;
  $("new-objective-toggle").hidden = true;
  $("objective").value = current.objective_id;
  $("kr-title").value = s.title || "";
  $("metric").value = s.metric;
  drawMetric();
  for (const [dim, v] of Object.entries(s.dimensions || {})) {
    const sel = $(`pin-${dim}`);
    if (sel && ![...sel.options].some((o) => o.value === String(v))) sel.append(el("option", { value: String(v), text: String(v) }));
    if (sel) sel.value = String(v);
  }
  $("period").value = s.period || "";
  $("direction").value = s.direction || "increase";
  $("baseline").value = s.baseline ?? "0";
  $("target").value = s.target ?? "";
  $("cancel-edit").hidden = false;
  $("save").textContent = "Save a new version";
  drawVersions($("versions"), current);
  $("versions-section").hidden = false;
  if (current.status === "active") {
    $("retire-section").hidden = false;
    startRetire(current, status);
  } else {
    for (const node of $("bind-form").querySelectorAll("input, select, button")) node.disabled = true;
    say(status, `${current.id} is retired: its definition is kept as it was.`, "info");
  }
}

function metric() {
  return library.metrics.find((m) => m.name === $("metric").value);
}

function drawMetric() {
  const m = metric();
  if (!m) return;
  $("metric-about").textContent = [m.description, m.unit && `unit: ${m.unit}`].filter(Boolean).join(" · ");
  const fields = Object.entries(m.dimensions).map(([dim, values]) =>
    el(
      "div",
      { class: "field" },
      el("label", { for: `pin-${dim}`, text: `${dim} =` }),
      el(
        "select",
        { id: `pin-${dim}`, "data-testid": `pin-${dim}`, "data-dim": dim },
        el("option", { value: "", text: "(any)" }),
        ...values.map((v) => el("option", { value: String(v), text: String(v) })),
      ),
    ),
  );
  fill($("pins"), ...fields);
  $("save").disabled = true;
}

/** The form as the API takes it. Numbers travel as the text typed: the server says what is wrong. */
function fields() {
  const dimensions = {};
  for (const s of $("pins").querySelectorAll("select")) if (s.value) dimensions[s.dataset.dim] = s.value;
  return {
    title: $("kr-title").value.trim() || $("kr-id").value.trim(),
    metric: $("metric").value,
    dimensions,
    period: $("period").value.trim() || null,
    direction: $("direction").value,
    baseline: $("baseline-start").checked ? "start" : $("baseline").value.trim() || "0",
    target: $("target").value.trim(),
    reason: $("reason").value.trim(),
  };
}

function body() {
  const out = { kr_id: $("kr-id").value.trim(), objective_id: $("objective").value, ...fields() };
  if ($("new-objective").checked) {
    const id = $("obj-id").value.trim();
    out.objective_id = id;
    out.new_objective = { id, title: $("obj-title").value.trim() || id, parent_id: $("obj-parent").value };
  }
  return out;
}

function editBody() {
  return { objective_id: $("objective").value, ...fields() };
}

async function preview() {
  say(status, "Computing the value and its history…");
  const p = current
    ? await api(`/api/bindings/${encodeURIComponent(current.id)}/preview`, { method: "POST", body: editBody() })
    : await api("/api/bindings/preview", { method: "POST", body: body() });
  $("preview-section").hidden = false;
  $("preview-changes").hidden = !current;
  $("preview-changes").textContent = current ? `Saving would change: ${p.changes}` : "";
  const progress = p.progress === null ? "—" : `${Math.round(Number(p.progress) * 100)} %`;
  $("preview-value").textContent =
    `Now: ${fmtValue(p.value, p.unit)} · progress ${progress} · ${p.status.replace("_", " ")} · ${p.records} records · ` +
    `history: ${p.history.length} past runs`;
  $("preview-value").dataset.value = p.value ?? "";
  const rows = p.top_records.map((r) =>
    el(
      "tr",
      { "data-testid": "preview-record" },
      el("td", {}, el("code", { text: r.record_id })),
      el("td", { class: "num", text: r.contribution }),
      el("td", { text: Object.entries(r.fields).map(([k, v]) => `${k}=${v}`).join(", ") }),
    ),
  );
  fill($("preview-records"), rows.length ? table(["record", "contribution", "fields"], rows) : el("p", { class: "empty", text: "No records." }));
  drawChart(p);
  $("save").disabled = false;
  say(status, "");
}

function drawChart(p) {
  if (!window.Chart) return;
  if (chart) chart.destroy();
  const h = p.history;
  chart = new window.Chart($("preview-chart"), {
    type: "line",
    data: {
      labels: h.map((v) => fmtShortTime(v.as_of)),
      datasets: [
        { label: "value (back-filled)", data: h.map((v) => (v.value === null ? null : Number(v.value))), borderColor: COLORS.value, borderWidth: 2, tension: 0 },
        { label: "expected pace", data: h.map((v) => Number(v.pace_value)), borderColor: COLORS.pace, borderDash: [3, 3], pointRadius: 0 },
      ],
    },
    options: { animation: false, maintainAspectRatio: false, responsive: true, plugins: { legend: { position: "bottom" } } },
  });
}

async function save() {
  const saved = current
    ? await api(`/api/bindings/${encodeURIComponent(current.id)}`, { method: "PATCH", body: editBody() })
    : await api("/api/bindings", { method: "POST", body: body() });
  fill(
    status,
    el("span", { "data-testid": "saved", text: `Saved ${saved.id} (version ${saved.version}). ` }),
    link(`/kr/${encodeURIComponent(saved.id)}`, "Open it", { testid: "saved-link" }),
    " · ",
    link("/", "See it in the objectives"),
  );
  status.dataset.kind = "info";
  status.hidden = false;
  $("save").disabled = true;
  if (current) {
    current = await api(`/api/bindings/${encodeURIComponent(current.id)}`);
    $("define-title").textContent = `Definition (version ${current.version}, ${current.status})`;
    drawVersions($("versions"), current);
  }
  await drawBound($("bound"));
}

main().catch((e) => sayError(status, e));
