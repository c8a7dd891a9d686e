// The sign-in page: POST /api/session, then back to `?next=` (a path on this site only).
import { $, api, say, sayError } from "/static/app.js";

const form = $("login-form");
const status = $("login-status");

/** Where to go after signing in: a local path only, never another site ("//evil", "/\evil"). */
function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  if (!next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\") || next.startsWith("/login")) return "/";
  try {
    const u = new URL(next, location.origin);
    return u.origin === location.origin ? u.pathname + u.search + u.hash : "/";
  } catch (e) {
    return "/";
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  say(status, "Signing in…");
  try {
    await api("/api/session", {
      method: "POST",
      body: { username: $("username").value.trim(), password: $("password").value },
      noRedirect: true,
    });
    location.assign(nextPath());
  } catch (err) {
    button.disabled = false;
    if (err.status === 401) say(status, "Wrong user name or password.", "error");
    else if (err.status === 429) say(status, "Too many failed attempts: wait 5 minutes, then try again.", "error");
    else sayError(status, err);
    $("password").select();
  }
});
