// The audit log (`/admin/audit`): access changes, sign-ins and check decisions, newest first.
import { $, api, el, fill, fmtTime, say, sayError, startPage, table, withQuery } from "/static/app.js";

const status = $("page-status");
let rows = [];
let next = null;

async function main() {
  await startPage({ active: "audit" });
  $("access-only").addEventListener("change", () => load(true));
  $("audit-more").addEventListener("click", () => load(false));
  await load(true);
}

/** What an event is about: its target, the key result it concerns (when the target does not name it),
 * or its check. */
function about(e) {
  const target = e.kr_id && e.target && !e.target.includes(e.kr_id) ? `${e.kr_id}: ${e.target}` : e.target || e.kr_id;
  return target || (e.check_id ? `check #${e.check_id}` : "");
}

function row(e) {
  return el(
    "tr",
    { "data-testid": "audit-row", "data-action": e.action, "data-event-id": String(e.id) },
    el("td", { class: "time", text: fmtTime(e.at) }),
    el("td", {}, el("strong", { text: e.actor })),
    el("td", {}, el("code", { "data-testid": "audit-action", text: e.action })),
    el("td", { "data-testid": "audit-target", text: about(e) }),
    el("td", { class: "muted", text: e.address || "" }),
    el("td", { text: e.reason }),
  );
}

async function load(fresh) {
  if (fresh) {
    rows = [];
    next = null;
  }
  const params = { limit: 100 };
  if ($("access-only").checked) params.access = "true";
  if (next) params.before = next;
  let data;
  try {
    data = await api(withQuery("/api/audit", params));
  } catch (e) {
    sayError(status, e);
    return;
  }
  say(status, "");
  rows = rows.concat(data.events.map(row));
  next = data.next_before;
  $("audit-more").hidden = !next;
  fill(
    $("audit-list"),
    rows.length
      ? table(["when", "who", "what", "about", "from", "details"], rows, { testid: "audit-table" })
      : el("p", { class: "empty", text: "No events yet." }),
  );
}

main().catch((e) => sayError(status, e));
