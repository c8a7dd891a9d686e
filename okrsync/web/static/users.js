// Users (`/admin/users`): list, add and remove users; create, list and revoke your own API tokens.
import { $, api, badge, el, fill, fmtTime, say, sayError, startPage, table } from "/static/app.js";

const status = $("page-status");
let me = null;

async function main() {
  me = await startPage({ active: "users" });
  $("add-user").addEventListener("submit", addUser);
  $("new-token").addEventListener("submit", newToken);
  await Promise.all([loadUsers(), loadTokens()]);
}

/** A button that asks once more before doing something that cannot be undone. */
function confirmButton(label, confirmLabel, testid, action) {
  const b = el("button", { type: "button", class: "secondary danger", "data-testid": testid, text: label });
  let armed = false;
  let timer = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      b.classList.add("armed");
      timer = setTimeout(() => {
        armed = false;
        b.textContent = label;
        b.classList.remove("armed");
      }, 5000);
      return;
    }
    clearTimeout(timer);
    b.disabled = true;
    await action();
    b.disabled = false;
  });
  return b;
}

// ---- users ---------------------------------------------------------------------------------

async function loadUsers() {
  let data;
  try {
    data = await api("/api/users");
  } catch (e) {
    sayError(status, e);
    return;
  }
  say(status, "");
  const rows = data.users.map((u) =>
    el(
      "tr",
      { "data-testid": "user-row", "data-name": u.name },
      el("td", {}, el("strong", { text: u.name }), u.name === me.name ? el("span", { class: "muted", text: " (you)" }) : null),
      el("td", {}, el("span", { class: "role", text: u.role })),
      el("td", { class: "time", text: fmtTime(u.created_at) }),
      el("td", {}, u.disabled ? badge("failed", { title: "disabled" }) : el("span", { class: "muted", text: "active" })),
      el(
        "td",
        {},
        u.name === me.name
          ? el("span", { class: "muted small", text: "you cannot remove yourself" })
          : confirmButton("Remove", `Remove ${u.name}?`, "remove-user", () => removeUser(u.name)),
      ),
    ),
  );
  fill($("users-list"), rows.length ? table(["name", "role", "added", "status", ""], rows, { testid: "users-table" }) : el("p", { class: "empty", text: "No users." }));
}

async function removeUser(name) {
  const out = $("users-status");
  try {
    await api(`/api/users/${encodeURIComponent(name)}`, { method: "DELETE" });
    say(out, `Removed ${name}; their sessions and tokens ended.`, "ok");
  } catch (e) {
    sayError(out, e);
  }
  await loadUsers();
}

async function addUser(e) {
  e.preventDefault();
  const out = $("add-status");
  const name = $("new-name").value.trim();
  const password = $("new-password").value;
  if (password.length < 10) {
    say(out, "The password needs at least 10 characters.", "error");
    return;
  }
  try {
    const u = await api("/api/users", { method: "POST", body: { name, role: $("new-role").value, password } });
    say(out, `Added ${u.name} as ${u.role}.`, "ok");
    $("add-user").reset();
  } catch (err) {
    sayError(out, err);
    return;
  }
  await loadUsers();
}

// ---- tokens --------------------------------------------------------------------------------

async function loadTokens() {
  let data;
  try {
    data = await api("/api/tokens");
  } catch (e) {
    sayError($("token-status"), e);
    return;
  }
  const rows = data.tokens.map((t) =>
    el(
      "tr",
      { "data-testid": "token-row", "data-token-id": String(t.id) },
      el("td", { text: t.label }),
      el("td", { class: "time", text: fmtTime(t.created_at) }),
      el("td", { text: t.expires_at ? fmtTime(t.expires_at) : "never" }),
      el("td", { text: t.last_used_at ? fmtTime(t.last_used_at) : "not yet" }),
      el("td", {}, confirmButton("Revoke", "Revoke now?", "revoke-token", () => revokeToken(t))),
    ),
  );
  fill(
    $("tokens-list"),
    rows.length ? table(["label", "created", "expires", "last used", ""], rows, { testid: "tokens-table" }) : el("p", { class: "empty", text: "You have no API tokens." }),
  );
}

async function revokeToken(t) {
  const out = $("token-status");
  try {
    await api(`/api/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" });
    say(out, `Revoked “${t.label}”.`, "ok");
  } catch (e) {
    sayError(out, e);
  }
  await loadTokens();
}

async function newToken(e) {
  e.preventDefault();
  const out = $("token-status");
  const days = $("token-days").value;
  const body = { label: $("token-label").value.trim() };
  if (days) body.days = Number(days);
  let t;
  try {
    t = await api("/api/tokens", { method: "POST", body });
  } catch (err) {
    sayError(out, err);
    return;
  }
  say(out, "");
  $("new-token").reset();
  showIssued(t);
  await loadTokens();
}

function showIssued(t) {
  const box = $("token-issued");
  const input = el("input", { id: "issued-token", "data-testid": "issued-token", readonly: true, value: t.token, "aria-label": "your new API token", spellcheck: "false" });
  const copy = el("button", { type: "button", "data-testid": "copy-token", text: "Copy" });
  const copied = el("span", { class: "muted small", role: "status", "aria-live": "polite" });
  copy.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(t.token);
      copied.textContent = "Copied.";
    } catch (err) {
      copied.textContent = "Selected: press Ctrl+C to copy.";
    }
  });
  const done = el("button", { type: "button", class: "secondary", text: "Done" });
  done.addEventListener("click", () => {
    fill(box);
    box.hidden = true;
  });
  fill(
    box,
    el("p", {}, el("strong", { text: `Token “${t.label}” created` }), ` (expires ${fmtTime(t.expires_at)})`, ". Copy it now: it is not shown again."),
    el("div", { class: "token-box" }, input, copy, done, copied),
  );
  box.hidden = false;
  input.focus();
  input.select();
}

main().catch((e) => sayError(status, e));
