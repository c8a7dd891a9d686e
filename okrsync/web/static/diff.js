// "What changed": the selected value against an earlier one (by default the most recent earlier
// value that differs): the delta, a summary by kind, and the records added, removed or changed.
import { api, el, fill, fmtExact, fmtShown, fmtTime, fmtValue, say, sayError, table, withQuery } from "/static/app.js";

const LIMIT = 200;

export class DiffPanel {
  constructor(root, status, select, kr) {
    this.root = root;
    this.status = status;
    this.select = select;
    this.kr = kr;
    this.to = null;
    this.seq = 0;
    this.select.addEventListener("change", () => this.load());
  }

  /** Compare history[index] with an earlier value of `history` (in as-of order). */
  show(history, index) {
    this.to = history[index];
    const earlier = history.slice(0, index).reverse(); // most recent first
    if (!earlier.length) {
      fill(this.select);
      this.select.disabled = true;
      say(this.status, "");
      fill(this.root, el("p", { class: "empty", "data-testid": "diff-first", text: "This is the first value of this key result: there is nothing earlier to compare it with." }));
      return;
    }
    const differs = earlier.find((v) => v.value !== this.to.value) || earlier[0];
    this.select.disabled = false;
    fill(
      this.select,
      earlier.map((v) =>
        el("option", {
          value: String(v.value_id),
          selected: v === differs,
          text: `#${v.value_id} · as of ${fmtTime(v.as_of)} · ${fmtShown(v, this.kr.unit)}`,
        }),
      ),
    );
    this.load();
  }

  async load() {
    if (!this.to || !this.select.value) return;
    const seq = ++this.seq;
    this.root.setAttribute("aria-busy", "true");
    say(this.status, "Comparing…");
    let d;
    try {
      d = await api(
        withQuery(`/api/krs/${encodeURIComponent(this.kr.id)}/diff`, { from_value: this.select.value, to_value: this.to.value_id, limit: LIMIT }),
      );
    } catch (e) {
      if (seq !== this.seq) return;
      this.root.removeAttribute("aria-busy");
      fill(this.root);
      sayError(this.status, e);
      return;
    }
    if (seq !== this.seq) return;
    this.root.removeAttribute("aria-busy");
    say(this.status, "");
    this.draw(d);
  }

  draw(d) {
    const unit = this.kr.unit;
    const summary = Object.entries(d.summary || {});
    const head = el(
      "p",
      { class: "diff-head", "data-testid": "diff-head" },
      `#${d.from.value_id} (as of ${fmtTime(d.from.as_of)}) `,
      el("strong", { text: fmtShown(d.from, unit) }),
      " → ",
      `#${d.to.value_id} (as of ${fmtTime(d.to.as_of)}) `,
      el("strong", { text: fmtShown(d.to, unit) }),
      ": ",
      el("strong", { class: deltaClass(d.delta, this.kr.direction), "data-testid": "diff-delta", text: [d.from, d.to].some((v) => v.status === "suppressed") ? "no delta (a value is suppressed)" : fmtDelta(d.delta, unit) }),
    );
    const defNote = d.definition_changed
      ? el("p", { class: "notice", "data-testid": "diff-definition-changed", text: "The KR's definition changed between these values: part of the move comes from the definition, not from the data." })
      : null;
    const summaryTable = summary.length
      ? table(
          ["change", "records", "contribution delta"],
          summary.map(([kind, s]) =>
            el("tr", {}, el("td", {}, kindBadge(kind)), el("td", { class: "num", text: String(s.records) }), el("td", { class: "num", text: signed(s.contribution_delta) })),
          ),
          { testid: "diff-summary", className: "compact" },
        )
      : el("p", { class: "empty", text: "No record changed between these values." });
    const changes = (d.changes || []).map((c) =>
      el(
        "tr",
        { "data-testid": "change-row", "data-record-id": c.record_id, "data-kind": c.kind },
        el("td", {}, kindBadge(c.kind)),
        el("td", { text: c.record_id }),
        el("td", { class: "muted", text: c.stream }),
        el("td", { class: "num", text: fmtExact(c.before) }),
        el("td", { class: "num", text: fmtExact(c.after) }),
        el("td", { class: "num", text: signed(c.delta) }),
        el("td", { text: c.reason }),
        el("td", {}, fieldChanges(c.fields)),
      ),
    );
    const more = d.total_changes > changes.length ? ` (showing the first ${changes.length} of ${d.total_changes})` : "";
    fill(
      this.root,
      head,
      defNote,
      summaryTable,
      changes.length
        ? [
            el("h3", { text: `Records that changed: ${d.total_changes}${more}` }),
            table(["change", "record", "stream", "before", "after", "delta", "why", "fields"], changes, { testid: "diff-changes" }),
          ]
        : null,
    );
  }
}

function kindBadge(kind) {
  return el("span", { class: `kind kind-${["added", "removed", "changed"].includes(kind) ? kind : "other"}`, text: kind });
}

function fieldChanges(fields) {
  const entries = Object.entries(fields || {});
  if (!entries.length) return null;
  return el(
    "ul",
    { class: "field-changes" },
    entries.map(([name, [before, after]]) =>
      el("li", {}, el("code", { text: name }), ": ", el("span", { class: "before", text: show(before) }), " → ", el("span", { class: "after", text: show(after) })),
    ),
  );
}

function show(v) {
  return v === null || v === undefined ? "—" : String(v);
}

function signed(v) {
  if (v === null || v === undefined || v === "") return "—";
  const s = String(v);
  return s.startsWith("-") ? `−${fmtExact(s.slice(1))}` : `+${fmtExact(s)}`;
}

/** The change of a KR value: percent units in percentage points. */
function fmtDelta(delta, unit) {
  if (delta === null || delta === undefined) return "no delta (a value is missing)";
  const n = Number(delta);
  const sign = n > 0 ? "+" : n < 0 ? "−" : "±";
  const abs = String(delta).replace(/^-/, "");
  if (unit === "percent") return `${sign}${fmtValue(abs, "percent").replace(" %", " pp")}`;
  return `${sign}${fmtValue(abs, unit)}`;
}

function deltaClass(delta, direction) {
  const n = Number(delta);
  if (!n) return "delta";
  const good = direction === "decrease" ? n < 0 : n > 0;
  return good ? "delta delta-good" : "delta delta-bad";
}
