// A key result's page (`/kr/{id}`): its header, the history chart (value, target, expected pace),
// the table of values; selecting a value shows its records and what changed since an earlier one.
import {
  $, api, badge, el, fill, flags, fmtAge, fmtPct, fmtRecords, fmtShortTime, fmtShown, fmtTime, fmtValue, link, pauseIcon, progressBar, say, sayError, startPage, table,
} from "/static/app.js";
import { COLORS } from "/static/charts.js";
import { DiffPanel } from "/static/diff.js";
import { RecordsPanel } from "/static/records.js";

const status = $("page-status");
const krId = decodeURIComponent(location.pathname.replace(/^\/kr\//, "").replace(/\/+$/, ""));

const page = {
  me: null,
  kr: null,
  history: [], // in as-of order (then computed-at): a back-filled value sits at its as-of time
  selected: null, // index into history
  chart: null,
  records: null,
  diff: null,
};

async function main() {
  page.me = await startPage({ active: "tree" });
  fill($("crumb-kr"), krId);
  let detail;
  try {
    detail = await api(`/api/krs/${encodeURIComponent(krId)}`);
  } catch (e) {
    sayError(status, e);
    return;
  }
  page.kr = detail.kr;
  page.history = detail.history; // the API's order: as-of, then computed-at (times to the microsecond)
  document.title = `${page.kr.id} ${page.kr.title} · okrsync`;
  drawHeader(page.kr, detail.decisions || [], detail);
  $("history-section").hidden = false;
  $("selected-section").hidden = false;
  drawHistoryTable();
  drawChart();
  if (page.me.can.records) {
    page.records = new RecordsPanel($("records-panel"), $("records-status"), page.kr, page.me);
    page.diff = new DiffPanel($("diff-panel"), $("diff-status"), $("diff-from"), page.kr);
    $("diff-section").hidden = false;
  } else {
    fill(
      $("records-panel"),
      el(
        "p",
        { class: "notice", id: "records-denied", "data-testid": "records-denied" },
        `Your role (${page.me.role}) cannot see the records behind values. `,
        el("span", { class: "muted", text: "The history, targets and statuses are all yours to see; ask an admin for a role with records access (for example leadership) to drill down." }),
      ),
    );
  }
  say(status, "");
  if (!page.history.length) {
    fill($("records-panel"), el("p", { class: "empty", text: "No value has been computed for this key result yet: run `okrsync run`." }));
    return;
  }
  const wanted = Number(new URLSearchParams(location.search).get("value"));
  const idx = page.history.findIndex((v) => v.value_id === wanted);
  select(idx >= 0 ? idx : page.history.length - 1, { pushUrl: false });
}

// ---- header --------------------------------------------------------------------------------

function stat(label, ...value) {
  return el("div", { class: label === "Progress" ? "stat stat-wide" : "stat" }, el("div", { class: "stat-label", text: label }), el("div", { class: "stat-value" }, value));
}

/** Retired (or gone from the project file): the page stays, with its values and their records. A bound
 * KR links to its edit page for roles that may bind. */
function bindingMarks(kr, detail) {
  const out = [];
  if (detail.binding && detail.binding.status === "retired") {
    out.push(el("span", { class: "flag flag-retired", "data-testid": "kr-retired", title: "retired: no longer computed; its values and their records stay", text: "retired" }));
  } else if (detail.active === false) {
    out.push(el("span", { class: "flag flag-retired", "data-testid": "kr-inactive", title: "no longer in the project: its values and their records stay", text: "inactive" }));
  }
  if (detail.binding && detail.binding.status === "active" && page.me.can && page.me.can.bind) {
    out.push(link(`/bind?edit=${encodeURIComponent(kr.id)}`, "Edit binding", { testid: "kr-edit" }));
  }
  return out;
}

function drawHeader(kr, decisions, detail) {
  const now = new Date();
  const direction = kr.direction === "decrease" ? "lower is better" : "higher is better";
  const lastRun = kr.flow_run_url
    ? link(kr.flow_run_url, "flow run", { external: true })
    : kr.flow_run_id
      ? el("code", { title: `flow run ${kr.flow_run_id}`, text: `flow run ${kr.flow_run_id.slice(0, 8)}` })
      : null;
  const head = $("kr-header");
  fill(
    head,
    el(
      "div",
      { class: "kr-title-row" },
      el("h1", {}, el("span", { id: "kr-title", "data-testid": "kr-title", text: kr.title })),
      el("span", { class: "id", text: kr.id }),
      flags(kr),
      bindingMarks(kr, detail),
    ),
    el(
      "p",
      { class: "muted kr-sub" },
      [`metric ${kr.metric}`, `period ${kr.period}`, direction, kr.owner ? `owner ${kr.owner}` : null, `weight ${kr.weight}`].filter(Boolean).join(" · "),
    ),
    el(
      "div",
      { class: "stats" },
      stat("Value", el("strong", { class: "big", id: "kr-value", "data-testid": "kr-value", text: fmtShown(kr, kr.unit) })),
      stat("Target", el("span", { id: "kr-target", text: fmtValue(kr.target, kr.unit) }), el("div", { class: "muted small", text: `from baseline ${fmtValue(kr.baseline, kr.unit)}` })),
      stat(
        "Progress",
        el(
          "div",
          { class: "kr-progress" },
          progressBar(kr.progress, kr.expected, { label: "progress" }),
          el("span", { class: "pct", id: "kr-progress", text: fmtPct(kr.progress) }),
        ),
        el("div", { class: "muted small", text: `expected by now ${fmtPct(kr.expected)}` }),
      ),
      stat("Status", badge(kr.status, { testid: "kr-status", title: kr.reason }), kr.reason ? el("div", { class: "muted small", text: kr.reason }) : null),
      stat(
        "Data",
        el("span", { id: "kr-fresh", title: kr.data_fresh_at ? `fresh at ${fmtTime(kr.data_fresh_at)}` : null, text: kr.data_fresh_at ? fmtAge(kr.data_fresh_at, now) : "no data yet" }),
        kr.stale ? [" ", el("span", { class: "flag flag-stale", text: "stale" })] : null,
        el("div", { class: "muted small", text: kr.data_fresh_at ? fmtTime(kr.data_fresh_at) : "" }),
      ),
      stat(
        "As of",
        el("span", { id: "kr-as-of", text: fmtTime(kr.as_of) }),
        el("div", { class: "muted small" }, `computed ${fmtTime(kr.computed_at)}`, lastRun ? [" by ", lastRun] : ""),
      ),
    ),
    kr.held
      ? el(
          "p",
          { class: "notice notice-held", id: "kr-held", "data-testid": "kr-held" },
          pauseIcon(),
          el("strong", { text: "Held" }),
          ` since ${fmtTime(kr.held_since)}: `,
          el("span", { "data-testid": "kr-held-reason", text: kr.held_reason || "an input failed in the last run" }),
          el("span", { class: "muted", text: " The last good value is kept until the check is accepted or the source is fixed and re-run." }),
        )
      : null,
    decisions.length
      ? el(
          "details",
          { class: "decisions", "data-testid": "decisions" },
          el("summary", { text: `Decisions (${decisions.length})` }),
          el(
            "ul",
            {},
            decisions.map((d) =>
              el(
                "li",
                {},
                el("span", { class: "muted", text: `${fmtTime(d.at)} ` }),
                el("strong", { text: d.actor }),
                ` ${d.action} ${d.check}${d.check_id !== null && d.check_id !== undefined ? ` (check #${d.check_id})` : ""}: `,
                el("q", { text: d.reason }),
              ),
            ),
          ),
        )
      : null,
  );
  head.hidden = false;
}

// ---- history: table and chart --------------------------------------------------------------

function flowRun(v) {
  if (v.flow_run_url) return link(v.flow_run_url, v.flow_run_id || "flow run", { external: true, testid: "flow-run" });
  if (v.flow_run_id) return el("code", { class: "flow-run-id", "data-testid": "flow-run", text: v.flow_run_id });
  return el("span", { class: "muted", text: `run ${v.run_id}` });
}

function drawHistoryTable() {
  const kr = page.kr;
  fill($("history-count"), String(page.history.length));
  const rows = [...page.history].reverse().map((v) => {
    const i = page.history.indexOf(v);
    const pick = el("button", {
      type: "button",
      class: "small-button",
      "aria-pressed": "false",
      "data-testid": "select-value",
      "aria-label": `Show value #${v.value_id} as of ${fmtTime(v.as_of)}`,
      text: `#${v.value_id}`,
    });
    pick.addEventListener("click", () => select(i));
    return el(
      "tr",
      { "data-testid": "history-row", "data-value-id": String(v.value_id) },
      el("td", {}, pick),
      el("td", { class: "time", text: fmtTime(v.as_of) }),
      el("td", { class: "muted", text: fmtTime(v.computed_at) }),
      el("td", { class: "num", "data-testid": "history-value", text: fmtShown(v, kr.unit), title: v.reason || null }),
      el("td", { class: "num", text: fmtPct(v.progress) }),
      el("td", {}, badge(v.status, { title: v.reason })),
      el("td", { class: "num", text: fmtRecords(v) }),
      el("td", {}, flowRun(v)),
    );
  });
  const selectHead = el("th", { scope: "col", text: "", "aria-label": "select" });
  const cols = [selectHead, "as of", "computed", "value", "progress", "status", "records", "flow run"];
  fill($("history-table"), table(cols, rows, { testid: "history-table" }));
}

function num(v, unit) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  if (!Number.isFinite(n)) return null;
  return unit === "percent" ? n * 100 : n;
}

function axisTick(unit) {
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });
  return (v) => (unit === "percent" ? `${v} %` : compact.format(v));
}

