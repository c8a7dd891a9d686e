"""Closing periods in the API and on the KR page (issue 17, part 1): final, provisional (closes on …)
and restated after close (+1.2 %); restatements with their records for roles that see records;
acknowledging and reopening for admins only (403 for everyone else), audited.

The site: an ERP of Q3 sales and three KRs over it, run in this process as of October 2026 — KR-REV
closes after 10 days and is restated by two late changes, KR-BIG closes and no change touches it,
KR-SLOW's 60 days of grace have not passed. Served with tests/web/conftest.py's ``serving``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.web.conftest import ROLES, USERS, Site, password, serving
from tests.web.test_api import client
from tests.web.test_browser import browser, tabs  # noqa: F401 (the Chromium fixtures)

PROJECT = """\
version: 1
settings: {{default_period: 2026-Q3, timezone: UTC}}
sources:
  erp: {{kind: sql, url: "sqlite:///{erp}", close_after_days: 10}}
streams:
  sales: {{source: erp, table: sale, primary_key: id, cursor: write_date}}
metrics:
  revenue: {{stream: sales, measure: sum, field: amount, time_field: order_date}}
  big: {{stream: sales, measure: sum, field: amount, time_field: order_date,
         filter: {{field: amount, op: ">=", value: 250}}}}
objectives:
  - id: O1
    title: Sell
    key_results:
      - {{id: KR-REV, title: Q3 revenue, metric: revenue, target: 1000}}
      - {{id: KR-BIG, title: Q3 big deals, metric: big, target: 500}}
      - {{id: KR-SLOW, title: Q3 revenue (slow close), metric: revenue, target: 1000, close_after_days: 60}}
"""
RUNS = ("2026-10-05T12:00", "2026-10-11T06:00", "2026-10-15T06:00")


def _build(d: Path) -> Site:
    from flows.run import LocalSteps, run_project
    from okr_store import users as stored
    from okr_store.store import Store
    from okrsync import users
    from okrsync.project import load_project

    d.mkdir(parents=True)
    erp = sa.create_engine(f"sqlite:///{d / 'erp.db'}")
    with erp.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE sale (id INTEGER PRIMARY KEY, amount NUMERIC(12, 2), "
            "order_date TIMESTAMP, write_date TIMESTAMP)"
        )
        conn.exec_driver_sql(
            "INSERT INTO sale VALUES (1, 100.00, '2026-07-03', '2026-07-03'), "
            "(2, 200.00, '2026-08-14', '2026-08-14'), (3, 300.00, '2026-09-29', '2026-09-29')"
        )
    pf = d / "okrsync.yaml"
    pf.write_text(PROJECT.format(erp=d / "erp.db"))
    for i, at in enumerate(RUNS):
        if i == 2:  # after the close: a credit note on sale 2, a September sale booked late
            with erp.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE sale SET amount = 150.00, write_date = '2026-10-14' WHERE id = 2"
                )
                conn.exec_driver_sql(
                    "INSERT INTO sale VALUES (4, 57.00, '2026-09-30', '2026-10-14 00:00:01')"
                )
        assert run_project(pf, LocalSteps(), as_of=datetime.fromisoformat(at)).status == "succeeded"
    erp.dispose()
    store = Store(load_project(pf).store_url())
    with store.engine.begin() as conn:
        for role in ROLES:
            stored.add_user(conn, USERS[role], role, users.hash_password(password(role)), users.utcnow())
    store.close()
    return Site(d, users={r: (USERS[r], password(r)) for r in ROLES})


@pytest.fixture(scope="module")
def closing_template(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: Any) -> Site:
    return _build(tmp_path_factory.mktemp("closing-template") / "site")


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """The site's runs happen in this process, without a Prefect API, on the SQLite store."""
    mp = pytest.MonkeyPatch()
    for var in ("OKRSYNC_STORE_URL", "PREFECT_API_URL", "OKRSYNC_PROJECT"):
        mp.delenv(var, raising=False)
    yield mp
    mp.undo()


@pytest.fixture
def site(closing_template: Site, tmp_path: Path) -> Iterator[Site]:
    with serving(closing_template, tmp_path / "site") as served:
        yield served


def krs(c: Any) -> dict[str, dict[str, Any]]:
    tree = c.get("/api/tree").json()
    return {k["id"]: k for o in tree["objectives"] for k in o["key_results"]}


