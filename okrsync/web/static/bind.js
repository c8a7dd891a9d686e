// Bind a key result (`/bind`, roles with `bind`): library, pins from real values, preview, save.
import { $, api, el, fill, fmtShortTime, fmtValue, link, say, sayError, startPage, table } from "/static/app.js";
import { COLORS } from "/static/charts.js";

const status = $("page-status");
let library = null;
let chart = null;

async function main() {
  await startPage({ active: "bind" });
  library = await api("/api/bindings/library");
  fill($("objective"), ...library.objectives.map((o) => el("option", { value: o, text: o })));
  fill($("metric"), ...library.metrics.map((m) => el("option", { value: m.name, text: m.name })));
  $("metric").addEventListener("change", drawMetric);
  $("preview").addEventListener("click", () => preview().catch((e) => sayError(status, e)));
  $("bind-form").addEventListener("submit", (e) => {
    e.preventDefault();
    save().catch((err) => sayError(status, err));
  });
  $("bind-form").addEventListener("input", () => ($("save").disabled = true)); // preview what you save
  drawMetric();
  say(status, "");
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

function body() {
  const dimensions = {};
  for (const s of $("pins").querySelectorAll("select")) if (s.value) dimensions[s.dataset.dim] = s.value;
  return {
    kr_id: $("kr-id").value.trim(),
    objective_id: $("objective").value,
    title: $("kr-title").value.trim() || $("kr-id").value.trim(),
    metric: $("metric").value,
    dimensions,
    period: $("period").value.trim() || null,
    direction: $("direction").value,
    baseline: $("baseline-start").checked ? "start" : $("baseline").value.trim() || "0",
    target: $("target").value.trim(),
  };
}

async function preview() {
  say(status, "Computing the value and its history…");
  const p = await api("/api/bindings/preview", { method: "POST", body: body() });
  $("preview-section").hidden = false;
  const progress = p.progress === null ? "—" : `${Math.round(Number(p.progress) * 100)} %`;
  $("preview-value").textContent =
    `Now: ${fmtValue(p.value, p.unit)} · progress ${progress} · ${p.status.replace("_", " ")} · ${p.records} records · ` +
    `history: ${p.history.length} past runs`;
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
  const saved = await api("/api/bindings", { method: "POST", body: body() });
  fill(status, el("span", { "data-testid": "saved", text: `Saved ${saved.id} (version ${saved.version}). ` }), link("/", "See it in the objectives"));
  status.dataset.kind = "info";
  status.hidden = false;
  $("save").disabled = true;
}

main().catch((e) => sayError(status, e));
