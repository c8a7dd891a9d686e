"""The plan API behind ``/plan`` (issue 16, item 4), over HTTP on a real uvicorn: roles without
``bind`` get 403; a bad request (no reason, nothing to apply, a plan that is no longer the file's, no
CSRF header, a broken project file) answers 4xx and writes nothing; an apply registers the definitions
with the same audit events as ``okrsync plan --apply``, the caller as actor, and keeps history as it was
computed unless restated."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa

from okr_store import audit, queries
from okr_store import models as m
from okr_store.store import Store
from okrsync.project import load_project
from tests.okrsync.test_plan import change_revenue_filter, revenue
from tests.web.conftest import Site
from tests.web.plan_site import plan_server, sqlite_built  # noqa: F401 (fixtures)
from tests.web.test_api import client

AFFECTED = ["KR-AOV", "KR-REV", "KR-REV-APAC", "KR-REV-EMEA"]
CHANGED = ["KR-AOV", "KR-BOOKED", "KR-REV", "KR-REV-APAC", "KR-REV-EMEA"]
DAY = "2026-11-20"  # the current values' as-of day (T2)


def _state(site: Site) -> tuple[dict[str, Any], int, int]:
    """What an apply writes: the registered definitions, the definition audit events (sign-ins are
    audited too) and the stored values."""
    with site.app.state.web.store.engine.connect() as conn:  # the served store (the file may be broken)
        k = m.key_result.c
        registered = dict(conn.execute(sa.select(k.id, k.definition_hash)).all())
        values = conn.execute(sa.select(sa.func.count()).select_from(m.kr_value)).scalar_one()
        changes = [e for e in audit.audit_log(conn) if e.action.startswith("definition.")]
        return registered, len(changes), values


def test_roles_without_bind_cannot_plan(plan_server: Site) -> None:  # noqa: F811
    change_revenue_filter(plan_server.project_file)
    for role in ("viewer", "leadership"):
        with client(plan_server, role) as c:
            r = c.get("/api/plan")
            assert r.status_code == 403 and "may not bind" in r.json()["detail"], r.text
            r = c.post("/api/plan/apply", json={"reason": "x", "definitions": {}})
            assert r.status_code == 403, r.text
            assert c.get("/plan").status_code == 403
            assert c.get("/api/me").json()["can"]["bind"] is False  # the page links /plan for bind only
    for role in ("editor", "admin"):  # bind: editor, admin (and owner)
        with client(plan_server, role) as c:
            assert c.get("/api/me").json()["can"]["bind"] is True
            assert c.get("/plan").status_code == 200 and c.get("/api/plan").status_code == 200
    with client(plan_server) as c:  # signed out: the page sends to the login, the API answers 401
        assert c.get("/plan").status_code == 303
        assert c.get("/api/plan").status_code == 401


def test_no_change_says_so_and_applies_nothing(plan_server: Site) -> None:  # noqa: F811
    before = _state(plan_server)
    with client(plan_server, "editor") as c:
        body = c.get("/api/plan").json()
        assert body["changes"] is False and body["affected"] == [] and body["same_values"] == []
        assert body["definitions"] == {}
        r = c.post("/api/plan/apply", json={"reason": "nothing", "definitions": {}})
        assert r.status_code == 409 and r.json()["detail"].startswith("nothing to apply"), r.text
    assert _state(plan_server) == before


def test_bad_applies_answer_4xx_and_write_nothing(plan_server: Site) -> None:  # noqa: F811
    site = plan_server
    change_revenue_filter(site.project_file)
    before = _state(site)
    with client(site, "editor") as c:
        plan = c.get("/api/plan").json()
        assert sorted(plan["definitions"]) == CHANGED
        assert plan["restates"] == 2 * len(CHANGED)  # two stored values each, as the CLI restates
        shown = plan["definitions"]
        for body in ({"definitions": shown}, {"reason": "   ", "definitions": shown}):  # no reason
            r = c.post("/api/plan/apply", json=body)
            assert r.status_code == 400 and r.json()["detail"].startswith("a reason is required"), r.text
        r = c.post("/api/plan/apply", json={"reason": "why"})  # no plan named: nothing was reviewed
        assert r.status_code == 422, r.text
        stale = {**shown, "KR-REV": "0" * 64}
        r = c.post("/api/plan/apply", json={"reason": "why", "definitions": stale})
        assert r.status_code == 409 and "changed since this plan" in r.json()["detail"], r.text
        token = c.headers.pop("X-CSRF-Token")  # the session cookie alone does not apply
        r = c.post("/api/plan/apply", json={"reason": "why", "definitions": shown})
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"], r.text
        c.headers["X-CSRF-Token"] = token
        # the file changes again after the plan was shown: what was reviewed is no longer the file
        pf = site.project_file
        pf.write_text(pf.read_text().replace("[confirmed, shipped]", "[shipped]"))
        r = c.post("/api/plan/apply", json={"reason": "why", "definitions": shown})
        assert r.status_code == 409, r.text
        pf.write_text(pf.read_text().replace("measure: sum", "measure: summ"))  # a broken file
        applied = c.post("/api/plan/apply", json={"reason": "why", "definitions": shown})
        for r in (c.get("/api/plan"), applied):
            assert r.status_code == 400 and "summ" in r.json()["detail"], r.text
    assert _state(site) == before


def test_an_editor_applies_as_the_cli_does_history_kept(plan_server: Site) -> None:  # noqa: F811
    site = plan_server
    change_revenue_filter(site.project_file)
    registered, events_before, values_before = _state(site)
    with client(site, "editor") as c:
        plan = c.get("/api/plan", params={"limit": 1}).json()
        assert sorted(k["kr"] for k in plan["affected"]) == AFFECTED
        emea = next(k for k in plan["affected"] if k["kr"] == "KR-REV-EMEA")
        old, new = revenue(site.project_file, ("confirmed", "done"), DAY, "EMEA"), revenue(
            site.project_file, ("confirmed", "shipped"), DAY, "EMEA")
        assert (Decimal(emea["before"]["value"]), Decimal(emea["after"]["value"])) == (old, new)
        assert Decimal(emea["delta"]) == new - old
        assert len(emea["records"]) == 1 and emea["records_moved"] > 1  # capped, with the count
        assert emea["records"][0]["fields"]["salesperson"] == "•••"  # sensitive: masked for an editor
        assert emea["parts"] == [{"path": "metric.filter",
                                  "registered": '{"field":"state","op":"in","value":["confirmed","done"]}',
                                  "new": '{"field":"state","op":"in","value":["confirmed","shipped"]}'}]
        assert emea["restates"] == 2 and [p["changes"] for p in emea["past_values"]] == [True, True]
        body = {"reason": "  count shipped, not done ", "definitions": plan["definitions"]}
        r = c.post("/api/plan/apply", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"applied": CHANGED, "restated": 0, "actor": "eddie"}
        assert c.get("/api/plan").json()["changes"] is False
    store = Store(load_project(site.project_file).store_url())
    with store.engine.connect() as conn:
        events = [e for e in audit.audit_log(conn) if e.action.startswith("definition.")][events_before:]
        assert audit.verify_audit_chain(conn) is None
        hist = queries.history(conn, "KR-REV-EMEA")
        now = dict(conn.execute(sa.select(m.key_result.c.id, m.key_result.c.definition_hash)).all())
    store.close()
    # the CLI's audit events (okr_store.definitions.register): one per KR, the caller as actor
    assert sorted((e.actor, e.action, e.kr_id, e.reason, e.target) for e in events) == [
        ("eddie", "definition.apply", kr, "count shipped, not done",
         f"definition {registered[kr][:12]} → {plan['definitions'][kr][:12]}") for kr in CHANGED
    ]
    assert {kr: now[kr] for kr in CHANGED} == plan["definitions"]
    assert _state(site)[2] == values_before  # no restate: past values keep their definition
    assert all(v.restated_from is None for v in hist) and hist[0].value == Decimal("200.50")


def test_the_plan_route_is_in_the_spec(plan_server: Site) -> None:  # noqa: F811
    spec = httpx.get(plan_server.url + "/api/openapi.json").json()["paths"]
    assert set(spec["/api/plan"]) == {"get"} and set(spec["/api/plan/apply"]) == {"post"}
    assert {"400", "403", "409"} <= set(spec["/api/plan/apply"]["post"]["responses"])
