"""An editor plans a changed metric in Chromium end to end (issue 16, item 4): after the project file's
revenue filter changed, ``/plan`` lists exactly the key results whose values change, each with the
value before and after on the same snapshot and the delta (checked against SQL on the ERP), the
records entering and leaving (sensitive fields masked) and the past values a restatement changes; the
editor applies with a reason and restates history; the audit log shows it; a viewer cannot reach the
page. ``OKRSYNC_UPDATE_SCREENSHOTS=1`` also writes docs/img/web-plan.png."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from okr_store import models as m
from okr_store import queries
from okr_store.store import Store
from okrsync.project import load_project
from tests.okrsync.test_plan import ORDERS, WINDOW, change_revenue_filter, revenue, sql
from tests.web.conftest import Site
from tests.web.plan_site import plan_server, sqlite_built  # noqa: F401 (fixtures)
from tests.web.test_browser import browser, tabs  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
DAY = "2026-11-20"  # the current values' as-of day
OLD, NEW = ("confirmed", "done"), ("confirmed", "shipped")
REGIONS = {"KR-REV": None, "KR-REV-EMEA": "EMEA", "KR-REV-APAC": "APAC"}


def test_an_editor_plans_and_applies_a_changed_metric(plan_server: Site, tabs: Any) -> None:  # noqa: F811
    site = plan_server
    pf = site.project_file
    change_revenue_filter(pf)
    t = tabs(site)
    t.login("editor")
    page = t.page
    page.click('[data-testid="nav-plan"]')
    page.wait_for_url(site.url + "/plan")
    page.wait_for_selector('[data-testid="plan-kr"]')
    shown = t.api("/api/plan")["definitions"]  # KR → the new definition's hash
    store = Store(load_project(pf).store_url())
    with store.engine.connect() as conn:
        registered = dict(conn.execute(sa.select(m.key_result.c.id, m.key_result.c.definition_hash)).all())
    store.close()
    cards = page.locator('[data-testid="plan-kr"]')
    # exactly the KRs reading revenue (the ratio too); booked only got a new description
    krs = cards.evaluate_all("els => els.map(e => e.dataset.kr)")
    assert sorted(krs) == ["KR-AOV", "KR-REV", "KR-REV-APAC", "KR-REV-EMEA"]
    assert page.locator('[data-testid="plan-same"]').evaluate_all("els => els.map(e => e.dataset.kr)") == [
        "KR-BOOKED"]
    for kr, region in REGIONS.items():
        card = page.locator(f'[data-testid="plan-kr"][data-kr="{kr}"]')
        before, after = revenue(pf, OLD, DAY, region), revenue(pf, NEW, DAY, region)
        seen = {x: Decimal(card.locator(f'[data-testid="plan-{x}"]').get_attribute("data-value") or "nan")
                for x in ("before", "after", "delta")}
        assert seen == {"before": before, "after": after, "delta": after - before}, kr
        said = card.locator('[data-testid="plan-delta"]').inner_text()  # "Δ +195.00", "Δ -89.99"
        assert said[:3] == ("Δ -" if after < before else "Δ +") and Decimal(said[3:].replace(",", "")) == abs(
            after - before), said
        parts = card.locator('[data-testid="plan-part"]')
        assert parts.evaluate_all("els => els.map(e => e.dataset.path)") == ["metric.filter"]
        where = f"{WINDOW}" + (" AND region = ?" if region else "")
        args = [DAY] + ([region] if region else [])
        for kind, state in (("entering", "shipped"), ("leaving", "done")):
            found = sql(pf, f"SELECT id FROM orders WHERE state = ? AND {where}", state, *args)
            ids = {str(r[0]) for r in found}
            rows = card.locator(f'[data-testid="plan-record"][data-kind="{kind}"]')
            assert set(rows.evaluate_all("els => els.map(e => e.dataset.record)")) == ids, (kr, kind)
        assert card.locator('[data-testid="plan-record"][data-kind="changed"]').count() == 0
    fields = page.locator('[data-testid="plan-record-fields"]').all_inner_texts()
    assert fields and all("salesperson=•••" in f for f in fields)  # sensitive: masked for an editor
    people = {o[5] for o in ORDERS} | {"Eve"}
    assert not [f for f in fields if any(f"={p}" in f for p in people)]
    emea = page.locator('[data-testid="plan-kr"][data-kr="KR-REV-EMEA"]')
    assert emea.locator('[data-testid="plan-past-summary"]').inner_text().startswith(
        "2 of 2 past values would change")
    first = emea.locator('[data-testid="plan-past"]').first.inner_text()  # as of T1: 200.50 → 320.50
    assert "200.50" in first and "320.50" in first and "+120.00" in first
    t.shot("plan", docs="web-plan.png", full_page=True)

    # five KRs changed definition (KR-BOOKED with the same values), two stored values each
    assert "record 10 past values" in page.locator('[data-testid="restate-label"]').inner_text()
    page.click('[data-testid="apply"]')  # no reason: refused, nothing sent
    assert page.locator("#reason:invalid").count() == 1
    page.fill('[data-testid="reason"]', "count shipped orders, not done ones")
    page.check('[data-testid="restate"]')
    page.click('[data-testid="apply"]')
    page.wait_for_selector('[data-testid="applied"]')
    said = page.locator('[data-testid="applied"]').inner_text()
    assert said.startswith("Applied by eddie: registered the new definitions of KR-AOV, KR-BOOKED, KR-REV, "
                           "KR-REV-APAC, KR-REV-EMEA (audited); 10 past values restated")
    page.wait_for_selector('[data-testid="no-changes"]')
    assert page.locator('[data-testid="apply-form"]').is_hidden()
    store = Store(load_project(pf).store_url())
    with store.engine.connect() as conn:
        hist = queries.history(conn, "KR-REV-EMEA")
    store.close()
    restated = [v for v in hist if v.restated_from is not None]
    assert [v.value for v in restated] == [Decimal("320.50"), revenue(pf, NEW, DAY, "EMEA")]

    admin = tabs(site)
    admin.login("admin")
    admin.go("/admin/audit")
    rows = admin.page.locator('[data-testid="audit-row"][data-action="definition.apply"]')
    rows.first.wait_for()
    texts = rows.all_inner_texts()
    assert len(texts) == 5 and all("eddie" in x and "count shipped orders, not done ones" in x for x in texts)
    targets = rows.locator('[data-testid="audit-target"]').all_inner_texts()
    assert sorted(x.split(": ")[0] for x in targets) == sorted(shown)
    assert all(x == f"{kr}: definition {registered[kr][:12]} → {shown[kr][:12]}"
               for x in targets for kr in [x.split(": ")[0]])

    viewer = tabs(site)
    viewer.login("viewer")
    assert viewer.page.locator('[data-testid="nav-plan"]').count() == 0
    viewer.allowed_errors.append("status of 403")  # the refused page, as the browser reports it
    assert viewer.go("/plan").status == 403
