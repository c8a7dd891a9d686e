// Shared by every page: the JSON API client, the page header, DOM building and formatting.
// Data from the API only ever reaches the page through textContent and attributes set here:
// never through innerHTML (source records are untrusted, see RELIABILITY.md S12).

export class ApiError extends Error {
  constructor(status, detail, hint) {
    super(detail);
    this.status = status;
    this.hint = hint || null;
  }
}

let csrfToken = null;

/** Remember the session's CSRF token (from POST /api/session or GET /api/me). */
export function setCsrf(token) {
  csrfToken = token;
}

/** The login page, with a way back to where the user was. */
export function loginUrl() {
  const here = location.pathname + location.search;
  return "/login?next=" + encodeURIComponent(here);
}

/**
 * Call the JSON API. State-changing calls carry the CSRF token. A 401 sends the user to the login
 * page (unless `noRedirect`); other errors throw an ApiError with the server's detail and hint.
 */
export async function api(path, { method = "GET", body, noRedirect = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (e) {
    throw new ApiError(0, "the server did not answer", "check that `okrsync serve` is running");
  }
  if (resp.status === 401 && !noRedirect) {
    location.assign(loginUrl());
    throw new ApiError(401, "signed out", null);
  }
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json().catch(() => null) : null;
  if (!resp.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map(validationMessage).join("; ");
    throw new ApiError(resp.status, detail || `${resp.status} ${resp.statusText}`, data && data.hint);
  }
  return data;
}

/** A request validation error (422) as "target: Input should be a valid decimal": the field it names
 * (without the leading "body"/"query") before the message. */
function validationMessage(d) {
  if (!d || typeof d !== "object") return String(d);
  const where = Array.isArray(d.loc) ? d.loc.filter((x, i) => !(i === 0 && ["body", "query", "path"].includes(x))).join(".") : "";
  return where ? `${where}: ${d.msg}` : d.msg || String(d);
}

/** Build a URL with a query string; array values repeat the key, null/undefined/"" are left out. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== null && v !== undefined && v !== "") q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// ---- DOM -----------------------------------------------------------------------------------

/**
 * Create an element. `attrs`: `class`, `text` (textContent), `dataset`, `on` ({event: fn}), and plain
 * attributes (null/false are skipped, true sets an empty attribute). Children: nodes or strings
 * (strings become text nodes).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's content. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

/** A link into the page's own site, or into a source's UI (`external`: new tab, no opener). */
export function link(href, text, { external = false, testid } = {}) {
  return el("a", {
    href: safeHref(href),
    text,
    target: external ? "_blank" : null,
    rel: external ? "noopener noreferrer" : null,
    "data-testid": testid,
  });
}

/** Only http(s) and same-site links from data: a `javascript:` URL in a record becomes inert. */
export function safeHref(href) {
  try {
    const u = new URL(href, location.origin);
    if (u.protocol === "http:" || u.protocol === "https:") return u.href;
  } catch (e) {
    /* fall through */
  }
  return "#";
}

/** A table: `columns` are header labels (strings or `th` nodes), `rows` its `tr` nodes; `testid` is
 * the table's id and data-testid. */
export function table(columns, rows, { testid, className } = {}) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { "data-testid": testid, id: testid, class: className },
      el("thead", {}, el("tr", {}, columns.map((c) => (c instanceof Node ? c : el("th", { scope: "col", text: c }))))),
      el("tbody", {}, rows),
    ),
  );
}

/** Show a message in a page's aria-live status region (kind: "info" | "error" | "ok"). */
export function say(node, message, kind = "info", hint = null) {
  fill(node, message ? el("span", { text: message }) : null, hint ? el("span", { class: "hint", text: " " + hint }) : null);
  node.dataset.kind = message ? kind : "";
  node.hidden = !message;
}

/** Show an API error in a status region. */
export function sayError(node, err) {
  if (err instanceof ApiError && err.status === 401) return;
  say(node, err.message || String(err), "error", err.hint);
}

// ---- formatting ----------------------------------------------------------------------------

const grouped0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const grouped2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const grouped1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const exactFormats = new Map();
const currencyFormats = new Map();
const CURRENCIES = new Set(typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("currency") : []);

