// Plan a definition change (`/plan`, roles with `bind`): what the project file's definitions would
// change, per key result, and applying them with a reason (audited), optionally restating history.
import { $, api, el, fill, fmtExact, fmtTime, say, sayError, startPage, table } from "/static/app.js";

const status = $("page-status");
const KINDS = { entering: ["+", "kind-added"], leaving: ["−", "kind-removed"], changed: ["~", "kind-changed"] };
let shown = null; // KR → new definition hash, of the plan on the page: what an apply names

async function main() {
  await startPage({ active: "plan" });
  $("apply-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apply().catch((err) => sayError(status, err));
  });
  await load();
  say(status, "");
}

function signed(v) {
  if (v === null || v === undefined) return "—";
  return (String(v).startsWith("-") ? "" : "+") + fmtExact(v);
}

function fields(f) {
  return Object.entries(f || {})
    .map(([k, v]) => `${k}=${v === null ? "" : v}`)
    .join(", ");
}

function partsTable(parts) {
  const rows = parts.map((p) =>
    el(
      "tr",
      { "data-testid": "plan-part", "data-path": p.path },
      el("td", {}, el("code", { text: p.path })),
      el("td", {}, el("code", { text: p.registered })),
      el("td", {}, el("code", { text: p.new })),
    ),
  );
  return table(["part", "registered", "new"], rows);
}

function valueLine(k) {
  const before = k.before ? k.before.value : null;
  const after = k.after ? k.after.value : null;
  const snap = Object.entries(k.snapshot).map(([s, n]) => `${s} sync #${n === null ? "—" : n}`).join(", ");
  return el(
    "p",
    { "data-testid": "plan-value" },
    el("span", { text: `As of ${fmtTime(k.as_of)} on the same snapshot (${snap}): ` }),
    el("strong", { "data-testid": "plan-before", "data-value": before ?? "", text: fmtExact(before) }),
    el("span", { text: " → " }),
    el("strong", { "data-testid": "plan-after", "data-value": after ?? "", text: fmtExact(after) }),
    el("span", { text: " " }),
    el("span", { class: "badge", "data-testid": "plan-delta", "data-value": k.delta ?? "", text: `Δ ${signed(k.delta)}` }),
    k.after && k.after.reason ? el("span", { class: "muted", text: ` · ${k.after.reason}` }) : null,
  );
}

function recordsPart(k) {
  const out = [];
  const counts = ["entering", "leaving", "changed"].map((kind) => {
    const s = k.summary[kind] || { records: 0, delta: "0" };
    return `${s.records} ${kind} (Δ ${signed(s.delta)})`;
  });
  out.push(el("p", { "data-testid": "plan-summary", text: counts.join(" · ") }));
  if (k.records.length) {
    const rows = k.records.map((r) => {
      const [mark, cls] = KINDS[r.kind];
      return el(
        "tr",
        { "data-testid": "plan-record", "data-kind": r.kind, "data-record": r.record_id },
        el("td", { class: "nowrap" }, el("span", { class: `kind ${cls}`, title: r.kind, text: `${mark} ${r.kind}` })),
        el("td", { text: r.stream }),
        el("td", {}, el("code", { text: r.record_id })),
        el("td", { class: "num", text: fmtExact(r.before) }),
        el("td", { class: "num", text: fmtExact(r.after) }),
        el("td", { class: "num", text: signed(r.delta) }),
        el("td", { "data-testid": "plan-record-fields", text: fields(r.fields) }),
      );
    });
    out.push(table(["", "stream", "record", "before", "after", "Δ", "fields"], rows));
    if (k.records_moved > k.records.length) {
      const more = k.records_moved - k.records.length;
      out.push(el("p", { class: "muted", "data-testid": "plan-more", text: `… and ${more} more (the ${k.records.length} largest moves are shown; okrsync plan --format json --limit N lists more)` }));
    }
  } else if (k.records_hidden) {
    out.push(el("p", { class: "empty", text: "Your role may not see the records behind values." }));
  } else {
    out.push(el("p", { class: "empty", text: "No record enters or leaves on this snapshot." }));
  }
  return out;
}

