"""The admin's audit view in a real browser (Debian's chromium through Playwright): the access
changes just made, as the page shows them, against the JSON API read by the test itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.test_browser import browser, data_of, tabs  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_admin_sees_sign_ins_and_user_changes_in_the_audit_view(web_server_rw: Any, tabs: Any) -> None:  # noqa: F811
    from tests.web.conftest import XSS

    site = web_server_rw
    lea = site.users["leadership"][0]
    with httpx.Client(base_url=site.url) as stranger:  # a failed sign-in, forwarded from elsewhere
        r = stranger.post(
            "/api/session",
            json={"username": lea, "password": "a-wrong-guess"},
            headers={"X-Forwarded-For": "198.51.100.23"},
        )
        assert r.status_code == 401
    tab = tabs(site)
    page = tab.page
    tab.login("admin")
    page.click('[data-testid="nav-users"]')
    page.fill('[data-testid="new-name"]', "nora")
    page.select_option('[data-testid="new-role"]', "hr")  # not the admin's to grant
    page.fill('[data-testid="new-password"]', "nora-long-password")
    page.click('[data-testid="add-user-submit"]')
    page.locator("#add-status").filter(has_text="may not grant the role 'hr'").wait_for()
    tab.allowed_errors.append("403")  # the browser logs the refused request
    page.select_option('[data-testid="new-role"]', "viewer")
    page.fill('[data-testid="new-name"]', "nora")
    page.fill('[data-testid="new-password"]', "nora-long-password")
    page.click('[data-testid="add-user-submit"]')
    page.locator('[data-testid="user-row"][data-name="nora"]').wait_for()
    page.fill('[data-testid="token-label"]', XSS)
    page.click('[data-testid="token-submit"]')
    page.locator('[data-testid="issued-token"]').wait_for()

    page.click('[data-testid="nav-audit"]')
    page.wait_for_url(site.url + "/admin/audit")
    page.wait_for_selector('[data-testid="audit-row"]')
    events = tab.api("/api/audit")["events"]
    assert data_of(page, "audit-row", "eventId") == [str(e["id"]) for e in events]
    rows = page.locator('[data-testid="audit-row"]')
    added = rows.filter(has=page.locator('[data-testid="audit-action"]', has_text="user.add"))
    assert added.count() == 1 and "nora" in added.inner_text() and "ada" in added.inner_text()
    failed = rows.filter(has=page.locator('[data-testid="audit-action"]', has_text="signin.fail"))
    assert "198.51.100.23" in failed.first.inner_text() and lea in failed.first.inner_text()
    token = rows.filter(has=page.locator('[data-testid="audit-action"]', has_text="token.add"))
    assert XSS in token.inner_text()  # the label is shown as text, never markup
    assert page.evaluate("window.__xss") is None
    assert "signin.ok" in data_of(page, "audit-row", "action")

    page.check('[data-testid="access-only"]')
    access = tab.api("/api/audit", access="true")["events"]
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=audit-row]').length === n", arg=len(access)
    )
    assert all("." in a for a in data_of(page, "audit-row", "action"))
    tab.shot("audit", full_page=True)

    other = tabs(site)
    other.login("leadership")
    assert other.page.locator('[data-testid="nav-audit"]').count() == 0
    assert other.page.request.get(site.url + "/admin/audit").status == 403
