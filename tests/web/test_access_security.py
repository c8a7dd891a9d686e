"""Who may change access, and the trail it leaves (issue #13): role grants, the audit of access
changes, API token lifetimes, the sign-in throttle per name and address, the access log and the
rate limit on drill-down and export. Over HTTP on loopback against the demo store; expected values
come from the store's own rows."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.web.conftest import Site
from tests.web.test_api import KR, client, latest_value, records_url

OWNER, OWNER_PW = "olga", "olga-secret-pw-1"


def _add_owner(site: Site) -> None:
    """An owner (admin and sensitive), added with the store's credentials as the CLI would."""
    from okr_store import users as stored
    from okrsync import users

    with site.app.state.web.store.engine.begin() as conn:
        stored.add_user(conn, OWNER, "owner", users.hash_password(OWNER_PW), users.utcnow())


@contextmanager
def _owner(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=60) as c:
        r = c.post("/api/session", json={"username": OWNER, "password": OWNER_PW})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield c


def _events(site: Site) -> list[dict[str, Any]]:
    with client(site, "admin") as c:
        r = c.get("/api/audit", params={"access": True, "limit": 1000})
        assert r.status_code == 200, r.text
        return list(r.json()["events"])


def _bearer(site: Site, role: str, **body: Any) -> tuple[dict[str, Any], httpx.Client]:
    with client(site, role) as c:
        issued = c.post("/api/tokens", json={"label": "script", **body}).json()
    return issued, httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {issued['token']}"})


# ---- 3. role grants ---------------------------------------------------------------------------
def test_an_admin_cannot_grant_hr_nor_take_over_an_hr_user(web_server_rw: Site) -> None:
    site = web_server_rw
    hr_name = site.users["hr"][0]
    with client(site, "admin") as c:
        r = c.post("/api/users", json={"name": "mallory", "role": "hr", "password": "long-enough-pw"})
        assert r.status_code == 403 and "may not grant the role 'hr'" in r.json()["detail"]
        r = c.post("/api/users", json={"name": "mallory", "role": "owner", "password": "long-enough-pw"})
        assert r.status_code == 403
        lea = site.users["leadership"][0]
        assert c.put(f"/api/users/{lea}/role", json={"role": "hr"}).status_code == 403
        r = c.put(f"/api/users/{hr_name}/role", json={"role": "viewer"})
        assert r.status_code == 403 and "their role (hr)" in r.json()["detail"]
        assert c.delete(f"/api/users/{hr_name}").status_code == 403
        # what admin covers stays theirs to grant
        r = c.post("/api/users", json={"name": "vic", "role": "viewer", "password": "long-enough-pw"})
        assert r.status_code == 201
        assert c.put("/api/users/vic/role", json={"role": "leadership"}).json()["role"] == "leadership"
        assert c.put("/api/users/nobody/role", json={"role": "viewer"}).status_code == 404
        assert c.put("/api/users/vic/role", json={"role": "boss"}).status_code == 400
    _add_owner(site)
    with _owner(site) as o:
        r = o.post("/api/users", json={"name": "hanna", "role": "hr", "password": "long-enough-pw"})
        assert r.status_code == 201 and r.json()["role"] == "hr"
        assert o.put(f"/api/users/{hr_name}/role", json={"role": "leadership"}).status_code == 200
    with client(site, "admin") as c:
        roles = {u["name"]: u["role"] for u in c.get("/api/users").json()["users"]}
    assert roles["hanna"] == "hr" and roles[hr_name] == "leadership" and "mallory" not in roles
    grants = [
        (e["actor"], e["action"], e["target"]) for e in _events(site) if e["action"].startswith("user.")
    ]
    assert (OWNER, "user.add", "hanna") in grants and (OWNER, "user.role", hr_name) in grants
    assert ("ada", "user.role", "vic") in grants and not any(t == "mallory" for _, _, t in grants)


