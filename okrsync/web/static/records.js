// The records behind one value of a KR: paged, sortable by any column, filterable (record id
// contains; field = value), with a CSV export of the same selection and links into the source.
import { api, el, fill, fmtExact, link, say, sayError, withQuery } from "/static/app.js";

const PAGE_SIZES = [25, 50, 100, 200];

export class RecordsPanel {
  constructor(root, status, kr, me) {
    this.root = root;
    this.status = status;
    this.kr = kr;
    this.me = me;
    this.value = null;
    // `?record=ID` (a reconciliation's drill-down link) opens the records filtered to that record
    const wanted = new URLSearchParams(location.search).get("record") || "";
    this.state = { offset: 0, limit: 50, sort: null, desc: null, recordId: wanted, where: [] };
    this.seq = 0;
    this.sealed = new Set();
    this.build();
  }

  // The controls are built once; the table, range and export link are redrawn per load.
  build() {
    this.recordIdInput = el("input", { type: "search", id: "filter-record-id", "data-testid": "filter-record-id", autocomplete: "off", placeholder: "e.g. 55", value: this.state.recordId });
    this.fieldSelect = el("select", { id: "filter-field", "data-testid": "filter-field" });
    this.valueInput = el("input", { type: "text", id: "filter-value", "data-testid": "filter-value", autocomplete: "off", placeholder: "exact value" });
    const clear = el("button", { type: "button", class: "secondary", "data-testid": "filter-clear", text: "Clear filters" });
    clear.addEventListener("click", () => {
      this.recordIdInput.value = "";
      this.valueInput.value = "";
      this.state.recordId = "";
      this.state.where = [];
      this.state.offset = 0;
      this.load();
    });
    const form = el(
      "form",
      { class: "filters", id: "records-filters", "data-testid": "records-filters", role: "search", "aria-label": "Filter the records" },
      el("div", { class: "field" }, el("label", { for: "filter-record-id", text: "Record id contains" }), this.recordIdInput),
      el("div", { class: "field" }, el("label", { for: "filter-field", text: "Field" }), this.fieldSelect),
      el("div", { class: "field" }, el("label", { for: "filter-value", text: "equals" }), this.valueInput),
      el("div", { class: "field field-buttons" }, el("button", { type: "submit", "data-testid": "filter-apply", text: "Apply" }), clear),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.applyFilters();
    });
    this.chips = el("div", { class: "chips", id: "filter-chips", "data-testid": "filter-chips", "aria-live": "polite" });