/** A number format at an ISO 4217 currency unit's places (USD 2, JPY 0, KWD 3), or null: the CLI's
 * places for the same unit (CLDR, both sides). */
function currencyFormat(unit) {
  if (typeof unit !== "string" || !/^[A-Z]{3}$/.test(unit) || !CURRENCIES.has(unit)) return null;
  if (!currencyFormats.has(unit)) {
    const places = new Intl.NumberFormat("en-US", { style: "currency", currency: unit }).resolvedOptions().maximumFractionDigits;
    currencyFormats.set(unit, new Intl.NumberFormat("en-US", { minimumFractionDigits: places, maximumFractionDigits: places }));
  }
  return currencyFormats.get(unit);
}

function isNum(v) {
  return v !== null && v !== undefined && v !== "" && !Number.isNaN(Number(v));
}

/** A KR value with its unit, as the CLI shows it: percent units as "10.6 %", money "1,234.50 EUR". */
export function fmtValue(v, unit) {
  if (!isNum(v)) return "—";
  const n = Number(v);
  if (unit === "percent") return `${grouped1.format(n * 100)} %`;
  const money = currencyFormat(unit);
  if (money) return `${money.format(String(v))} ${unit}`;
  // Intl formats decimal strings exactly (no float rounding on the way).
  const text = !Number.isInteger(n) || Math.abs(n) >= 1000 ? grouped2.format(String(v)) : grouped0.format(String(v));
  return unit ? `${text} ${unit}` : text;
}

/** A KR's or a history point's value as shown: a small group's value the server withheld from this
 * role says so ("suppressed (n < 5)", its reason) instead of a number. */
export function fmtShown(v, unit) {
  return v && v.status === "suppressed" ? v.reason || "suppressed" : fmtValue(v ? v.value : null, unit);
}

/** A value's record count ("—" when the server withheld it with the value). */
export function fmtRecords(v) {
  return v.records === null || v.records === undefined ? "—" : String(v.records);
}

/** An exact decimal string with thousands separators and every digit kept. */
export function fmtExact(v) {
  if (!isNum(v)) return v === null || v === undefined ? "—" : String(v);
  const s = String(v).trim();
  const m = /\.(\d+)$/.exec(s);
  const digits = m && !/e/i.test(s) ? Math.min(m[1].length, 20) : 0;
  if (!exactFormats.has(digits)) {
    exactFormats.set(digits, new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: Math.max(digits, 20) }));
  }
  return exactFormats.get(digits).format(s);
}

/** A 0–1 progress as "69 %". */
export function fmtPct(p) {
  return isNum(p) ? `${Math.round(Number(p) * 100)} %` : "—";
}

