// A reconciliation check's finding in the check review: both sides' totals, the totals per dimension
// value, and the keys found on one side only or whose amounts differ, each record with a link into
// its source (where the connector knows one) and to the drill-down of the side's key result.
import { el, fmtExact, link, table } from "/static/app.js";

function records(list) {
  return list.map((r, i) => [
    i ? el("br") : null,
    r.url ? link(r.url, r.id, { external: true, testid: "recon-source-link" }) : el("code", { text: r.id }),
    r.drill ? [" ", link(r.drill, "drill", { testid: "recon-drill-link" })] : null,
  ]);
}

const TITLES = {
  unmatched_left: (l) => `Only in ${l.metric}`,
  unmatched_right: (l, r) => `Only in ${r.metric}`,
  mismatched: () => "Amounts differ",
};

export function reconciliationDetail(f) {
  const l = f.sides.left;
  const r = f.sides.right;
  const side = (s) => `${s.metric}${s.stream ? ` (stream ${s.stream})` : ""}`;
  const parts = [
    el("h3", { text: "Reconciliation" }),
    el(
      "p",
      { "data-testid": "recon-totals" },
      `${side(l)}: `, el("strong", { text: fmtExact(f.left.total) }), ` from ${f.left.records} records · ${side(r)}: `,
      el("strong", { text: fmtExact(f.right.total) }), ` from ${f.right.records} records · difference ${fmtExact(f.difference)} (tolerance ${f.tolerance})`,
    ),
  ];
  if (f.dimensions.length) {
    const dims = Object.entries(f.dimension_fields).map(([a, b]) => `${a} ↔ ${b}`).join(" · ");
    parts.push(
      el("h4", { text: `Totals per ${dims}` }),
      table(
        ["value", l.metric, r.metric, "difference", ""],
        f.dimensions.map((p) =>
          el(
            "tr",
            { "data-testid": "recon-dimension-row", "data-key": p.key, class: p.within_tolerance ? null : "recon-differs" },
            el("td", { text: p.key }), el("td", { text: fmtExact(p.left) }), el("td", { text: fmtExact(p.right) }),
            el("td", { text: fmtExact(p.difference) }), el("td", { text: p.within_tolerance ? "within tolerance" : "differs" }),
          ),
        ),
        { testid: "recon-dimensions" },
      ),
    );
  }
  for (const group of ["unmatched_left", "unmatched_right", "mismatched"]) {
    const rows = f[group];
    if (!rows || !rows.length) continue;
    const total = f.counts[group];
    parts.push(
      el("h4", { text: `${TITLES[group](l, r)} (${total}${total > rows.length ? `, first ${rows.length} shown` : ""})` }),
      table(
        ["key", l.metric, r.metric, `${l.metric} records`, `${r.metric} records`],
        rows.map((p) =>
          el(
            "tr",
            { "data-testid": `recon-${group}`, "data-key": p.key },
            el("td", {}, el("code", { text: p.key })), el("td", { text: fmtExact(p.left) }), el("td", { text: fmtExact(p.right) }),
            el("td", {}, records(p.left_records)), el("td", {}, records(p.right_records)),
          ),
        ),
        { testid: `recon-${group}-table` },
      ),
    );
  }
  if (f.match && f.matched !== undefined) {
    parts.push(el("p", { class: "muted small", text: `${f.matched} keys matched on ${f.match.left} ↔ ${f.match.right}.` }));
  }
  return el("section", { "data-testid": "recon-detail" }, parts);
}
