// The objectives tree (`/`): objectives nested with their key results, progress and status, and a
// bar chart of objective progress.
import { $, api, badge, el, fill, flags, fmtAge, fmtPct, fmtShown, fmtTime, fmtValue, parseTime, progressBar, say, sayError, startPage } from "/static/app.js";
import { COLORS } from "/static/charts.js";

const status = $("page-status");
let bound = new Set(); // active bound KRs, for roles that may edit them (`bind`)

async function main() {
  const me = await startPage({ active: "tree" });
  let tree;
  try {
    tree = await api("/api/tree");
    if (me.can && me.can.bind) {
      const listed = await api("/api/bindings");
      bound = new Set(listed.bindings.filter((b) => b.status === "active").map((b) => b.id));
    }
  } catch (e) {
    sayError(status, e);
    return;
  }
  drawTree(tree);
  drawChart(tree.objectives);
  say(status, "");
}

function walk(objectives, depth, out) {
  for (const o of objectives) {
    out.push({ o, depth });
    walk(o.objectives || [], depth + 1, out);
  }
  return out;
}

function drawTree(tree) {
  const all = walk(tree.objectives, 0, []);
  const krs = all.flatMap(({ o }) => o.key_results || []);
  const held = krs.filter((k) => k.held).length;
  const stale = krs.filter((k) => k.stale).length;
  fill(
    $("tree-meta"),
    `${all.length} objectives, ${krs.length} key results`,
    held ? ` · ${held} held` : "",
    stale ? ` · ${stale} stale` : "",
    ` · as of ${fmtTime(tree.now)}`,
  );
  const root = $("tree");
  if (!tree.objectives.length) {
    fill(root, el("p", { class: "empty", text: "No objectives yet: add some to the project file and run `okrsync run`." }));
    return;
  }
  const now = parseTime(tree.now) || new Date();
  fill(root, tree.objectives.map((o) => objective(o, 0, now)));
}

function objective(o, depth, now) {
  const head = el(
    "div",
    { class: "obj-head" },
    el(
      "div",
      { class: "obj-name" },
      el(depth === 0 ? "h3" : "h4", { class: "obj-title" }, el("span", { class: "obj-title-text", text: o.title })),
      el("span", { class: "id", text: o.id }),
      o.owner ? el("span", { class: "owner", text: o.owner }) : null,
      flags(o, { reason: "a key result below is held: an input failed in the last run" }),
    ),
    el(
      "div",
      { class: "obj-progress" },
      progressBar(o.progress, null, { label: `${o.title}: progress` }),
      el("span", { class: "pct", "data-testid": "objective-progress", text: fmtPct(o.progress) }),
    ),
  );
  const krs = (o.key_results || []).map((k) => keyResult(k, now));
  return el(
    "section",
    { class: `objective depth-${Math.min(depth, 3)}`, "data-testid": "objective", "data-id": o.id, "aria-label": `Objective ${o.title}` },
    head,
    krs.length ? el("ul", { class: "krs" }, krs) : null,
    (o.objectives || []).length ? el("div", { class: "children" }, o.objectives.map((c) => objective(c, depth + 1, now))) : null,
  );
}

function keyResult(k, now) {
  const when = k.computed_at ? `computed ${fmtTime(k.computed_at)}` : "not computed yet";
  const fresh = k.data_fresh_at ? `data ${fmtAge(k.data_fresh_at, now)}` : "no data yet";
  return el(
    "li",
    { class: "kr", "data-testid": "kr", "data-id": k.id },
    el(
      "div",
      { class: "kr-name" },
      el("a", { href: `/kr/${encodeURIComponent(k.id)}`, "data-testid": "kr-link", class: "kr-link", text: k.title }),
      el("span", { class: "id", text: k.id }),
      flags(k),
      bound.has(k.id) ? el("a", { href: `/bind?edit=${encodeURIComponent(k.id)}`, class: "small", "data-testid": "kr-edit", text: "edit" }) : null,
    ),
    el(
      "div",
      { class: "kr-value" },
      el("strong", { "data-testid": "kr-value", text: fmtShown(k, k.unit) }),
      el("span", { class: "muted", text: ` of ${fmtValue(k.target, k.unit)}` }),
    ),
    el(
      "div",
      { class: "kr-progress" },
      progressBar(k.progress, k.expected, { label: `${k.title}: progress` }),
      el("span", { class: "pct", text: fmtPct(k.progress) }),
    ),
    el("div", { class: "kr-status" }, badge(k.status, { title: k.reason || null, testid: "kr-status" })),
    el("div", { class: "kr-when muted", title: k.data_fresh_at ? `data fresh at ${fmtTime(k.data_fresh_at)}` : null, text: `${when} · ${fresh}` }),
  );
}

function drawChart(objectives) {
  if (!window.Chart) return;
  const rows = walk(objectives, 0, []);
  const box = $("objective-chart-box");
  box.style.height = `${Math.max(120, rows.length * 30 + 40)}px`;
  const labels = rows.map(({ o, depth }) => (depth ? "  ".repeat(depth - 1) + "↳ " : "") + o.title);
  const data = rows.map(({ o }) => (o.progress === null || o.progress === undefined ? null : Math.max(0, Math.min(100, Number(o.progress) * 100))));
  new window.Chart($("objective-chart"), {
    type: "bar",
    data: {
      labels,
      datasets: [
        {
          label: "progress",
          data,
          backgroundColor: rows.map(({ o }) => (o.held ? COLORS.held : COLORS.value)),
          borderRadius: 3,
          maxBarThickness: 18,
        },
      ],
    },
    options: {
      indexAxis: "y",
      animation: false,
      maintainAspectRatio: false,
      responsive: true,
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const o = rows[ctx.dataIndex].o;
              return `${fmtPct(o.progress)}${o.held ? " · held" : ""}`;
            },
          },
        },
      },
      scales: {
        x: { min: 0, max: 100, ticks: { callback: (v) => `${v} %` }, grid: { color: COLORS.grid } },
        y: { grid: { display: false } },
      },
    },
  });
}

main().catch((e) => sayError(status, e));