/** Parse the API's UTC times ("2026-11-20T18:00:00", with or without "Z"). */
export function parseTime(t) {
  if (!t) return null;
  const s = /[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : t + "Z";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "2026-11-20 18:00 UTC", or "never". */
export function fmtTime(t) {
  const d = parseTime(t);
  if (!d) return t ? String(t) : "never";
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** A short axis label: "Nov 20 18:00". */
export function fmtShortTime(t) {
  const d = parseTime(t);
  if (!d) return String(t);
  const month = d.toLocaleString("en-US", { month: "short", timeZone: "UTC" });
  return `${month} ${d.getUTCDate()} ${d.toISOString().slice(11, 16)}`;
}

/** "3 h ago", "2 d ago". */
export function fmtAge(t, now = new Date()) {
  const d = parseTime(t);
  if (!d) return "";
  const mins = Math.round((now - d) / 60000);
  if (mins < 1) return "just now";
  if (mins < 60) return `${mins} min ago`;
  const h = Math.round(mins / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} d ago`;
}

const STATUS_LABEL = {
  on_track: "on track",
  at_risk: "at risk",
  off_track: "off track",
  achieved: "achieved",
  no_data: "no data",
  suppressed: "suppressed",
  passed: "passed",
  warned: "warned",
  blocked: "blocked",
  accepted: "accepted",
  superseded: "superseded",
  running: "running",
  succeeded: "succeeded",
  partial: "partial",
  failed: "failed",
};

/** A coloured status badge; unknown statuses are shown as they come. */
export function badge(status, { title, testid } = {}) {
  const known = Object.prototype.hasOwnProperty.call(STATUS_LABEL, status);
  return el("span", {
    class: `badge badge-${known ? status : "other"}`,
    text: known ? STATUS_LABEL[status] : String(status),
    title,
    "data-testid": testid,
    "data-status": status,
  });
}

/** The flags of a KR or objective: held (⏸, the reason as tooltip) and stale. */
export function flags(node, { reason } = {}) {
  const out = [];
  if (node.held) {
    const why = reason || node.held_reason || "held: an input failed in the last run";
    out.push(el("span", { class: "flag flag-held", title: why, "aria-label": `held: ${why}`, "data-testid": "held" }, pauseIcon(), "held"));
  }
  if (node.stale) {
    out.push(el("span", { class: "flag flag-stale", title: "the data is older than the stale limit", "data-testid": "stale", text: "stale" }));
  }
  if (node.close && node.close.label) {
    // final, provisional (closes on …), restated after close (+1.2 %): docs/web.md, "Closing periods"
    out.push(el("span", { class: `flag flag-close close-${node.close.state}`, title: "period close", "data-testid": "close-flag", "data-state": node.close.state, text: node.close.label }));
  }
  return out;
}

/** ⏸ drawn in CSS: the glyph is missing from many fonts. */
export function pauseIcon() {
  return el("span", { class: "icon-pause", "aria-hidden": "true" });
}

/** A progress bar (0–1), with the expected pace as a tick when given. */
export function progressBar(progress, expected, { label } = {}) {
  const p = isNum(progress) ? Math.max(0, Math.min(1, Number(progress))) : null;
  const bar = el("div", {
    class: "bar",
    role: "progressbar",
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-valuenow": p === null ? null : String(Math.round(p * 100)),
    "aria-label": label || "progress",
  });
  const fillEl = el("div", { class: "bar-fill" });
  fillEl.style.width = `${p === null ? 0 : p * 100}%`;
  bar.append(fillEl);
  if (isNum(expected)) {
    const tick = el("div", { class: "bar-pace", title: `expected by now: ${fmtPct(expected)}` });
    tick.style.left = `${Math.max(0, Math.min(1, Number(expected))) * 100}%`;
    bar.append(tick);
  }
  return bar;
}

// ---- the page header -----------------------------------------------------------------------

/**
 * Start a page: fetch who is signed in (401 → the login page), remember the CSRF token and draw the
 * header. Returns `/api/me`.
 */
export async function startPage({ active } = {}) {
  const status = $("page-status");
  let me;
  try {
    me = await api("/api/me");
  } catch (e) {
    if (status) sayError(status, e);
    throw e;
  }
  setCsrf(me.csrf_token);
  drawHeader(me, active);
  return me;
}

function drawHeader(me, active) {
  const header = $("site-header");
  if (!header) return;
  const nav = el("nav", { "aria-label": "main" });
  const item = (href, text, key, testid) =>
    el("a", { href, text, class: active === key ? "active" : null, "aria-current": active === key ? "page" : null, "data-testid": testid });
  nav.append(item("/", "Objectives", "tree", "nav-tree"));
  if (me.can && me.can.bind) {
    nav.append(item("/bind", "Bind a KR", "bind", "nav-bind"), item("/plan", "Plan a change", "plan", "nav-plan"));
  }
  if (me.can && me.can.admin) {
    nav.append(
      item("/admin/checks", "Checks", "checks", "nav-checks"),
      item("/admin/users", "Users", "users", "nav-users"),
      item("/admin/audit", "Audit", "audit", "nav-audit"),
    );
  }
  const signOut = el("button", { type: "button", class: "link-button", id: "sign-out", "data-testid": "sign-out", text: "Sign out" });
  signOut.addEventListener("click", async () => {
    try {
      await api("/api/session", { method: "DELETE", noRedirect: true });
    } catch (e) {
      /* the session may already be gone: go to the login page either way */
    }
    location.assign("/login");
  });
  fill(
    header,
    el("a", { href: "/", class: "brand", text: "okrsync" }),
    nav,
    el(
      "div",
      { class: "who" },
      el("span", { class: "who-name", id: "who-name", "data-testid": "who-name", text: me.name }),
      el("span", { class: "role", id: "who-role", "data-testid": "who-role", text: me.role }),
      signOut,
    ),
  );
}