    this.range = el("span", { class: "range", id: "records-range", "data-testid": "records-range" });
    this.prev = el("button", { type: "button", class: "secondary", id: "records-prev", "data-testid": "records-prev", text: "← Previous" });
    this.next = el("button", { type: "button", class: "secondary", id: "records-next", "data-testid": "records-next", text: "Next →" });
    this.prev.addEventListener("click", () => this.page(-1));
    this.next.addEventListener("click", () => this.page(1));
    this.sizeSelect = el(
      "select",
      { id: "records-page-size", "data-testid": "records-page-size" },
      PAGE_SIZES.map((n) => el("option", { value: String(n), text: `${n} a page`, selected: n === this.state.limit })),
    );
    this.sizeSelect.addEventListener("change", () => {
      this.state.limit = Number(this.sizeSelect.value);
      this.state.offset = 0;
      this.load();
    });
    this.csv = el("a", { class: "button-link", id: "export-csv", "data-testid": "export-csv", href: "#", download: "", text: "Export CSV" });
    const bar = el(
      "div",
      { class: "records-bar" },
      this.range,
      el("div", { class: "pager" }, this.prev, this.next, el("label", { class: "visually-hidden", for: "records-page-size", text: "Records a page" }), this.sizeSelect, this.csv),
    );
    this.tableBox = el("div", { id: "records-table-box" });
    fill(this.root, form, this.chips, bar, this.tableBox);
  }

  /** Show the records of value `v` (a history Value), from the first page. */
  show(v) {
    this.value = v;
    this.state.offset = 0;
    this.load();
  }

  applyFilters() {
    this.state.recordId = this.recordIdInput.value.trim();
    const field = this.fieldSelect.value;
    const value = this.valueInput.value;
    if (field && value !== "") {
      this.state.where = this.state.where.filter(([f]) => f !== field).concat([[field, value]]);
      this.valueInput.value = "";
    }
    this.state.offset = 0;
    this.load();
  }

  page(step) {
    const s = this.state;
    s.offset = Math.max(0, s.offset + step * s.limit);
    this.load();
  }

  sortBy(key) {
    const s = this.state;
    if (s.sort === key) s.desc = !s.desc;
    else {
      s.sort = key;
      s.desc = key === "contribution";
    }
    s.offset = 0;
    this.load();
  }

  query() {
    const s = this.state;
    return {
      sort: s.sort,
      desc: s.sort === null ? null : s.desc,
      record_id: s.recordId,
      where: s.where.map(([f, v]) => `${f}=${v}`),
    };
  }

  base() {
    return `/api/krs/${encodeURIComponent(this.kr.id)}/values/${encodeURIComponent(this.value.value_id)}/records`;
  }

  async load() {
    if (!this.value) return;
    const seq = ++this.seq;
    const s = this.state;
    this.root.setAttribute("aria-busy", "true");
    say(this.status, "Loading the records…");
    let data;
    try {
      data = await api(withQuery(this.base(), { ...this.query(), limit: s.limit, offset: s.offset }));
    } catch (e) {
      if (seq !== this.seq) return;
      this.root.removeAttribute("aria-busy");
      sayError(this.status, e);
      return;
    }
    if (seq !== this.seq) return; // a newer request was made meanwhile
    this.root.removeAttribute("aria-busy");
    say(this.status, "");
    s.sort = data.sort;
    s.desc = data.desc;
    this.draw(data);
  }

  draw(data) {
    const s = this.state;
    const streams = Object.keys(data.columns || {});
    const fields = [];
    for (const st of streams) for (const f of data.columns[st]) if (!fields.includes(f)) fields.push(f);
    this.sealed = new Set();
    if (!this.me.can.sensitive) for (const st of Object.keys(data.sensitive || {})) for (const f of data.sensitive[st]) this.sealed.add(f);

    this.drawFieldSelect(fields);
    this.drawChips();
    const first = data.total ? data.offset + 1 : 0;
    const last = data.offset + data.records.length;
    fill(this.range, data.total ? `showing ${first}–${last} of ${data.total.toLocaleString("en-US")}` : "no records match");
    this.range.dataset.total = String(data.total);
    this.prev.disabled = data.offset <= 0;
    this.next.disabled = last >= data.total;
    this.csv.href = withQuery(`${this.base()}.csv`, this.query());

    const multi = streams.length > 1;
    const ratio = data.records.some((r) => r.denominator_contribution !== null && r.denominator_contribution !== undefined);
    const head = [
      this.sortHeader("contribution", "contribution", "num"),
      ratio ? el("th", { scope: "col", class: "num", text: "denominator" }) : null,
      this.sortHeader("record", "record"),
      multi ? el("th", { scope: "col", text: "stream" }) : null,
      el("th", { scope: "col", text: "role" }),
      fields.map((f) =>
        this.sealed.has(f)
          ? el("th", { scope: "col", title: "sealed: your role does not see this field in clear" }, f, el("span", { class: "sealed-mark", text: "sealed" }))
          : this.sortHeader(f, f),
      ),
    ];
    const rows = data.records.map((r) =>
      el(
        "tr",
        { "data-testid": "record-row", "data-record-id": r.record_id },
        el("td", { class: "num", "data-testid": "record-contribution", text: fmtExact(r.contribution) }),
        ratio ? el("td", { class: "num", text: fmtExact(r.denominator_contribution) }) : null,
        el("td", { "data-testid": "record-id" }, r.url ? link(r.url, r.record_id, { external: true }) : el("span", { text: r.record_id })),
        multi ? el("td", { text: r.stream }) : null,
        el("td", { class: "muted", text: r.role }),
        fields.map((f) => fieldCell(r.fields, f)),
      ),
    );
    const tbl = el(
      "table",
      { id: "records-table", "data-testid": "records-table", "data-sort": s.sort, "data-desc": String(s.desc) },
      el("caption", { class: "visually-hidden", text: `Records behind value #${this.value.value_id}` }),
      el("thead", {}, el("tr", {}, head)),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: "99", class: "empty", text: "No records match these filters." }))),
    );
    fill(this.tableBox, el("div", { class: "table-wrap table-scroll" }, tbl));
  }

  sortHeader(key, label, cls) {
    const s = this.state;
    const on = s.sort === key;
    const arrow = on ? (s.desc ? " ▼" : " ▲") : "";
    const btn = el("button", {
      type: "button",
      class: "sort",
      "data-testid": `sort-${key}`,
      "data-sort": key,
      title: `Sort by ${label}`,
      text: label + arrow,
    });
    btn.addEventListener("click", () => this.sortBy(key));
    return el("th", { scope: "col", class: cls, "aria-sort": on ? (s.desc ? "descending" : "ascending") : null }, btn);
  }

  drawFieldSelect(fields) {
    const keep = this.fieldSelect.value;
    const usable = fields.filter((f) => !this.sealed.has(f));
    fill(
      this.fieldSelect,
      el("option", { value: "", text: "(any field)" }),
      usable.map((f) => el("option", { value: f, text: f, selected: f === keep })),
    );
  }

  drawChips() {
    const s = this.state;
    const chips = [];
    if (s.recordId) chips.push(this.chip(`record id contains “${s.recordId}”`, () => {
      s.recordId = "";
      this.recordIdInput.value = "";
    }));
    for (const [f, v] of s.where) {
      chips.push(this.chip(`${f} = ${v}`, () => {
        s.where = s.where.filter(([g]) => g !== f);
      }));
    }
    fill(this.chips, chips);
  }

  chip(text, onRemove) {
    const x = el("button", { type: "button", class: "chip-x", "aria-label": `Remove filter ${text}`, text: "✕" });
    x.addEventListener("click", () => {
      onRemove();
      this.state.offset = 0;
      this.load();
    });
    return el("span", { class: "chip", "data-testid": "filter-chip" }, el("span", { text }), x);
  }
}

function fieldCell(fields, name) {
  const v = fields ? fields[name] : undefined;
  if (v === null || v === undefined) return el("td", { class: "muted", text: "—" });
  const isNumber = typeof v === "number" || (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v) && v.length < 20);
  return el("td", { class: isNumber ? "num" : null, text: String(v) });
}