def test_the_api_shows_final_provisional_and_restated_and_only_admins_decide(site: Site) -> None:
    with client(site, "leadership") as c:
        shown = krs(c)
        assert {k: (v["close"]["state"], v["close"]["label"]) for k, v in shown.items()} == {
            "KR-REV": ("restated", "restated after close (+1.2 %)"),  # 607 against the final 600
            "KR-BIG": ("final", "final"),
            "KR-SLOW": ("provisional", "provisional (closes on 2026-11-30)"),
        }
        rev = shown["KR-REV"]
        assert rev["value"] == "600.00" and rev["close"]["closed"]["value"] == "600.00"
        assert rev["close"]["restatement"]["value"] == "607.00" and rev["close"]["pending_restatements"] == 1
        (line,) = c.get("/api/restatements").json()["restatements"]
        full = c.get(f"/api/restatements/{line['id']}").json()
        assert {(x["record_id"], x["kind"], x["before"], x["after"]) for x in full["changes"]} == {
            ("2", "changed", "200.00", "150.00"),
            ("4", "added", None, "57.00"),
        }
        # leadership may not decide: 403, and nothing changed
        r = c.post(f"/api/restatements/{line['id']}/ack", json={"reason": "looks fine to me"})
        assert r.status_code == 403, r.text
        r = c.post("/api/krs/KR-REV/reopen", json={"reason": "reopen it please"})
        assert r.status_code == 403, r.text
        assert c.get("/api/restatements").json()["restatements"] == [line]
    with client(site, "viewer") as c:  # no records role: no restatement records either
        assert c.get(f"/api/restatements/{line['id']}").status_code == 403
        assert krs(c)["KR-REV"]["close"]["label"] == "restated after close (+1.2 %)"
    with client(site) as c:
        assert c.post("/api/krs/KR-REV/reopen", json={"reason": "anonymous"}).status_code == 401
    with client(site, "admin") as c:
        r = c.post(f"/api/restatements/{line['id']}/ack", json={"reason": "credit note 4711, booked late"})
        assert r.status_code == 200 and r.json()["acknowledged_by"] == USERS["admin"]
        assert c.post(f"/api/restatements/{line['id']}/ack", json={"reason": "twice"}).status_code == 409
        assert c.get("/api/restatements").json()["restatements"] == []
        assert c.post("/api/krs/KR-SLOW/reopen", json={"reason": "not closed"}).status_code == 409
        r = c.post("/api/krs/KR-REV/reopen", json={"reason": "finance reopened Q3"})
        assert r.status_code == 200 and r.json()["reopened_by"] == USERS["admin"]
        assert krs(c)["KR-REV"]["close"]["label"] == "provisional (reopened, closes at the next run)"
        events = c.get("/api/audit").json()["events"]
        assert [(e["action"], e["kr_id"], e["reason"]) for e in events[:2]] == [
            ("period.reopen", "KR-REV", "finance reopened Q3"),
            ("restatement.ack", "KR-REV", "credit note 4711, booked late"),
        ]


@pytest.mark.browser
def test_the_kr_page_shows_the_close_and_an_admin_acknowledges_and_reopens(site: Site, tabs: Any) -> None:  # noqa: F811
    from flows.run import LocalSteps, run_project

    tab = tabs(site)
    page = tab.page
    tab.login("leadership")
    page.wait_for_selector('[data-testid="close-flag"]')
    flags = {
        page.locator('[data-testid="kr"]').nth(i).get_attribute("data-id"): page.locator('[data-testid="kr"]')
        .nth(i)
        .locator('[data-testid="close-flag"]')
        .inner_text()
        for i in range(page.locator('[data-testid="kr"]').count())
    }
    assert flags == {
        "KR-REV": "restated after close (+1.2 %)",
        "KR-BIG": "final",
        "KR-SLOW": "provisional (closes on 2026-11-30)",
    }
    tab.go("/kr/KR-REV")
    state = page.locator('[data-testid="close-state"]')
    state.wait_for()
    assert state.inner_text() == "restated after close (+1.2 %)"
    assert (
        "closed at 600 (final as of 2026-10-11 06:00 UTC"
        in page.locator('[data-testid="close-text"]').inner_text()
    )
    page.wait_for_selector('[data-testid="restatement-record"]')
    rows = page.locator('[data-testid="restatement-record"]')
    assert sorted(rows.nth(i).get_attribute("data-id") for i in range(rows.count())) == ["2", "4"]
    assert page.locator('[data-testid="reopen-form"]').count() == 0  # not an admin
    tab.shot("kr-restated")

    admin = tabs(site)
    admin.login("admin")
    admin.go("/kr/KR-REV")
    p = admin.page
    p.wait_for_selector('[data-testid^="ack-form-"]')
    p.locator('[data-testid$="-reason"]').first.fill("credit note 4711, booked late")
    p.locator('[data-testid^="ack-form-"] button').click()
    p.wait_for_selector('[data-testid^="ack-done-"]', state="attached")
    p.fill('[data-testid="reopen-form-reason"]', "finance reopened Q3")
    p.click('[data-testid="reopen-form-submit"]')
    p.wait_for_selector('[data-testid="close-state"][data-state="provisional"]')
    assert (
        p.locator('[data-testid="close-state"]').inner_text()
        == "provisional (reopened, closes at the next run)"
    )

    # The next run takes the late changes and closes the period again at the new value.
    assert run_project(site.project_file, LocalSteps()).status == "succeeded"
    p.reload()
    p.wait_for_selector('[data-testid="close-state"][data-state="final"]')
    assert p.locator('[data-testid="kr-value"]').inner_text().startswith("607")
    tab.check_clean()