function pastPart(k) {
  const changing = k.past_values.filter((x) => x.changes);
  const text =
    `${changing.length} of ${k.past_values.length} past values would change under the new definition; ` +
    `restating history records ${k.restates} restated values (each past value not computed with it).`;
  const out = [el("p", { "data-testid": "plan-past-summary", text })];
  if (changing.length) {
    const rows = changing.map((x) =>
      el(
        "tr",
        { "data-testid": "plan-past", "data-value-id": String(x.value_id) },
        el("td", {}, el("code", { text: `#${x.value_id}` })),
        el("td", { class: "time", text: fmtTime(x.as_of) }),
        el("td", { class: "num", text: fmtExact(x.stored) }),
        el("td", { class: "num", text: fmtExact(x.new) }),
        el("td", { class: "num", text: signed(x.delta) }),
      ),
    );
    out.push(table(["value", "as of", "stored", "restated", "Δ"], rows));
  }
  return out;
}

function krCard(k) {
  return el(
    "section",
    { class: "card", "data-testid": "plan-kr", "data-kr": k.kr, "aria-label": k.kr },
    el("h2", {}, el("a", { href: `/kr/${encodeURIComponent(k.kr)}`, text: k.kr })),
    el("h3", { text: "What changed" }),
    partsTable(k.parts),
    el("h3", { text: "Value before and after" }),
    valueLine(k),
    el("h3", { text: "Records entering and leaving" }),
    ...recordsPart(k),
    el("h3", { text: "Past values" }),
    ...pastPart(k),
  );
}

function others(plan) {
  const out = [];
  if (plan.same_values.length) {
    const items = plan.same_values.map((k) =>
      el("li", { "data-testid": "plan-same", "data-kr": k.kr }, el("strong", { text: k.kr }), el("span", { text: ` (${k.changed.join(", ")})` })),
    );
    out.push(el("section", { class: "card" }, el("h2", { text: "Definition changed, every value the same" }), el("ul", {}, items)));
  }
  const lists = [
    [plan.new, "New key results (the next run registers them)", "plan-new"],
    [plan.retired, "No longer in the project file (kept with their history)", "plan-retired"],
  ];
  for (const [ids, title, testid] of lists) {
    if (ids.length) out.push(el("section", { class: "card", "data-testid": testid }, el("h2", { text: title }), el("p", { text: ids.join(", ") })));
  }
  return out;
}

async function load() {
  const plan = await api("/api/plan?limit=20");
  shown = plan.definitions;
  const parts = [];
  if (!plan.changes) {
    parts.push(
      el(
        "section",
        { class: "card" },
        el("p", { "data-testid": "no-changes", text: `No definition changes: every key result's definition in ${plan.project_file} is the registered one. Nothing to apply.` }),
      ),
    );
  }
  parts.push(...plan.affected.map(krCard), ...others(plan));
  fill($("plan"), ...parts);
  $("apply-section").hidden = !plan.changes;
  $("restate-label").textContent = `Restate history: record ${plan.restates} past values recomputed under the new definitions, marked restated`;
}

async function apply() {
  const reason = $("reason").value.trim();
  if (!reason) {
    say(status, "A reason is required.", "error", "Say why the definitions change: it is kept in the audit log.");
    $("reason").focus();
    return;
  }
  say(status, $("restate").checked ? "Applying and restating history (waits for a running run)…" : "Applying…");
  const body = { reason, restate: $("restate").checked, definitions: shown };
  const done = await api("/api/plan/apply", { method: "POST", body });
  const restated = done.restated ? `; ${done.restated} past values restated` : "";
  const text = `Applied by ${done.actor}: registered the new definitions of ${done.applied.join(", ")} (audited)${restated}.`;
  $("reason").value = "";
  $("restate").checked = false;
  await load();
  fill(status, el("span", { "data-testid": "applied", text }));
  status.dataset.kind = "ok";
  status.hidden = false;
}

main().catch((e) => sayError(status, e));
