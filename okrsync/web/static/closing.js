// The "Period close" card of a key result's page: final, provisional (closes on …) or restated after
// close (+1.2 %); the restatements with the records that moved the closed value; for admins, the
// forms to acknowledge a restatement and to reopen a closed period (both audited). docs/web.md,
// "Closing periods".
import { $, api, el, fill, fmtTime, fmtValue, say, sayError, setCsrf, table } from "/static/app.js";

const krId = decodeURIComponent(location.pathname.replace(/^\/kr\//, "").replace(/\/+$/, ""));
const status = $("close-status");
const panel = $("close-panel");

function describe(kr) {
  const c = kr.close;
  if (c.state === "final" || c.state === "restated") {
    const closed = c.closed;
    return closed
      ? `The period ${kr.period} closed at ${fmtValue(closed.value, kr.unit)} (final as of ${fmtTime(closed.as_of)}, closed ${fmtTime(closed.closed_at)}). Later source changes do not rewrite it: they are listed below.`
      : `The period ${kr.period} is closed.`;
  }
  if (c.state === "provisional") return `The period ${kr.period} has ended; its value stays provisional until the period closes.`;
  if (c.closes_on) return `The period ${kr.period} closes on ${c.closes_on}, once it has ended.`;
  return `The period ${kr.period} does not close (no close_after_days is set).`;
}

function reasonForm({ testid, label, button, onSubmit }) {
  const input = el("input", { type: "text", required: true, minlength: "3", maxlength: "2000", "aria-label": label, placeholder: label, "data-testid": `${testid}-reason` });
  const form = el(
    "form",
    { "data-testid": testid, on: { submit: async (e) => { e.preventDefault(); await onSubmit(input.value); } } },
    input,
    el("button", { type: "submit", "data-testid": `${testid}-submit`, text: button }),
  );
  return form;
}

async function records(r, me) {
  if (!me.can.records) return null;
  const full = await api(`/api/restatements/${r.id}`);
  const rows = full.changes.map((c) =>
    el(
      "tr",
      { "data-testid": "restatement-record", "data-id": c.record_id },
      el("td", { text: c.stream }),
      el("td", { text: c.record_id }),
      el("td", { text: c.kind }),
      el("td", { class: "num", text: c.before ?? "—" }),
      el("td", { class: "num", text: c.after ?? "—" }),
      el("td", { text: c.why + (c.fields.length ? `: ${c.fields.join(", ")}` : "") }),
    ),
  );
  return table(["stream", "record", "kind", "before", "after", "why"], rows, { testid: `restatement-records-${r.id}` });
}

async function draw(me) {
  const detail = await api(`/api/krs/${encodeURIComponent(krId)}`);
  const kr = detail.kr;
  const c = kr.close;
  const parts = [
    el("p", {}, el("span", { class: `flag flag-close close-${c.state}`, "data-testid": "close-state", "data-state": c.state, text: c.label || (c.closes_on ? `open (closes on ${c.closes_on})` : "does not close") })),
    el("p", { class: "muted", "data-testid": "close-text", text: describe(kr) }),
  ];
  if (me.can.records) {
    const history = await api(`/api/krs/${encodeURIComponent(krId)}/closes`);
    for (const r of history.restatements) {
      const pending = !r.acknowledged_at;
      const head = `Restatement #${r.id} as of ${fmtTime(r.as_of)}: ${fmtValue(r.closed_value, kr.unit)} → ${fmtValue(r.value, kr.unit)} (${r.change}), ${r.total_changes} record(s)`;
      const ack = pending
        ? me.can.admin
          ? reasonForm({
              testid: `ack-form-${r.id}`,
              label: "Why this restatement is understood",
              button: "Acknowledge",
              onSubmit: async (reason) => act(me, `/api/restatements/${r.id}/ack`, reason, `Restatement #${r.id} acknowledged.`),
            })
          : el("p", { class: "muted", text: "Not acknowledged yet: an admin reviews it." })
        : el("p", { class: "muted", "data-testid": `ack-done-${r.id}`, text: `Acknowledged by ${r.acknowledged_by} at ${fmtTime(r.acknowledged_at)}: ${r.acknowledge_reason}` });
      parts.push(el("details", { class: "close-actions", open: pending, "data-testid": "restatement", "data-id": String(r.id) }, el("summary", { text: head }), await records(r, me), ack));
    }
  }
  if (me.can.admin && c.closed) {
    parts.push(
      el(
        "div",
        { class: "close-actions" },
        reasonForm({
          testid: "reopen-form",
          label: "Why the period reopens",
          button: "Reopen the period",
          onSubmit: async (reason) => act(me, `/api/krs/${encodeURIComponent(krId)}/reopen`, reason, "Reopened: the next run recomputes the value and closes the period again."),
        }),
      ),
    );
  }
  fill(panel, parts);
  $("close-section").hidden = false;
}

async function act(me, path, reason, done) {
  try {
    await api(path, { method: "POST", body: { reason: reason.trim() } });
  } catch (e) {
    sayError(status, e);
    return;
  }
  await draw(me);
  say(status, done, "ok");
}

async function main() {
  const me = await api("/api/me");
  setCsrf(me.csrf_token);
  try {
    await draw(me);
  } catch (e) {
    sayError(status, e);
  }
}

main();