function drawChart() {
  if (!window.Chart || !page.history.length) return;
  const kr = page.kr;
  const h = page.history;
  const single = h.length === 1;
  const canvas = $("history-chart");
  page.chart = new window.Chart(canvas, {
    type: "line",
    data: {
      labels: h.map((v) => fmtShortTime(v.as_of)), // x: the as-of time, in as-of order
      datasets: [
        {
          label: "value",
          data: h.map((v) => num(v.value, kr.unit)),
          borderColor: COLORS.value,
          backgroundColor: COLORS.valueFill,
          borderWidth: 2,
          fill: false,
          tension: 0,
          pointRadius: (ctx) => (ctx.dataIndex === page.selected ? 7 : 4),
          pointHoverRadius: 8,
          pointHitRadius: 10,
          pointBackgroundColor: (ctx) => (ctx.dataIndex === page.selected ? COLORS.selected : COLORS.value),
          pointBorderColor: (ctx) => (ctx.dataIndex === page.selected ? COLORS.selected : COLORS.value),
        },
        {
          label: "target",
          data: h.map(() => num(kr.target, kr.unit)),
          borderColor: COLORS.target,
          borderDash: [6, 4],
          borderWidth: 1.5,
          pointRadius: single ? 3 : 0,
          pointHitRadius: 0,
          fill: false,
        },
        {
          label: "expected pace",
          data: h.map((v) => num(v.pace_value, kr.unit)),
          borderColor: COLORS.pace,
          borderDash: [3, 3],
          borderWidth: 2,
          pointRadius: single ? 3 : 0,
          pointHitRadius: 0,
          fill: false,
        },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      responsive: true,
      interaction: { mode: "index", intersect: false },
      onClick: (evt, _elements, chart) => {
        const hit = chart.getElementsAtEventForMode(evt, "index", { intersect: false }, false).find((e) => e.datasetIndex === 0);
        if (hit) select(hit.index);
      },
      onHover: (evt, elements) => {
        evt.native.target.style.cursor = elements.length ? "pointer" : "default";
      },
      plugins: {
        legend: { position: "bottom", labels: { boxHeight: 2 } },
        tooltip: {
          callbacks: {
            title: (items) => {
              const v = h[items[0].dataIndex];
              return `#${v.value_id} · as of ${fmtTime(v.as_of)} · computed ${fmtTime(v.computed_at)}`;
            },
            label: (ctx) => {
              const v = h[ctx.dataIndex];
              if (ctx.datasetIndex === 0) return `${ctx.dataset.label}: ${fmtShown(v, kr.unit)}`;
              const raw = ctx.datasetIndex === 1 ? kr.target : v.pace_value;
              return `${ctx.dataset.label}: ${fmtValue(raw, kr.unit)}`;
            },
            footer: (items) => {
              const v = h[items[0].dataIndex];
              return `${v.status.replace("_", " ")} · ${fmtRecords(v)} records · click to drill down`;
            },
          },
        },
      },
      scales: {
        x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true } },
        y: { grid: { color: COLORS.grid }, ticks: { callback: axisTick(kr.unit) } },
      },
    },
  });
}

