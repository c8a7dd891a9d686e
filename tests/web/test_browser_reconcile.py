"""The check review shows a reconciliation's finding (issue 17, part 2) in a real browser: both sides'
totals, the totals per currency, the keys only in the CRM, only in the ERP and those whose amounts
differ, each record with a drill-down link; an admin accepts it with a reason and the held KRs move.

The site is the two small systems of tests/okrsync/test_reconcile.py (a CRM and an ERP sharing deal
references), served with tests/web/conftest.py's ``serving`` and driven with test_browser's tabs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.okrsync.test_reconcile import DEALS, MATCHED, ORDERS, setup
from tests.web.conftest import ROLES, USERS, Site, password, serving
from tests.web.test_browser import browser, data_of, tabs  # noqa: F401 (the fixtures)

pytestmark = pytest.mark.browser

UNBOOKED = (7, "OPP-7", "800.00", "USD", 1, "2026-11-18")  # won in the CRM, not booked in the ERP yet
DISCOUNTED = (11, "OPP-2", "2300.00", "EUR", "2026-10-22")  # booked with a discount: 2500 in the CRM
LOST = (17, "OPP-3", "400.00", "USD", "2026-10-25")  # booked, but the CRM says the deal was lost


def _build(d: Path) -> Site:
    from flows.run import LocalSteps, run_project
    from okr_store import checks
    from okr_store import users as stored
    from okr_store.store import Store
    from okrsync import users
    from okrsync.project import load_project
    from tests.okrsync.test_reconcile import AS_OF

    d.mkdir(parents=True)
    orders = [DISCOUNTED if o[0] == 11 else o for o in ORDERS] + [LOST]
    pf = setup(d, MATCHED, [*DEALS, UNBOOKED], orders)
    assert run_project(pf, LocalSteps(), as_of=AS_OF).status == "partial"
    store = Store(load_project(pf).store_url())
    with store.engine.begin() as conn:
        (blocked,) = [r.id for r in checks.list_checks(conn) if r.status == "blocked"]
        for role in ROLES:
            stored.add_user(conn, USERS[role], role, users.hash_password(password(role)), users.utcnow())
    store.close()
    return Site(d, users={r: (USERS[r], password(r)) for r in ROLES}, blocked_check=blocked)


@pytest.fixture
def recon_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)
    template = _build(tmp_path / "template")
    with serving(template, tmp_path / "served") as site:
        yield site


def test_admin_reviews_a_reconciliation_drills_into_a_record_and_accepts_it(
    recon_server: Any, tabs: Any  # noqa: F811
) -> None:
    site = recon_server
    tab = tabs(site)
    page = tab.page
    tab.login("admin")
    check = site.blocked_check
    tab.go(f"/admin/checks?check={check}")
    page.wait_for_selector('[data-testid="recon-detail"]')
    detail = tab.api(f"/api/checks/{check}")["reconciliation"]
    assert page.locator(f'[data-testid="check-row"][data-check-id="{check}"] td').nth(2).inner_text() == \
        "won ↔ booked"
    totals = page.locator('[data-testid="recon-totals"]').inner_text()
    assert "won (stream deals): 5,800" in totals and "booked (stream orders): 5,200.2" in totals
    assert "difference 599.8" in totals
    # Totals per currency: EUR 2500 + 300 vs 2300 + 300.20; USD 1000 + 1200 + 800 vs 1000 + 700 + 500 + 400
    rows = page.locator('[data-testid="recon-dimension-row"]')
    assert data_of(page, "recon-dimension-row", "key") == ["EUR", "USD"]
    assert rows.nth(0).locator("td").all_inner_texts()[:4] == ["EUR", "2,800", "2,600.2", "199.8"]
    assert rows.nth(1).locator("td").all_inner_texts()[:4] == ["USD", "3,000", "2,600", "400"]
    # The exact records on both sides, as the API says, each with a drill-down link.
    assert data_of(page, "recon-unmatched_left", "key") == ["OPP-7"]
    assert [p["key"] for p in detail["unmatched_left"]] == ["OPP-7"]
    assert data_of(page, "recon-unmatched_right", "key") == ["OPP-3"]
    assert data_of(page, "recon-mismatched", "key") == ["OPP-2"]
    mismatch = page.locator('[data-testid="recon-mismatched"] td').all_inner_texts()
    assert mismatch[:3] == ["OPP-2", "2,500", "2,300"]
    drills = page.locator('[data-testid="recon-unmatched_right"] [data-testid="recon-drill-link"]')
    assert drills.evaluate_all("els => els.map(a => a.pathname + a.search)") == ["/kr/KR-BOOKED?record=17"]
    tab.shot("recon-blocked", full_page=True)

    # Accept with a reason: the decision is audited and both held KRs take their new values.
    page.click('[data-testid="accept-open"]')
    page.fill('[data-testid="accept-reason"]', "OPP-7 books Monday; OPP-2 discount approved; OPP-3 re-won")
    page.click('[data-testid="accept-submit"]')
    page.locator('[data-testid="accept-result"]').wait_for(timeout=60_000)
    page.locator('[data-testid="detail-status"]').filter(has_text="accepted").wait_for()
    recomputed = set(page.locator('[data-testid="accept-recomputed"] a').all_inner_texts())
    assert recomputed >= {"KR-WON", "KR-BOOKED"}
    audit = page.locator('[data-testid="audit-row"]').all_inner_texts()
    assert any("OPP-2 discount approved" in a for a in audit)
    after = tab.api("/api/checks")
    assert not {"KR-WON", "KR-BOOKED"} & {h["kr_id"] for h in after["held"]}

    # The drill-down link opens the ERP order behind the unmatched key on the booked KR's page.
    tab.go("/kr/KR-BOOKED?record=17")
    page.wait_for_selector('[data-testid="record-row"]')
    assert page.locator('[data-testid="filter-record-id"]').input_value() == "17"
    assert data_of(page, "record-row", "recordId") == ["17"]