# ---- 4. audit of access changes ----------------------------------------------------------------
def test_access_changes_and_sign_ins_are_audited_with_actor_target_and_address(web_server_rw: Site) -> None:
    site = web_server_rw
    lea, lea_pw = site.users["leadership"]
    with httpx.Client(base_url=site.url) as anon:
        assert (
            anon.post("/api/session", json={"username": lea, "password": "wrong-password"}).status_code == 401
        )
        typed = "my-password-typed-as-a-name"
        assert anon.post("/api/session", json={"username": typed, "password": "x"}).status_code == 401
    with client(site, "leadership") as c:
        issued = c.post("/api/tokens", json={"label": "weekly"}).json()
        assert c.delete(f"/api/tokens/{issued['id']}").status_code == 204
    with client(site, "admin") as c:
        assert (
            c.post(
                "/api/users", json={"name": "nina", "role": "viewer", "password": "nina-long-pw"}
            ).status_code
            == 201
        )
        assert c.put("/api/users/nina/role", json={"role": "leadership"}).status_code == 200
        assert c.delete("/api/users/nina").status_code == 204
        with client(site, "viewer") as v:
            assert v.get("/api/audit").status_code == 403
    events = _events(site)
    seen = {(e["actor"], e["action"], e["target"]) for e in events}
    assert {
        (lea, "signin.fail", lea),
        ("(unknown user)", "signin.fail", None),
        (lea, "signin.ok", lea),
        (lea, "token.add", lea),
        (lea, "token.revoke", lea),
        ("ada", "user.add", "nina"),
        ("ada", "user.role", "nina"),
        ("ada", "user.remove", "nina"),
    } <= seen
    assert all(e["address"] == "127.0.0.1" and e["at"].endswith("Z") for e in events)
    assert typed not in json.dumps(events) and lea_pw not in json.dumps(events)
    store = site.project_dir / ".okrsync" / "store.db"
    with sqlite3.connect(store) as con:
        assert con.execute("SELECT COUNT(*) FROM audit_event WHERE action LIKE 'signin.%'").fetchone()[0] >= 4
    from okr_store import audit

    with site.app.state.web.store.engine.connect() as conn:
        assert audit.verify_audit_chain(conn) is None


def test_okrsync_audit_lists_access_events_and_verifies_the_chain(web_server_rw: Site) -> None:
    from tests.web.test_cli_users import cli

    site = web_server_rw
    pf = site.project_file
    assert (
        cli(
            pf, "users", "add", "carl", "--role", "viewer", "--password-stdin", stdin="carl-long-pw\n"
        ).returncode
        == 0
    )
    assert cli(pf, "users", "role", "carl", "hr").returncode == 0  # the CLI holds the store's keys
    r = cli(pf, "audit", "--access", "--json", "--verify", "--user", "carl")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["chain"] == {"ok": True, "broken_at": None}
    got = [(e["action"], e["target"], e["actor"].startswith("cli:")) for e in out["events"]]
    assert got == [("user.role", "carl", True), ("user.add", "carl", True)]
    assert "role viewer → hr" in out["events"][0]["reason"]
    table = cli(pf, "audit", "--verify")
    assert table.returncode == 0 and "user.role" in table.stdout and "hash chain holds" in table.stdout
    with sqlite3.connect(site.project_dir / ".okrsync" / "store.db") as con:
        con.execute("UPDATE audit_event SET reason = 'nothing happened' WHERE action = 'user.add'")
    broken = cli(pf, "audit", "--verify")
    assert broken.returncode == 1 and "breaks at event" in broken.stdout


# ---- 5. token hygiene ---------------------------------------------------------------------------
def test_tokens_cannot_make_tokens_expire_by_default_and_end_with_a_password_or_role_change(
    web_server_rw: Site,
) -> None:
    from tests.web.test_cli_users import cli

    site = web_server_rw
    issued, b = _bearer(site, "leadership")
    expires = datetime.fromisoformat(issued["expires_at"].rstrip("Z"))
    assert timedelta(days=89) < expires - datetime.now(UTC).replace(tzinfo=None) <= timedelta(days=90)
    with b:
        r = b.post("/api/tokens", json={"label": "child"})
        assert r.status_code == 403 and "cannot create API tokens" in r.json()["detail"]
        assert b.get("/api/me").status_code == 200
        lea = site.users["leadership"][0]
        r = cli(site.project_file, "users", "passwd", lea, "--password-stdin", stdin="a-new-long-password\n")
        assert r.returncode == 0 and "1 API tokens ended" in r.stdout, r
        assert b.get("/api/me").status_code == 401
    with client(site, "hr") as c:
        assert c.post("/api/tokens", json={"label": "too long", "days": 400}).status_code == 422
    _, b = _bearer(site, "viewer")
    with b, client(site, "admin") as c:
        assert b.get("/api/me").status_code == 200
        assert (
            c.put(f"/api/users/{site.users['viewer'][0]}/role", json={"role": "leadership"}).status_code
            == 200
        )
        assert b.get("/api/me").status_code == 401  # made under the old role: ended with it


