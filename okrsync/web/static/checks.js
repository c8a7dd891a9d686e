// The check review (`/admin/checks`): failed checks and held KRs; one check's findings, offending
// rows and audit; accept a blocked check with a reason, or re-run and follow the job.
import { reconciliationDetail } from "/static/reconcile.js";
import { $, api, badge, el, fill, fmtExact, fmtTime, fmtValue, pauseIcon, say, sayError, startPage, table, withQuery } from "/static/app.js";

const status = $("page-status");
const result = $("action-result");
const state = { open: null, krs: new Map(), polling: null };

async function main() {
  await startPage({ active: "checks" });
  $("show-all").addEventListener("change", () => refresh());
  api("/api/tree")
    .then((t) => indexKrs(t.objectives))
    .catch(() => {}); // titles and units only make the results nicer
  await refresh();
  const wanted = Number(new URLSearchParams(location.search).get("check"));
  if (wanted) openCheck(wanted, { focus: false });
}

function indexKrs(objectives) {
  for (const o of objectives) {
    for (const k of o.key_results || []) state.krs.set(k.id, k);
    indexKrs(o.objectives || []);
  }
}

function krLink(id, text) {
  return el("a", { href: `/kr/${encodeURIComponent(id)}`, text: text || id, "data-testid": "kr-link" });
}

async function refresh() {
  let data;
  try {
    data = await api(withQuery("/api/checks", { failed: $("show-all").checked ? "false" : "true" }));
  } catch (e) {
    sayError(status, e);
    return;
  }
  say(status, "");
  fill($("checks-title"), $("show-all").checked ? "All checks" : "Failed checks");
  drawHeld(data.held);
  drawChecks(data.checks);
}

function drawHeld(held) {
  if (!held.length) {
    fill($("held-list"), el("p", { class: "empty", "data-testid": "no-held", text: "No key result is held: every KR moves with its data." }));
    return;
  }
  const rows = held.map((h) =>
    el(
      "tr",
      { "data-testid": "held-row", "data-kr-id": h.kr_id },
      el("td", {}, krLink(h.kr_id)),
      el("td", { text: h.title }),
      el("td", {}, el("span", { class: "flag flag-held", title: "held" }, pauseIcon(), "held"), " ", el("span", { text: h.reason })),
      el("td", { class: "time", text: fmtTime(h.since) }),
      el("td", { class: "num", text: h.value_id === null || h.value_id === undefined ? "—" : `#${h.value_id}` }),
    ),
  );
  fill($("held-list"), table(["KR", "title", "why it is held", "since", "last good value"], rows, { testid: "held-table" }));
}

function onWhat(c) {
  if (c.kind === "reconcile") return `${c.spec.kwargs.left} ↔ ${c.spec.kwargs.right}`;
  return c.stream ? `stream ${c.stream}` : c.kr_id ? `KR ${c.kr_id}` : "—";
}

function found(c) {
  if (c.observed) return c.observed;
  if (c.element_count !== null && c.element_count !== undefined) {
    return `${(c.unexpected_count || 0).toLocaleString("en-US")} of ${c.element_count.toLocaleString("en-US")} rows failed`;
  }
  return "—";
}

function drawChecks(checks) {
  if (!checks.length) {
    fill(
      $("checks-list"),
      el("p", { class: "empty", "data-testid": "no-checks", text: $("show-all").checked ? "No check has run yet." : "No failed check: nothing to review." }),
    );
    return;
  }
  const rows = checks.map((c) => {
    const open = el("button", { type: "button", class: "small-button", "data-testid": "open-check", "aria-label": `Open check #${c.id}`, text: `#${c.id}` });
    open.addEventListener("click", () => openCheck(c.id));
    return el(
      "tr",
      { "data-testid": "check-row", "data-check-id": String(c.id), "data-status": c.status, class: state.open === c.id ? "selected" : null },
      el("td", {}, open),
      el("td", { class: "time", text: fmtTime(c.created_at) }),
      el("td", { text: onWhat(c) }),
      el("td", {}, el("code", { text: c.check })),
      el("td", { text: c.severity }),
      el("td", {}, badge(c.status, { testid: "check-status" })),
      el("td", { text: found(c) }),
      el("td", {}, c.held_krs.map((k, i) => [i ? ", " : "", krLink(k)])),
    );
  });
  fill($("checks-list"), table(["check", "when", "on", "what", "severity", "status", "found", "held KRs"], rows, { testid: "checks-table" }));
}

