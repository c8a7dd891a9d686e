"""The web API over HTTP on loopback: every endpoint for every role (including the forbidden cases),
sessions, CSRF, API tokens, drill-down as each role sees it, the check review and user management.
Expected values come from the store's own rows or SQL on the demo ERP, not from the API under test."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.web.conftest import ROLES, XSS, Site, password

KR = "KR-REV"
PUBLIC = {("GET", "/api/health"), ("POST", "/api/session"), ("GET", "/api/openapi.json")}


@contextmanager
def client(site: Site, role: str | None = None) -> Iterator[httpx.Client]:
    """A client signed in as ``role`` (cookie session), with its CSRF header set."""
    with httpx.Client(base_url=site.url, timeout=60) as c:
        if role is not None:
            name, pw = site.users[role]
            r = c.post("/api/session", json={"username": name, "password": pw})
            assert r.status_code == 200, r.text
            c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield c


def latest_value(site: Site, kr: str = KR) -> dict[str, Any]:
    with client(site, "viewer") as c:
        hist = c.get(f"/api/krs/{kr}").json()["history"]
    return hist[-1]


def records_url(kr: str, value_id: int) -> str:
    return f"/api/krs/{kr}/values/{value_id}/records"


# ---- authentication ---------------------------------------------------------------------------
def test_every_api_route_outside_the_public_list_needs_a_sign_in(web_server: Site) -> None:
    from okrsync.web import admin, alerts, api, bindings, closing, planning

    every = [*api.router.routes, *admin.router.routes, *alerts.router.routes, *closing.router.routes,
             *bindings.router.routes, *planning.router.routes]
    routes = [(m, r.path) for r in every for m in getattr(r, "methods", ()) - {"HEAD"}]
    assert len(routes) >= 20
    spec = web_server.app.openapi()["paths"]  # every route is in the spec, and nothing else
    assert sorted((m.upper(), p) for p, ops in spec.items() for m in ops) == sorted(routes)
    with client(web_server) as c:
        for method, path in routes:
            if (method, path) in PUBLIC:
                continue
            url = path.replace("{kr_id}", KR).replace("{value_id}", "1").replace("{check_id}", "1")
            url = url.replace("{job_id}", "x").replace("{name}", "x").replace("{token_id}", "1")
            url = url.replace("{restatement_id}", "1")
            r = c.request(method, url, json={})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["detail"]


def test_wrong_password_then_throttled(web_server_rw: Site) -> None:
    name, pw = web_server_rw.users["leadership"]
    with client(web_server_rw) as c:
        for _ in range(5):
            r = c.post("/api/session", json={"username": name, "password": "wrong-password"})
            assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
        r = c.post("/api/session", json={"username": name, "password": pw})
        assert r.status_code == 429 and "try again in" in r.json()["hint"]
        # an unknown user answers exactly like a wrong password
        r = c.post("/api/session", json={"username": "nobody", "password": "wrong-password"})
        assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"


def test_session_cookie_is_httponly_strict_and_stored_hashed(web_server_rw: Site) -> None:
    name, pw = web_server_rw.users["admin"]
    with client(web_server_rw) as c:
        r = c.post("/api/session", json={"username": name, "password": pw})
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        token = c.cookies["okrsync_session"]
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        api = c.post("/api/tokens", json={"label": "script"}).json()["token"]
    store = (web_server_rw.project_dir / ".okrsync" / "store.db").read_bytes()
    for secret in (token, api, pw):
        assert secret.encode() not in store
    assert b"argon2id" in store


def test_csrf_header_is_required_for_changes_made_with_the_cookie(web_server: Site) -> None:
    with client(web_server, "viewer") as c:
        good = c.headers.pop("X-CSRF-Token")
        r = c.post("/api/tokens", json={"label": "x"})
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
        wrong = good[:-1] + ("1" if good.endswith("0") else "0")
        r = c.post("/api/tokens", json={"label": "x"}, headers={"X-CSRF-Token": wrong})
        assert r.status_code == 403
        r = c.post("/api/tokens", json={"label": "x"}, headers={"X-CSRF-Token": good})
        assert r.status_code == 201
        c.headers["X-CSRF-Token"] = good
        assert c.delete(f"/api/tokens/{r.json()['id']}").status_code == 204


def test_api_tokens_work_without_csrf_expire_and_revoke(web_server: Site) -> None:
    with client(web_server, "leadership") as c:
        issued = c.post("/api/tokens", json={"label": "report", "days": 30}).json()
        assert issued["token"].startswith("okr_") and issued["expires_at"]
        listed = c.get("/api/tokens").json()["tokens"]
        assert [t["label"] for t in listed if t["id"] == issued["id"]] == ["report"]
        assert "token" not in listed[0]
    bearer = {"Authorization": f"Bearer {issued['token']}"}
    with httpx.Client(base_url=web_server.url, headers=bearer) as b:
        me = b.get("/api/me").json()
        assert me == {
            "name": "lea",
            "role": "leadership",
            "csrf_token": None,
            "can": {"records": True, "sensitive": False, "admin": False, "bind": False},
        }
        extra = b.post("/api/tokens", json={"label": "child"})  # a token makes no tokens
        assert extra.status_code == 403 and "cannot create API tokens" in extra.json()["detail"]
        assert b.delete(f"/api/tokens/{issued['id']}").status_code == 204
        assert b.get("/api/me").status_code == 401
    with httpx.Client(base_url=web_server.url) as b:
        r = b.get("/api/me", headers={"Authorization": "Bearer okr_not-a-token"})
        assert r.status_code == 401 and "okrsync users token" in r.json()["hint"]


def test_logout_ends_the_session(web_server: Site) -> None:
    with client(web_server, "viewer") as c:
        assert c.get("/api/me").status_code == 200
        assert c.delete("/api/session").status_code == 204
        assert c.get("/api/me").status_code == 401


# ---- who may do what --------------------------------------------------------------------------
def _matrix(site: Site) -> list[tuple[str, str, set[str]]]:
    v = latest_value(site)["value_id"]
    everyone, records, admin = set(ROLES), {"leadership", "hr", "admin"}, {"admin"}
    return [
        ("GET", "/api/me", everyone),
        ("GET", "/api/tree", everyone),
        ("GET", f"/api/krs/{KR}", everyone),
        ("GET", "/api/tokens", everyone),
        ("GET", records_url(KR, v), records),
        ("GET", records_url(KR, v) + ".csv", records),
        ("GET", f"/api/krs/{KR}/diff", records),
        ("GET", "/api/checks", admin),
        ("GET", f"/api/checks/{site.blocked_check}", admin),
        ("GET", "/api/users", admin),
        ("GET", "/api/jobs/none", admin),
        ("POST", "/api/users", admin),
        ("DELETE", "/api/users/nobody", admin),
        ("POST", f"/api/checks/{site.blocked_check}/accept", admin),
        ("POST", f"/api/checks/{site.blocked_check}/rerun", admin),  # tried by the others only
    ]


@pytest.mark.parametrize("role", ROLES)
def test_each_endpoint_answers_each_role_as_its_role_allows(web_server: Site, role: str) -> None:
    with client(web_server, role) as c:
        for method, url, allowed in _matrix(web_server):
            if role in allowed and url.endswith("/rerun"):
                continue  # it would start a run: test_rerun_from_the_api… does that on its own copy
            # changes are sent malformed: a role that may make them gets 422/404, never a change here
            r = c.request(method, url, json={"bad": "body"} if method == "POST" else None)
            if role in allowed:
                assert r.status_code in (200, 404, 422), (role, method, url, r.status_code, r.text)
            else:
                assert r.status_code == 403, (role, method, url, r.status_code)
                assert role in r.json()["detail"]


def test_pages_redirect_to_login_and_admin_pages_refuse_other_roles(web_server: Site) -> None:
    with client(web_server) as c:
        r = c.get("/kr/KR-REV")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/kr/KR-REV"
        assert c.get("/login").status_code == 200
    with client(web_server, "leadership") as c:
        assert c.get("/").status_code == 200
        assert c.get("/admin/checks").status_code == 403
    with client(web_server, "admin") as c:
        r = c.get("/admin/checks")
        assert r.status_code == 200
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"


# ---- values and records -----------------------------------------------------------------------
def test_tree_and_history(web_server: Site) -> None:
    with client(web_server, "viewer") as c:
        tree = c.get("/api/tree").json()
        krs = {k["id"]: k for o in tree["objectives"] for k in o["key_results"]}
        assert {"KR-REV", "KR-AOV"} <= set(krs)
        assert krs[KR]["held"] and "check" in krs[KR]["held_reason"]
        detail = c.get(f"/api/krs/{KR}").json()
    hist = detail["history"]
    assert len(hist) >= 3 and len({h["value"] for h in hist}) >= 2
    kr = detail["kr"]
    for h in hist:  # pace: where the KR should be by then
        expected = Decimal(kr["baseline"]) + Decimal(h["expected"]) * (
            Decimal(kr["target"]) - Decimal(kr["baseline"])
        )
        assert Decimal(h["pace_value"]) == expected
    assert hist[-1]["value_id"] == kr["value_id"]  # held: the last good value is the latest kept one
    with client(web_server, "viewer") as c:
        assert c.get("/api/krs/NOPE").status_code == 404


def test_a_backfilled_value_joins_the_history_at_its_as_of(web_server_rw: Site) -> None:
    """A back-fill recorded after the demo's runs: the API orders the history by as-of, the KR's
    current value and its hold stay, and the default diff still ends at the current value."""
    from datetime import timedelta

    from okr_store import queries
    from okr_store.store import Store, ValueRecord

    with client(web_server_rw, "leadership") as c:
        before = c.get(f"/api/krs/{KR}").json()
    first = min(before["history"], key=lambda v: v["as_of"])
    store = Store(f"sqlite:///{web_server_rw.project_dir / '.okrsync' / 'store.db'}")
    try:
        with store.engine.connect() as conn:
            v = queries.value_by_id(conn, first["value_id"])
        as_of = v.as_of - timedelta(days=10)
        run_id = store.start_run(as_of, None)
        (back,) = store.record_values(run_id, None, as_of, [ValueRecord(
            KR, v.value, None, v.records, v.baseline, v.target, v.progress_raw, v.progress, v.expected,
            v.status, v.definition_hash, "", v.snapshot)], {})
        store.finish_run(run_id, "succeeded")
    finally:
        store.close()
    with client(web_server_rw, "leadership") as c:
        after = c.get(f"/api/krs/{KR}").json()
        diff = c.get(f"/api/krs/{KR}/diff").json()
    hist = after["history"]
    assert hist[0]["value_id"] == back and hist[0]["as_of"] == as_of.isoformat() + "Z"
    assert [h["as_of"] for h in hist] == sorted(h["as_of"] for h in hist)
    assert after["kr"]["value_id"] == before["kr"]["value_id"] == hist[-1]["value_id"]
    assert after["kr"]["held"] and after["kr"]["held_reason"] == before["kr"]["held_reason"]
    assert diff["to"]["value_id"] == after["kr"]["value_id"]


def test_records_page_through_every_record_of_a_value(web_server: Site) -> None:
    v = latest_value(web_server)
    seen: list[dict[str, Any]] = []
    with client(web_server, "leadership") as c:
        offset = 0
        while True:
            page = c.get(records_url(KR, v["value_id"]), params={"limit": 7, "offset": offset}).json()
            seen += page["records"]
            offset += 7
            if offset >= page["total"]:
                break
    assert page["total"] == v["records"] == len(seen) == len({r["record_id"] for r in seen})
    assert sum(Decimal(r["contribution"]) for r in seen) == Decimal(v["value"])
    contributions = [Decimal(r["contribution"]) for r in seen]
    assert contributions == sorted(contributions, reverse=True)
    assert page["columns"]["orders"][:2] == ["id", "number"]
    assert page["sensitive"] == {"orders": ["salesperson"]}
    assert {r["fields"]["salesperson"] for r in seen} == {"•••"}


def test_sensitive_fields_are_clear_only_for_hr_and_filterable_only_by_it(web_server: Site) -> None:
    v = latest_value(web_server)["value_id"]
    con = sqlite3.connect(web_server.project_dir / "erp.db")
    name, n = con.execute(
        "SELECT salesperson, COUNT(*) FROM orders WHERE state IN ('confirmed','done') AND order_date "
        ">= '2026-10-01' AND order_date <= '2026-11-19' GROUP BY salesperson ORDER BY 2 DESC"
    ).fetchone()
    con.close()
    with client(web_server, "hr") as c:
        page = c.get(records_url(KR, v), params={"where": f"salesperson={name}", "limit": 1000}).json()
        assert page["total"] == len(page["records"]) > 0
        assert {r["fields"]["salesperson"] for r in page["records"]} == {name}
    with client(web_server, "leadership") as c:
        r = c.get(records_url(KR, v), params={"where": f"salesperson={name}"})
        assert r.status_code == 403 and "sensitive" in r.json()["detail"]
        r = c.get(records_url(KR, v), params={"sort": "salesperson"})
        assert r.status_code == 400
    with client(web_server, "admin") as c:  # admins review checks; HR fields stay masked for them
        page = c.get(records_url(KR, v)).json()
        assert {r["fields"]["salesperson"] for r in page["records"]} == {"•••"}
    assert n > 0


def test_sort_filter_and_csv_export(web_server: Site) -> None:
    v = latest_value(web_server)["value_id"]
    with client(web_server, "leadership") as c:
        by_id = c.get(records_url(KR, v), params={"sort": "record", "limit": 1000}).json()["records"]
        ids = [r["record_id"] for r in by_id]
        assert ids == sorted(ids)
        desc = c.get(records_url(KR, v), params={"sort": "order_date", "desc": True, "limit": 1000}).json()
        dates = [r["fields"]["order_date"] for r in desc["records"]]
        assert dates == sorted(dates, reverse=True)
        one = c.get(records_url(KR, v), params={"where": f"id={web_server.xss_order}"}).json()
        assert one["total"] == 1 and one["records"][0]["fields"]["number"] == XSS
        r = c.get(records_url(KR, v), params={"where": "no_such_field=1"})
        assert r.status_code == 400 and "no_such_field" in r.json()["detail"]
        r = c.get(records_url(KR, v), params={"where": "noequals"})
        assert r.status_code == 400
        r = c.get(records_url(KR, v), params={"limit": 5000})
        assert r.status_code == 422
        exported = c.get(records_url(KR, v) + ".csv", params={"sort": "record"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["record_id"] for r in rows] == ids
    assert {r["salesperson"] for r in rows} == {"•••"}


def test_csv_export_quotes_formulas_and_the_json_keeps_them_as_they_are(web_server: Site) -> None:
    """Source text a spreadsheet would run (``=HYPERLINK(…)``, ``@SUM(…)``, ``+``, ``-``, tab, CR) is
    exported with a leading single quote; the JSON page and the numbers are left as they are."""
    v = latest_value(web_server)["value_id"]
    formulas = web_server.formula_orders
    which = [("where", f"id={i}") for i in formulas]
    with client(web_server, "leadership") as c:
        page = c.get(records_url(KR, v), params=[*which, ("limit", 1000)]).json()
        exported = c.get(records_url(KR, v) + ".csv", params=which)
        everything = c.get(records_url(KR, v) + ".csv", params={"sort": "record"})
    assert {r["record_id"]: r["fields"]["number"] for r in page["records"]} == formulas
    rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert {r["record_id"]: r["number"] for r in rows} == {i: "'" + f for i, f in formulas.items()}
    for r in csv.DictReader(io.StringIO(everything.text, newline="")):
        assert not r["number"].startswith(("=", "+", "-", "@", "\t", "\r")), r
        assert Decimal(r["contribution"]) == Decimal(r["untaxed_amount"])  # numbers stay numbers


def test_a_repeated_where_keeps_either_value_in_pages_and_csv(web_server: Site) -> None:
    v = latest_value(web_server)["value_id"]
    both = [("where", "region=EMEA"), ("where", "region=APAC")]
    with client(web_server, "leadership") as c:
        one = {region: c.get(records_url(KR, v), params={"where": f"region={region}", "limit": 1000}).json()
               for region in ("EMEA", "APAC")}
        page = c.get(records_url(KR, v), params=[*both, ("limit", 1000)]).json()
        exported = c.get(records_url(KR, v) + ".csv", params=both)
        everything = c.get(records_url(KR, v) + ".csv")
        total = c.get(records_url(KR, v), params={"limit": 1}).json()["total"]
    ids = {r["record_id"] for part in one.values() for r in part["records"]}
    assert page["total"] == one["EMEA"]["total"] + one["APAC"]["total"] == len(ids) > 0
    assert {r["record_id"] for r in page["records"]} == ids
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert {r["record_id"] for r in csv.DictReader(io.StringIO(exported.text))} == ids
    assert len(list(csv.DictReader(io.StringIO(everything.text)))) == total > 50  # every record


def test_a_value_of_another_kr_is_not_reachable_through_this_kr(web_server: Site) -> None:
    other = latest_value(web_server, "KR-LATE")["value_id"]
    with client(web_server, "leadership") as c:
        r = c.get(records_url(KR, other))
        assert r.status_code == 404
        assert c.get(records_url(KR, 10**9)).status_code == 404


def test_diff_names_the_records_that_moved(web_server: Site) -> None:
    with client(web_server, "leadership") as c:
        hist = c.get(f"/api/krs/{KR}").json()["history"]
        d = c.get(f"/api/krs/{KR}/diff").json()
        explicit = c.get(
            f"/api/krs/{KR}/diff", params={"from_value": hist[0]["value_id"], "to_value": hist[1]["value_id"]}
        ).json()
    assert d["to"]["value_id"] == hist[-1]["value_id"]
    assert Decimal(d["delta"]) == Decimal(d["to"]["value"]) - Decimal(d["from"]["value"]) != 0
    assert sum(Decimal(ch["delta"]) for ch in d["changes"]) == Decimal(d["delta"])
    assert explicit["from"]["value_id"] == hist[0]["value_id"] and explicit["total_changes"] > 0
    changed = {ch["record_id"] for ch in explicit["changes"] if ch["kind"] == "changed"}
    assert set(web_server.edited[0]) <= changed  # the orders edited between the two runs


def test_a_diff_reason_never_carries_a_sealed_value_and_hr_reads_it_in_clear(web_server: Site) -> None:
    """An order changed hands between the first two runs: its salesperson (sensitive) is in the diff's
    fields and reason as ••• for leadership and admin (never the sealed text, which would link one
    person's records), and in clear for hr."""
    order, before, after = web_server.handed_over
    with client(web_server, "viewer") as c:
        hist = c.get(f"/api/krs/{KR}").json()["history"]
    params = {"from_value": hist[0]["value_id"], "to_value": hist[1]["value_id"], "limit": 1000}
    for role, shown in (("leadership", ("•••", "•••")), ("admin", ("•••", "•••")), ("hr", (before, after))):
        with client(web_server, role) as c:
            r = c.get(f"/api/krs/{KR}/diff", params=params)
        assert r.status_code == 200, r.text
        assert "pii:" not in r.text, role
        if shown != (before, after):
            assert before not in r.text and after not in r.text, role
        change = next(ch for ch in r.json()["changes"] if ch["record_id"] == order)
        assert change["fields"]["salesperson"] == list(shown)
        assert f"salesperson {shown[0]} → {shown[1]}" in change["reason"], (role, change["reason"])
        assert "untaxed_amount" in change["reason"]  # other fields in clear for everyone


# ---- the check review -------------------------------------------------------------------------
def test_admin_sees_failed_checks_offending_rows_and_held_krs(web_server: Site) -> None:
    with client(web_server, "admin") as c:
        listed = c.get("/api/checks", params={"failed": True}).json()
        detail = c.get(f"/api/checks/{web_server.blocked_check}").json()
    assert web_server.blocked_check in [x["id"] for x in listed["checks"]]
    assert all(x["status"] != "passed" for x in listed["checks"])
    assert KR in {h["kr_id"] for h in listed["held"]}
    assert detail["status"] == "blocked" and detail["unexpected_count"] == 3
    assert len(detail["sample"]) == 3
    assert {s["fields"]["salesperson"] for s in detail["sample"]} == {"•••"}
    assert all(Decimal(str(s["fields"]["untaxed_amount"])) < 0 for s in detail["sample"])


def test_accept_from_the_api_releases_the_held_krs(web_server_rw: Site) -> None:
    check = web_server_rw.blocked_check
    with client(web_server_rw, "admin") as c:
        assert c.post(f"/api/checks/{check}/accept", json={"reason": "  "}).status_code == 422
        r = c.post(f"/api/checks/{check}/accept", json={"reason": "refunds booked as negative orders"})
        assert r.status_code == 200, r.text
        done = r.json()
        assert check in done["check_ids"] and done["rows_committed"] >= 3 and KR in done["values"]
        again = c.post(f"/api/checks/{check}/accept", json={"reason": "twice"})
        assert again.status_code == 409 and "not blocked" in again.json()["detail"]
        detail = c.get(f"/api/checks/{check}").json()
        kr = c.get(f"/api/krs/{KR}").json()
    assert detail["status"] == "accepted" and detail["resolved_by"] == "ada"
    assert detail["audit"][0]["actor"] == "ada" and "refunds" in detail["audit"][0]["reason"]
    assert not kr["kr"]["held"]
    assert kr["decisions"][-1]["check_id"] == check


@pytest.mark.prefect
def test_rerun_from_the_api_runs_the_flow_and_reports_the_job(web_server_rw: Site) -> None:
    check = web_server_rw.blocked_check
    with client(web_server_rw, "admin") as c:
        r = c.post(f"/api/checks/{check}/rerun")
        assert r.status_code == 202, r.text
        job = r.json()
        assert c.post(f"/api/checks/{check}/rerun").status_code == 409  # one run at a time
        deadline = time.monotonic() + 240
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            job = c.get(f"/api/jobs/{job['id']}").json()
        checks = c.get("/api/checks").json()["checks"]
    assert job["status"] == "partial", job  # the ERP is still broken: blocked again
    assert job["summary"]["streams"]["orders"]["ok"] is False
    assert {x["id"]: x["status"] for x in checks}[check] == "superseded"


# ---- users ------------------------------------------------------------------------------------
def test_admin_manages_users(web_server_rw: Site) -> None:
    with client(web_server_rw, "admin") as c:
        person = {"name": "new.person", "role": "leadership", "password": "long-enough-pw"}
        r = c.post("/api/users", json=person)
        assert r.status_code == 201 and r.json()["role"] == "leadership"
        assert (
            c.post(
                "/api/users", json={"name": "new.person", "role": "viewer", "password": "long-enough-pw"}
            ).status_code
            == 409
        )
        assert (
            c.post("/api/users", json={"name": "x", "role": "boss", "password": "long-enough-pw"}).status_code
            == 400
        )
        short = {"name": "y", "role": "viewer", "password": "short"}
        assert c.post("/api/users", json=short).status_code == 422
        assert c.delete("/api/users/ada").status_code == 400  # not yourself
        with httpx.Client(base_url=web_server_rw.url) as n:
            assert (
                n.post(
                    "/api/session", json={"username": "new.person", "password": "long-enough-pw"}
                ).status_code
                == 200
            )
            assert n.get("/api/me").json()["can"] == {
                "records": True, "sensitive": False, "admin": False, "bind": False
            }
            assert c.delete("/api/users/new.person").status_code == 204
            assert n.get("/api/me").status_code == 401  # their session ended with them
        names = [u["name"] for u in c.get("/api/users").json()["users"]]
    assert "new.person" not in names and {"ada", "lea"} <= set(names)
    assert password("admin") not in str(names)


def test_each_value_links_to_its_flow_run_in_the_prefect_ui(
    web_server: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = web_server.app.state.web
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert w.flow_run_url("abc") is None  # an ephemeral API has no UI to link to
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api/")
    assert w.flow_run_url("abc") == "http://127.0.0.1:4200/runs/flow-run/abc"
    monkeypatch.setenv("PREFECT_UI_URL", "https://prefect.example.com/")
    with client(web_server, "viewer") as c:
        hist = c.get(f"/api/krs/{KR}").json()["history"]
    assert all(h["flow_run_id"] for h in hist)  # every value was made by a real flow run
    assert {h["flow_run_url"] for h in hist} == {
        f"https://prefect.example.com/runs/flow-run/{h['flow_run_id']}" for h in hist
    }