# ---- 6. the sign-in throttle --------------------------------------------------------------------
def test_a_stranger_guessing_cannot_lock_the_real_user_out(
    web_server_rw: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site = web_server_rw
    name, pw = site.users["leadership"]
    stranger = {"X-Forwarded-For": "203.0.113.66"}  # as a trusted proxy forwards it (uvicorn)
    with caplog.at_level(logging.INFO, logger="okrsync.web"), httpx.Client(base_url=site.url) as c:
        for _ in range(5):
            r = c.post("/api/session", json={"username": name, "password": "guess-guess"}, headers=stranger)
            assert r.status_code == 401
        r = c.post("/api/session", json={"username": name, "password": pw}, headers=stranger)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        r = c.post("/api/session", json={"username": name, "password": pw})  # the user, from their desk
        assert r.status_code == 200
    throttled = [e for e in _events(site) if e["action"] == "signin.throttled"]
    assert [(e["target"], e["address"]) for e in throttled] == [(name, "203.0.113.66")]
    logged = caplog.text
    assert "sign-in failed user=lea addr=203.0.113.66 throttled" in logged
    assert "sign-in refused (throttled) addr=203.0.113.66" in logged
    assert pw not in logged and "guess-guess" not in logged


# ---- 8. the access log --------------------------------------------------------------------------
def test_the_access_log_has_method_path_status_user_and_duration_but_no_query_or_token(
    web_server: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site = web_server
    v = latest_value(site)["value_id"]
    issued, b = _bearer(site, "hr")
    with caplog.at_level(logging.INFO, logger="okrsync.web"), b:
        r = b.get(records_url(KR, v), params={"where": "salesperson=Secret Person", "limit": 5})
        assert r.status_code == 200
        assert b.get("/api/checks").status_code == 403
        with httpx.Client(base_url=site.url) as anon:
            anon.get("/api/tree", params={"token": "okr_in_a_query"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "okrsync.web.access"]
    drill = next(x for x in lines if x.startswith(f"GET /api/krs/{KR}/values/{v}/records "))
    assert " 200 user=hugo ms=" in drill and drill.endswith("addr=127.0.0.1")
    assert any(x.startswith("GET /api/checks 403 user=hugo ") for x in lines)
    assert any(x.startswith("GET /api/tree 401 user=- ") for x in lines)
    text = caplog.text
    for secret in (issued["token"], "Secret", "salesperson", "where=", "okr_in_a_query"):
        assert secret not in text


# ---- 9. the drill-down and export rate limit ----------------------------------------------------
def test_drill_down_and_export_are_rate_limited_per_user_with_a_clear_429(web_server_rw: Site) -> None:
    from okrsync.throttle import RateLimit

    site = web_server_rw
    web = site.app.state.web
    web.drill_limit, web.export_limit = RateLimit(3, 60), RateLimit(1, 60)
    v = latest_value(site)["value_id"]
    with client(site, "leadership") as c:
        assert [c.get(records_url(KR, v)).status_code for _ in range(2)] == [200, 200]
        assert c.get(f"/api/krs/{KR}/diff").status_code == 200
        r = c.get(records_url(KR, v))
        assert r.status_code == 429 and r.json()["detail"] == "too many drill-down requests from lea"
        assert "try again in" in r.json()["hint"] and int(r.headers["Retry-After"]) > 0
        assert c.get(f"/api/krs/{KR}/diff").status_code == 429
        assert c.get(records_url(KR, v) + ".csv").status_code == 200  # its own limit
        r = c.get(records_url(KR, v) + ".csv")
        assert r.status_code == 429 and "export" in r.json()["detail"]
        assert c.get(f"/api/krs/{KR}").status_code == 200  # values are not limited
    with client(site, "hr") as c:  # per user: others are not held up
        assert c.get(records_url(KR, v)).status_code == 200