// ---- selecting a value ---------------------------------------------------------------------

function select(i, { pushUrl = true } = {}) {
  if (i < 0 || i >= page.history.length) return;
  page.selected = i;
  const v = page.history[i];
  if (page.chart) page.chart.update("none");
  for (const b of document.querySelectorAll('[data-testid="select-value"]')) {
    const row = b.closest("tr");
    const on = row && row.dataset.valueId === String(v.value_id);
    b.setAttribute("aria-pressed", on ? "true" : "false");
    row.classList.toggle("selected", on);
  }
  if (pushUrl) {
    const url = new URL(location.href);
    url.searchParams.set("value", String(v.value_id));
    history.replaceState(null, "", url.pathname + url.search);
  }
  const kr = page.kr;
  fill($("selected-title"), `Records behind ${fmtShown(v, kr.unit)}`);
  fill(
    $("selected-summary"),
    `Value #${v.value_id} as of ${fmtTime(v.as_of)} (computed ${fmtTime(v.computed_at)}) · `,
    badge(v.status, { title: v.reason }),
    ` · ${fmtRecords(v)} records · `,
    flowRun(v),
  );
  $("selected-summary").dataset.valueId = String(v.value_id);
  if (page.records) page.records.show(v);
  if (page.diff) page.diff.show(page.history, i);
}

main().catch((e) => sayError(status, e));