// ---- one check -----------------------------------------------------------------------------

async function openCheck(id, { focus = true } = {}) {
  const box = $("check-detail");
  state.open = id;
  for (const r of document.querySelectorAll('[data-testid="check-row"]')) r.classList.toggle("selected", r.dataset.checkId === String(id));
  const url = new URL(location.href);
  url.searchParams.set("check", String(id));
  history.replaceState(null, "", url.pathname + url.search);
  box.setAttribute("aria-busy", "true");
  let c;
  try {
    c = await api(`/api/checks/${encodeURIComponent(id)}`);
  } catch (e) {
    box.removeAttribute("aria-busy");
    sayError(status, e);
    return;
  }
  box.removeAttribute("aria-busy");
  if (state.open !== id) return;
  drawDetail(c);
  box.hidden = false;
  if (focus) {
    box.focus({ preventScroll: true });
    box.scrollIntoView({ block: "start" });
  }
}

function dl(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function drawDetail(c) {
  const fields = [];
  for (const s of c.sample) for (const f of Object.keys(s.fields || {})) if (!fields.includes(f)) fields.push(f);
  const sample = c.sample.length
    ? [
        el("h3", { text: `Offending rows (${c.sample.length}${c.unexpected_count > c.sample.length ? ` of ${c.unexpected_count}` : ""})` }),
        table(
          ["record", ...fields],
          c.sample.map((s) =>
            el(
              "tr",
              { "data-testid": "sample-row", "data-record-id": s.record_id },
              el("td", {}, el("code", { text: s.record_id })),
              fields.map((f) => el("td", { text: show(s.fields[f]) })),
            ),
          ),
          { testid: "sample-table" },
        ),
      ]
    : el("p", { class: "muted", text: "No offending rows were sampled for this check." });
  const audit = c.audit.length
    ? [
        el("h3", { text: "Decisions" }),
        table(
          ["when", "who", "action", "reason"],
          c.audit.map((a) => el("tr", { "data-testid": "audit-row" }, el("td", { class: "time", text: fmtTime(a.at) }), el("td", { text: a.actor }), el("td", { text: a.action }), el("td", { text: a.reason }))),
          { testid: "audit-table" },
        ),
      ]
    : null;
  const held = c.held_krs.length
    ? el(
        "p",
        { "data-testid": "detail-held" },
        c.status === "blocked" ? "Held key results: " : "Key results it held: ",
        c.held_krs.map((k, i) => [i ? ", " : "", krLink(k, state.krs.has(k) ? `${k} ${state.krs.get(k).title}` : k)]),
      )
    : null;
  fill(
    $("check-detail"),
    el(
      "div",
      { class: "section-head" },
      el("h2", { id: "check-title" }, `Check #${c.id} `, el("code", { text: c.check }), ` on ${onWhat(c)} `),
      badge(c.status, { testid: "detail-status" }),
    ),
    dl([
      ["found", el("span", { "data-testid": "detail-found", text: found(c) })],
      ["severity", c.severity],
      ["kind", c.kind],
      ["checked", fmtTime(c.created_at)],
      ["run", el("code", { text: c.run_id })],
      ["value held back", c.proposed_value === null || c.proposed_value === undefined ? null : fmtExact(c.proposed_value)],
      ["resolved", c.resolved_at ? `${fmtTime(c.resolved_at)} by ${c.resolved_by || "?"}` : null],
    ]),
    held,
    c.status === "blocked" ? actions(c) : null,
    c.reconciliation ? reconciliationDetail(c.reconciliation) : sample,
    audit,
  );
}

function show(v) {
  return v === null || v === undefined ? "—" : String(v);
}

// ---- accept and re-run ---------------------------------------------------------------------

function actions(c) {
  const reason = el("textarea", {
    id: "accept-reason",
    "data-testid": "accept-reason",
    required: true,
    minlength: "3",
    maxlength: "2000",
    rows: "3",
    placeholder: "Why is this data fine? For example: refunds, confirmed by finance. Kept in the audit log.",
  });
  const submit = el("button", { type: "submit", "data-testid": "accept-submit", text: "Accept check" });
  const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
  const form = el(
    "form",
    { class: "accept-form", id: "accept-form", "data-testid": "accept-form", hidden: true },
    el("div", { class: "field" }, el("label", { for: "accept-reason", text: "Reason (required)" }), reason),
    el("p", { class: "muted small", text: `${c.kind === "reconcile" ? "This accepts the difference (it stays accepted while it stays the same)" : "This commits what the check held back once"}, recomputes ${c.held_krs.length ? c.held_krs.join(", ") : "the affected key results"}, and writes the decision to the audit log.` }),
    el("div", { class: "buttons" }, submit, cancel),
  );
  const openAccept = el("button", { type: "button", "data-testid": "accept-open", "aria-expanded": "false", "aria-controls": "accept-form", text: "Accept…" });
  const rerun = el("button", { type: "button", class: "secondary", "data-testid": "rerun", text: "Re-run" });
  openAccept.addEventListener("click", () => {
    form.hidden = false;
    openAccept.setAttribute("aria-expanded", "true");
    reason.focus();
  });
  cancel.addEventListener("click", () => {
    form.hidden = true;
    openAccept.setAttribute("aria-expanded", "false");
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = reason.value.trim();
    if (text.length < 3) {
      say(result, "Write a reason (at least 3 characters): it goes to the audit log.", "error");
      reason.focus();
      return;
    }
    submit.disabled = true;
    say(result, `Accepting check #${c.id}…`);
    try {
      const done = await api(`/api/checks/${encodeURIComponent(c.id)}/accept`, { method: "POST", body: { reason: text } });
      showAccepted(done);
    } catch (err) {
      submit.disabled = false;
      sayError(result, err);
      return;
    }
    await refresh();
    await openCheck(c.id, { focus: false });
  });
  rerun.addEventListener("click", () => startRerun(c, rerun));
  return el("div", { class: "actions" }, el("div", { class: "buttons" }, openAccept, rerun), form);
}

function showAccepted(done) {
  const values = Object.entries(done.values || {});
  const held = Object.entries(done.held || {});
  fill(
    result,
    el(
      "div",
      { "data-testid": "accept-result" },
      el("strong", { text: `Accepted check${done.check_ids.length > 1 ? "s" : ""} ${done.check_ids.map((i) => `#${i}`).join(", ")}.` }),
      done.stream ? ` ${done.rows_committed} staged row changes committed to ${done.stream}.` : "",
      values.length
        ? el(
            "div",
            { "data-testid": "accept-recomputed" },
            "Recomputed: ",
            values.map(([k, v], i) => [i ? ", " : "", krLink(k), ` ${fmtValue(v, state.krs.has(k) ? state.krs.get(k).unit : null)}`]),
          )
        : el("div", { text: "No key result was recomputed." }),
      held.length
        ? el("div", { "data-testid": "accept-still-held" }, "Still held: ", held.map(([k, why], i) => [i ? "; " : "", krLink(k), `: ${why}`]))
        : el("div", { text: "No key result is still held by this check." }),
    ),
  );
  result.dataset.kind = "ok";
  result.hidden = false;
}

async function startRerun(c, button) {
  button.disabled = true;
  say(result, `Starting a re-run for check #${c.id}…`);
  let job;
  try {
    job = await api(`/api/checks/${encodeURIComponent(c.id)}/rerun`, { method: "POST" });
  } catch (err) {
    button.disabled = false;
    if (err.status === 409) say(result, "A run is already going: wait for it to finish, then look again.", "error", err.hint);
    else sayError(result, err);
    return;
  }
  showJob(job);
  if (state.polling) clearInterval(state.polling);
  state.polling = setInterval(async () => {
    try {
      job = await api(`/api/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      clearInterval(state.polling);
      state.polling = null;
      sayError(result, err);
      button.disabled = false;
      return;
    }
    showJob(job);
    if (job.status !== "running") {
      clearInterval(state.polling);
      state.polling = null;
      button.disabled = false;
      await refresh();
      if (state.open === c.id) await openCheck(c.id, { focus: false });
    }
  }, 1000);
}

function showJob(job) {
  const sum = job.summary || {};
  const done = job.status !== "running";
  fill(
    result,
    el(
      "div",
      { "data-testid": "job", "data-status": job.status },
      el("strong", { text: `Re-run for check #${job.check_id}: ` }),
      badge(job.status, { testid: "job-status" }),
      done ? ` finished ${fmtTime(job.finished_at)}.` : ` started ${fmtTime(job.started_at)}, checking again every second…`,
      job.error ? el("div", { class: "error-text", "data-testid": "job-error", text: job.error }) : null,
      done && job.summary ? jobSummary(sum) : null,
    ),
  );
  result.dataset.kind = job.status === "failed" ? "error" : job.status === "partial" ? "warn" : done ? "ok" : "info";
  result.hidden = false;
}

/** A run's summary: its streams, the key results it recomputed and those still held. */
function jobSummary(sum) {
  const streams = Object.entries(sum.streams || {});
  const values = Object.entries(sum.values || {});
  const held = Object.entries(sum.held || {});
  const reasons = new Set(held.map(([, why]) => why));
  const known = new Set(["streams", "values", "held", "error", "status"]);
  const facts = Object.entries(sum).filter(([k, v]) => !known.has(k) && (v === null || typeof v !== "object"));
  const num = (v) => (v === null || v === undefined ? "—" : String(v));
  return el(
    "div",
    { class: "job-summary", "data-testid": "job-summary" },
    streams.length
      ? table(
          ["stream", "synced", "rows read", "new", "changed", "deleted", "problem"],
          streams.map(([name, st]) =>
            el(
              "tr",
              {},
              el("td", { text: name }),
              el("td", {}, badge(st.ok ? "succeeded" : "failed")),
              el("td", { class: "num", text: num(st.rows_read) }),
              el("td", { class: "num", text: num(st.inserted) }),
              el("td", { class: "num", text: num(st.updated) }),
              el("td", { class: "num", text: num(st.deleted) }),
              el("td", { text: st.error || "" }),
            ),
          ),
          { testid: "job-streams", className: "compact" },
        )
      : null,
    values.length
      ? el("div", {}, "Recomputed: ", values.map(([k, v], i) => [i ? ", " : "", krLink(k), ` ${fmtValue(v, state.krs.has(k) ? state.krs.get(k).unit : null)}`]))
      : null,
    held.length
      ? el(
          "div",
          { "data-testid": "job-held" },
          "Still held: ",
          held.map(([k], i) => [i ? ", " : "", krLink(k)]),
          reasons.size === 1 ? ` (${[...reasons][0]})` : held.map(([k, why]) => el("div", { class: "small", text: `${k}: ${why}` })),
        )
      : null,
    facts.length ? dl(facts.map(([k, v]) => [k.replace(/_/g, " "), k === "as_of" || k.endsWith("_at") ? fmtTime(v) : show(v)])) : null,
  );
}

main().catch((e) => sayError(status, e));
