"""An editor binds a KR in Chromium end to end (issue 16, acceptance 1): pick a metric, pin the region
from the values that occur, see the value, the records and the back-filled chart, save; the tree shows
it, the audit log holds it, and a viewer cannot reach the page. ``OKRSYNC_UPDATE_SCREENSHOTS=1`` also
writes docs/img/web-bind.png."""

from __future__ import annotations

from typing import Any

import pytest

from okr_store.history import past_points as history_of
from okr_store.store import Store
from okrsync.project import load_project
from tests.web.conftest import Site
from tests.web.test_bindings_api import _editor
from tests.web.test_browser import browser, tabs  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
POINTS = "Chart.getChart(document.getElementById('preview-chart')).getDatasetMeta(0).data.length"


def test_an_editor_binds_a_kr_in_the_browser(web_server_rw: Site, tabs: Any) -> None:  # noqa: F811
    site = web_server_rw
    site.users = dict(site.users)
    _editor(site)
    t = tabs(site)
    t.login("editor")
    page = t.page
    page.click('[data-testid="nav-bind"]')
    page.wait_for_url(site.url + "/bind")
    library = t.api("/api/bindings/library")
    regions = next(m for m in library["metrics"] if m["name"] == "revenue")["dimensions"]["region"]
    page.select_option('[data-testid="metric"]', "revenue")
    shown = page.locator('[data-testid="pin-region"] option').all_inner_texts()
    assert shown == ["(any)", *regions] and "EMEA" in regions  # the values that occur, nothing else
    assert page.locator('[data-testid="pin-salesperson"]').count() == 0  # sensitive: never offered
    page.select_option('[data-testid="pin-region"]', "EMEA")
    page.select_option('[data-testid="objective"]', "O-GROWTH-EMEA")
    page.fill('[data-testid="kr-id"]', "KR-EMEA-OPS")
    page.fill('[data-testid="kr-title"]', "EMEA revenue (ops)")
    page.fill('[data-testid="period"]', "2026-Q4")
    page.fill('[data-testid="target"]', "1400000")
    page.click('[data-testid="preview"]')
    page.wait_for_selector('[data-testid="preview-record"]')
    said = page.locator('[data-testid="preview-value"]').inner_text()
    assert said.startswith("Now: ")
    # the chart draws every back-filled point: one per past run of the store that read the orders
    store = Store(load_project(site.project_file).store_url())
    with store.engine.connect() as conn:
        history = history_of(conn, ["orders"])
    store.close()
    assert len(history) >= 3 and f"history: {len(history)} past runs" in said
    page.wait_for_function(f"{POINTS} === {len(history)}")
    assert page.locator('[data-testid="preview-record"]').count() == 10
    t.shot("bind-preview", docs="web-bind.png", full_page=True)
    page.click('[data-testid="save"]')
    page.wait_for_selector('[data-testid="saved"]')
    page.goto(site.url + "/")
    page.wait_for_selector("text=EMEA revenue (ops)")

    admin = tabs(site)
    admin.login("admin")
    admin.go("/admin/audit")
    admin.page.wait_for_selector('[data-testid="audit-row"][data-action="kr.bind"]')
    row = admin.page.locator('[data-testid="audit-row"][data-action="kr.bind"]').inner_text()
    assert "eddie" in row and "KR-EMEA-OPS" in row

    viewer = tabs(site)
    viewer.login("viewer")
    assert viewer.page.locator('[data-testid="nav-bind"]').count() == 0
    viewer.allowed_errors.append("status of 403")  # the refused page, as the browser reports it
    assert viewer.go("/bind").status == 403
