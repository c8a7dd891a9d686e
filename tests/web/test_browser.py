"""The web app in a real browser (Debian's headless chromium, driven by Playwright): the pages as a
user meets them, checked against the JSON API the test reads itself.

Every test also checks that the page asked nothing of any host but the app's own (127.0.0.1) and
that the console shows no error (a Content-Security-Policy violation is one).

``OKRSYNC_UPDATE_SCREENSHOTS=1`` also writes docs/img/web-tree.png and docs/img/web-kr.png.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from okrsync import render

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
KR = "KR-REV"  # a sum over orders, with history, held by the fixture's blocked check
TIMEOUT = 60_000  # ms: a ceiling for a hang, not a wait (a busy 2-core machine took > 15 s to load a page)
POINTS = "Chart.getChart(document.getElementById('history-chart')).getDatasetMeta(0).data.length"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Tab:
    """A browser page on the site that records every request and console error it sees."""

    def __init__(self, browser: Any, site: Any, shots: Path, width: int = 1280, height: int = 800) -> None:
        self.site = site
        self.shots = shots
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.set_default_timeout(TIMEOUT)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.allowed_errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def go(self, path: str) -> Any:
        return self.page.goto(self.site.url + path)

    def login(self, role: str) -> None:
        name, pw = self.site.users[role]
        self.go("/login")
        self.page.fill("#username", name)
        self.page.fill("#password", pw)
        self.page.click("#login-submit")
        self.page.wait_for_url(self.site.url + "/")
        self.page.wait_for_selector('[data-testid="who-name"]')

    def api(self, path: str, **params: Any) -> Any:
        """GET the JSON API with this tab's session cookie."""
        r = self.page.request.get(self.site.url + path, params=params or None)
        assert r.ok, f"{path}: {r.status} {r.text()}"
        return r.json()

    def shot(self, name: str, *, docs: str | None = None, full_page: bool = False) -> None:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        if docs and os.environ.get("OKRSYNC_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMG / docs)

    def close(self) -> None:
        self.context.close()

    def check_clean(self) -> None:
        """Nothing left 127.0.0.1; no console error but the ones the test expected."""
        outside = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]
        assert not outside, f"requests left the app: {outside}"
        unexpected = [e for e in self.errors if not any(a in e for a in self.allowed_errors)]
        assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture
def tabs(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """Open tabs with `tabs(site)`; each is checked for outside requests and console errors."""
    opened: list[Tab] = []

    def open_tab(site: Any, **kw: Any) -> Tab:
        t = Tab(browser, site, tmp_path, **kw)
        opened.append(t)
        return t

    yield open_tab
    try:
        for t in opened:
            t.check_clean()
    finally:
        for t in opened:
            t.close()


def data_of(page: Any, testid: str, key: str) -> list[str]:
    """The `data-<key>` of every element with data-testid=`testid`, in page order."""
    return page.locator(f'[data-testid="{testid}"]').evaluate_all(f"els => els.map(e => e.dataset.{key})")


def record_ids(page: Any) -> list[str]:
    return data_of(page, "record-row", "recordId")


def wait_records(page: Any, expected: list[str], range_text: str | None = None) -> None:
    """Wait until the records table shows exactly `expected` (in order)."""
    page.wait_for_function(
        """([ids, text]) => {
            const rows = [...document.querySelectorAll('[data-testid="record-row"]')]
                .map(r => r.dataset.recordId);
            const range = document.querySelector('[data-testid="records-range"]');
            return JSON.stringify(rows) === JSON.stringify(ids)
                && (!text || (range && range.textContent === text));
        }""",
        arg=[expected, range_text],
    )
    assert record_ids(page) == expected


def ids_of(records: dict[str, Any]) -> list[str]:
    return [r["record_id"] for r in records["records"]]


def point_position(page: Any, index: int) -> dict[str, float]:
    """Where point `index` of the value line is drawn, in CSS pixels of the canvas."""
    return page.evaluate(
        """(i) => {
            const chart = Chart.getChart(document.getElementById('history-chart'));
            const p = chart.getDatasetMeta(0).data[i];
            return {x: p.x, y: p.y};
        }""",
        index,
    )


# ---- leadership: tree → KR → click a point → records → page, sort, filter, CSV → what changed --


def test_leadership_drills_from_the_tree_to_the_records_of_a_clicked_point(
    web_server: Any, tabs: Any
) -> None:
    tab = tabs(web_server)
    page = tab.page
    tab.login("leadership")

    # The tree: every objective, the KRs with links, the header, the objective chart.
    tree = tab.api("/api/tree")

    def count(objs: list[dict[str, Any]]) -> int:
        return sum(1 + count(o["objectives"]) for o in objs)

    page.wait_for_selector('[data-testid="objective"]')
    assert page.locator('[data-testid="objective"]').count() == count(tree["objectives"])
    for o in tree["objectives"]:
        title = page.locator(f'[data-testid="objective"][data-id="{o["id"]}"] .obj-title-text').first
        assert title.inner_text() == o["title"]
    kr_row = page.locator(f'[data-testid="kr"][data-id="{KR}"]')
    assert kr_row.locator('[data-testid="held"]').count() == 1  # the fixture's blocked check holds it
    assert page.locator('[data-testid="who-name"]').inner_text() == web_server.users["leadership"][0]
    assert page.locator('[data-testid="who-role"]').inner_text() == "leadership"
    assert page.locator('[data-testid="nav-checks"]').count() == 0  # not an admin
    bars = page.evaluate("Chart.getChart(document.getElementById('objective-chart')).data.labels.length")
    assert bars == count(tree["objectives"])
    tab.shot("tree", docs="web-tree.png")

    # A KR's page: the chart has one point per value.
    kr_row.locator('[data-testid="kr-link"]').click()
    page.wait_for_url(f"{web_server.url}/kr/{KR}")
    detail = tab.api(f"/api/krs/{KR}")
    history = sorted(detail["history"], key=lambda v: (v["as_of"], v["computed_at"], v["value_id"]))
    assert len(history) >= 3
    page.wait_for_selector('[data-testid="record-row"]')
    assert page.locator('[data-testid="kr-title"]').inner_text() == detail["kr"]["title"]
    assert page.locator('[data-testid="kr-held"]').is_visible()
    # Money at its currency's places, as the CLI shows it (JSON: exact, at least those places)
    unit = detail["kr"]["unit"]
    assert render.currency_places(unit) == 2, unit
    for key, node in (("value", '[data-testid="kr-value"]'), ("target", "#kr-target")):
        assert len(detail["kr"][key].partition(".")[2]) == 2, detail["kr"][key]
        assert page.locator(node).inner_text() == render.fmt_value(Decimal(detail["kr"][key]), unit)
    assert page.evaluate(POINTS) == len(history)
    tab.shot("kr-latest")

    # Click the oldest point: its records, exactly (the API's first page, contribution descending).
    chosen = history[0]
    pos = point_position(page, 0)
    page.locator("#history-chart").click(position=pos)
    page.wait_for_function(
        "id => document.querySelector('[data-testid=selected-summary]').dataset.valueId === id",
        arg=str(chosen["value_id"]),
    )
    base = f"/api/krs/{KR}/values/{chosen['value_id']}/records"
    first = tab.api(base, limit=50)
    assert first["total"] == chosen["records"] > 50
    wait_records(page, ids_of(first), f"showing 1–50 of {first['total']:,}")
    assert parse_qs(urlsplit(page.url).query)["value"] == [str(chosen["value_id"])]
    # The history table marks the same value.
    row = page.locator(f'[data-testid="history-row"][data-value-id="{chosen["value_id"]}"]')
    assert row.locator('[aria-pressed="true"]').count() == 1

    # Page 2.
    page.click('[data-testid="records-next"]')
    second = tab.api(base, limit=50, offset=50)
    wait_records(page, ids_of(second), f"showing 51–{min(100, first['total'])} of {first['total']:,}")
    page.click('[data-testid="records-prev"]')
    wait_records(page, ids_of(first))

    # Sort by record id, ascending then descending; by a field.
    page.click('[data-testid="sort-record"]')
    wait_records(page, ids_of(tab.api(base, limit=50, sort="record", desc="false")))
    page.click('[data-testid="sort-record"]')
    wait_records(page, ids_of(tab.api(base, limit=50, sort="record", desc="true")))
    assert page.locator('th[aria-sort="descending"] [data-testid="sort-record"]').count() == 1
    page.click('[data-testid="sort-order_date"]')
    wait_records(page, ids_of(tab.api(base, limit=50, sort="order_date", desc="false")))

    # Filter: record id contains, and field = value.
    page.fill('[data-testid="filter-record-id"]', "5")
    page.select_option('[data-testid="filter-field"]', "region")
    page.fill('[data-testid="filter-value"]', "APAC")
    page.click('[data-testid="filter-apply"]')
    filtered = tab.api(f"{base}?sort=order_date&desc=false&record_id=5&where=region%3DAPAC&limit=50")
    assert 0 < filtered["total"] < first["total"]
    wait_records(page, ids_of(filtered), f"showing 1–{min(50, filtered['total'])} of {filtered['total']:,}")
    assert all("5" in i for i in record_ids(page))
    regions = page.evaluate(
        """() => {
            const col = [...document.querySelectorAll('#records-table thead th')]
                .findIndex(th => th.textContent.startsWith('region'));
            return [...document.querySelectorAll('[data-testid=record-row]')]
                .map(r => r.children[col].textContent);
        }"""
    )
    assert set(regions) == {"APAC"}
    assert page.locator('[data-testid="filter-chip"]').count() == 2

    # The CSV export: the same selection, all of it.
    href = page.locator('[data-testid="export-csv"]').get_attribute("href")
    assert href and href.startswith(base + ".csv?")
    q = parse_qs(urlsplit(href).query)
    assert q["where"] == ["region=APAC"] and q["record_id"] == ["5"] and q["sort"] == ["order_date"]
    r = page.request.get(web_server.url + href)
    assert r.ok and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text())))
    assert len(rows) == filtered["total"]
    id_col = next(c for c in rows[0] if c in ("record_id", "record"))
    everything = tab.api(f"{base}?sort=order_date&desc=false&record_id=5&where=region%3DAPAC&limit=1000")
    assert [row[id_col] for row in rows] == ids_of(everything)

    # What changed: the oldest value has nothing before it.
    assert page.locator('[data-testid="diff-first"]').is_visible()

    # Select the latest value in the history table: it is compared with the most recent earlier
    # value that differs, as the API's own default.
    page.click('[data-testid="filter-clear"]')
    latest = history[-1]
    latest_row = page.locator(f'[data-testid="history-row"][data-value-id="{latest["value_id"]}"]')
    latest_row.locator('[data-testid="select-value"]').click()
    default_diff = tab.api(f"/api/krs/{KR}/diff", limit=200)
    assert default_diff["to"]["value_id"] == latest["value_id"]
    page.wait_for_selector('[data-testid="change-row"]')
    assert page.locator('[data-testid="diff-from"]').input_value() == str(default_diff["from"]["value_id"])
    assert data_of(page, "change-row", "recordId") == [c["record_id"] for c in default_diff["changes"]]
    assert default_diff["total_changes"] > 0
    kinds = page.locator('[data-testid="diff-summary"] tbody tr').count()
    assert kinds == len(default_diff["summary"])
    assert page.locator('[data-testid="diff-delta"]').inner_text().strip("+−± ") != ""

    # Compare with another earlier value.
    other = next(v for v in reversed(history[:-1]) if v["value_id"] != default_diff["from"]["value_id"])
    page.select_option('[data-testid="diff-from"]', str(other["value_id"]))
    other_diff = tab.api(
        f"/api/krs/{KR}/diff", from_value=other["value_id"], to_value=latest["value_id"], limit=200
    )
    page.wait_for_function(
        """([n, id]) => document.querySelectorAll('[data-testid=change-row]').length === n
            && document.querySelector('[data-testid=diff-head]').textContent.startsWith('#' + id + ' ')""",
        arg=[len(other_diff["changes"]), other["value_id"]],
    )

    # The page for the README: the chart and the records of the selected value.
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.evaluate("document.getElementById('history-details').open = false")
    page.locator("#history-section").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    page.click('[data-testid="sort-contribution"]')
    page.mouse.move(0, 0)
    wait_records(page, ids_of(tab.api(f"/api/krs/{KR}/values/{latest['value_id']}/records", limit=50)))
    tab.shot("kr", docs="web-kr.png")


# ---- untrusted data is text ------------------------------------------------------------------


def test_markup_in_a_record_is_shown_as_text(web_server: Any, tabs: Any) -> None:
    from tests.web.conftest import XSS

    tab = tabs(web_server)
    page = tab.page
    tab.login("hr")
    tab.go(f"/kr/{KR}")
    page.wait_for_selector('[data-testid="record-row"]')
    page.fill('[data-testid="filter-record-id"]', web_server.xss_order)
    page.click('[data-testid="filter-apply"]')
    row = page.locator(f'[data-testid="record-row"][data-record-id="{web_server.xss_order}"]')
    row.wait_for()
    assert XSS in row.inner_text()
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.__xss") is None
    tab.shot("xss-record")


def test_a_formula_in_a_record_is_text_on_the_page_and_quoted_in_the_exported_csv(
    web_server: Any, tabs: Any
) -> None:
    """The page shows the source's text as it is; the CSV its Export link downloads starts such text
    with a single quote, so a spreadsheet opens it as text instead of running it."""
    tab = tabs(web_server)
    page = tab.page
    tab.login("leadership")
    tab.go(f"/kr/{KR}")
    page.wait_for_selector('[data-testid="record-row"]')
    (order, formula), *_ = web_server.formula_orders.items()
    assert formula.startswith("=HYPERLINK(")
    page.fill('[data-testid="filter-record-id"]', order)
    page.click('[data-testid="filter-apply"]')
    row = page.locator(f'[data-testid="record-row"][data-record-id="{order}"]')
    row.wait_for()
    assert formula in row.inner_text()
    assert row.locator("a[href^='http://evil']").count() == 0
    href = page.locator('[data-testid="export-csv"]').get_attribute("href")
    assert href and "record_id=" in href
    r = page.request.get(web_server.url + href)
    assert r.ok and r.headers["content-type"].startswith("text/csv")
    rows = {x["record_id"]: x for x in csv.DictReader(io.StringIO(r.text(), newline=""))}
    assert rows[order]["number"] == "'" + formula


def test_what_changed_shows_a_sensitive_field_as_dots_and_hr_the_names(web_server: Any, tabs: Any) -> None:
    """The order that changed hands between the first two values: its "why" reads ••• → ••• for
    leadership, with no sealed text anywhere on the page, and the names for hr."""
    order, before, after = web_server.handed_over
    for role, shown in (("leadership", ("•••", "•••")), ("hr", (before, after))):
        tab = tabs(web_server)
        page = tab.page
        tab.login(role)
        history = tab.api(f"/api/krs/{KR}")["history"]
        tab.go(f"/kr/{KR}?value={history[1]['value_id']}")
        row = page.locator(f'[data-testid="change-row"][data-record-id="{order}"]')
        row.wait_for()
        assert page.locator('[data-testid="diff-from"]').input_value() == str(history[0]["value_id"])
        assert f"salesperson {shown[0]} → {shown[1]}" in row.inner_text()
        text = page.locator("body").inner_text()
        assert "pii:" not in text
        if role != "hr":
            assert before not in text and after not in text
        tab.shot(f"diff-sensitive-{role}")


# ---- small groups: a value over few people is withheld ----------------------------------------


def test_a_small_group_reads_suppressed_for_leadership_and_its_value_for_hr(
    hr_server: Any, tabs: Any
) -> None:
    """Finance's headcount (2 people) on the tree and on its page: "suppressed (n < 5)" for leadership,
    with no point on the chart and no progress; 2 for hr. The company's headcount (8) shows for both."""
    for role, shown in (("leadership", "suppressed (n < 5)"), ("hr", "2")):
        tab = tabs(hr_server)
        page = tab.page
        tab.login(role)
        page.wait_for_selector('[data-testid="kr"][data-id="KR-FIN-HEADCOUNT"]')
        row = page.locator('[data-testid="kr"][data-id="KR-FIN-HEADCOUNT"]')
        assert row.locator('[data-testid="kr-value"]').inner_text() == shown
        company = page.locator('[data-testid="kr"][data-id="KR-HEADCOUNT"] [data-testid="kr-value"]')
        assert company.inner_text() == "8"
        leavers = page.locator('[data-testid="kr"][data-id="KR-LEAVERS"] [data-testid="kr-value"]')
        assert leavers.inner_text() == ("1" if role == "hr" else shown)
        status = row.locator('[data-testid="kr-status"]')
        assert (status.get_attribute("data-status") == "suppressed") == (role != "hr")
        keep = page.locator('[data-testid="objective"][data-id="O-KEEP"] [data-testid="objective-progress"]')
        assert (keep.first.inner_text() == "—") == (role != "hr")  # no roll-up from a withheld value
        tab.shot(f"small-group-tree-{role}")

        tab.go("/kr/KR-FIN-HEADCOUNT")
        page.wait_for_selector('[data-testid="history-row"]')
        assert page.locator('[data-testid="kr-value"]').inner_text() == shown
        assert page.locator('[data-testid="history-value"]').all_inner_texts() == [shown]
        points = page.evaluate(POINTS.replace(".getDatasetMeta(0).data.length", ".data.datasets[0].data"))
        assert points == ([2] if role == "hr" else [None])
        assert ("Records behind " + shown) in page.locator("#selected-title").inner_text()
        page.wait_for_selector('[data-testid="record-row"]')  # the drill follows the role rules
        tab.shot(f"small-group-kr-{role}")


# ---- a viewer sees values, not the records behind them ---------------------------------------


def test_viewer_sees_the_chart_but_not_the_records(web_server: Any, tabs: Any) -> None:
    tab = tabs(web_server)
    page = tab.page
    tab.login("viewer")
    assert page.locator('[data-testid="nav-checks"]').count() == 0
    tab.go(f"/kr/{KR}")
    denied = page.locator('[data-testid="records-denied"]')
    denied.wait_for()
    assert "viewer" in denied.inner_text()
    history = tab.api(f"/api/krs/{KR}")["history"]
    assert page.evaluate(POINTS) == len(history)
    # Clicking a point selects it, and still asks for no records.
    page.locator("#history-chart").click(position=point_position(page, 0))
    page.wait_for_function("() => document.querySelector('[data-testid=selected-summary]').dataset.valueId")
    assert page.locator('[data-testid="records-table"]').count() == 0
    assert page.locator("#diff-section").is_hidden()
    assert not [u for u in tab.requests if "/api/" in u and ("/records" in u or u.endswith("/diff"))]
    tab.shot("viewer-kr")

    # The server says no, too.
    value_id = history[-1]["value_id"]
    for path in (f"/api/krs/{KR}/values/{value_id}/records", f"/api/krs/{KR}/values/{value_id}/records.csv",
                 f"/api/krs/{KR}/diff"):
        assert page.request.get(web_server.url + path).status == 403
    assert page.request.get(web_server.url + "/admin/checks").status == 403


# ---- sign-in -----------------------------------------------------------------------------------


def test_sign_in_returns_to_the_page_asked_for_and_sign_out_ends_the_session(
    web_server: Any, tabs: Any
) -> None:
    tab = tabs(web_server)
    page = tab.page
    tab.go("/kr/KR-LATE")
    page.wait_for_url(re.compile(r"/login\?next="))
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/kr/KR-LATE"]

    tab.allowed_errors.append("401")  # the failed sign-in below, as the browser logs it
    name, pw = web_server.users["leadership"]
    page.fill("#username", name)
    page.fill("#password", "not the password")
    page.click("#login-submit")
    page.locator("#login-status").filter(has_text="Wrong user name or password").wait_for()

    page.fill("#password", pw)
    page.click("#login-submit")
    page.wait_for_url(f"{web_server.url}/kr/KR-LATE")
    page.wait_for_selector('[data-testid="record-row"]')

    # The session ends under the page: its next API call (a value's records) leads to the login,
    # which then returns to that very value.
    tab.context.clear_cookies()
    oldest = page.locator('[data-testid="history-row"]').last
    value_id = oldest.get_attribute("data-value-id")
    oldest.locator('[data-testid="select-value"]').click()
    page.wait_for_url(re.compile(r"/login\?next="))
    assert parse_qs(urlsplit(page.url).query)["next"] == [f"/kr/KR-LATE?value={value_id}"]
    page.fill("#username", name)
    page.fill("#password", pw)
    page.click("#login-submit")
    page.wait_for_url(f"{web_server.url}/kr/KR-LATE?value={value_id}")
    page.wait_for_function(
        "id => document.querySelector('[data-testid=selected-summary]').dataset.valueId === id", arg=value_id
    )

    page.click('[data-testid="sign-out"]')
    page.wait_for_url(re.compile(r"/login$"))
    assert page.request.get(web_server.url + "/api/me").status == 401

    # A `next` to another site is not followed.
    tab.go("/login?next=//example.com/x")
    page.fill("#username", name)
    page.fill("#password", pw)
    page.click("#login-submit")
    page.wait_for_url(web_server.url + "/")


# ---- admin: review a blocked check --------------------------------------------------------------


def test_admin_accepts_a_blocked_check_and_the_held_kr_moves(web_server_rw: Any, tabs: Any) -> None:
    site = web_server_rw
    tab = tabs(site)
    page = tab.page
    tab.login("admin")
    page.click('[data-testid="nav-checks"]')
    page.wait_for_url(site.url + "/admin/checks")

    listed = tab.api("/api/checks", failed="true")
    page.wait_for_selector('[data-testid="check-row"]')
    assert page.locator('[data-testid="check-row"]').count() == len(listed["checks"])
    held_before = {h["kr_id"] for h in listed["held"]}
    assert KR in held_before
    assert set(data_of(page, "held-row", "krId")) == held_before

    check = site.blocked_check
    page.click(f'[data-testid="check-row"][data-check-id="{check}"] [data-testid="open-check"]')
    detail = tab.api(f"/api/checks/{check}")
    page.wait_for_selector('[data-testid="sample-row"]')
    sample = data_of(page, "sample-row", "recordId")
    assert sample == [s["record_id"] for s in detail["sample"]] and sample
    assert page.locator('[data-testid="detail-status"]').inner_text() == "blocked"
    links = page.locator('[data-testid="detail-held"] a').evaluate_all("els => els.map(a => a.pathname)")
    assert links == [f"/kr/{k}" for k in detail["held_krs"]]
    tab.shot("check-blocked", full_page=True)

    # Accept needs a reason: an empty one is not sent.
    page.click('[data-testid="accept-open"]')
    page.click('[data-testid="accept-submit"]')
    assert page.locator('[data-testid="accept-result"]').count() == 0
    assert not [u for u in tab.requests if u.endswith("/accept")]

    reason = "refunds, confirmed by finance"
    page.fill('[data-testid="accept-reason"]', reason)
    page.click('[data-testid="accept-submit"]')
    page.locator('[data-testid="accept-result"]').wait_for(timeout=60_000)
    page.locator('[data-testid="detail-status"]').filter(has_text="accepted").wait_for()
    recomputed = page.locator('[data-testid="accept-recomputed"] a').all_inner_texts()
    assert KR in recomputed
    audit = page.locator('[data-testid="audit-row"]').all_inner_texts()
    assert any(reason in a and site.users["admin"][0] in a for a in audit)
    after = tab.api("/api/checks")
    assert KR not in {h["kr_id"] for h in after["held"]}
    assert next(c for c in after["checks"] if c["id"] == check)["status"] == "accepted"
    assert set(data_of(page, "held-row", "krId")) == {h["kr_id"] for h in after["held"]}
    tab.shot("check-accepted", full_page=True)

    # The KR's page: no longer held, with the new value, and the decision.
    tab.go(f"/kr/{KR}")
    page.wait_for_selector('[data-testid="kr-title"]')
    kr = tab.api(f"/api/krs/{KR}")
    assert not kr["kr"]["held"]
    assert page.locator('[data-testid="kr-held"]').count() == 0
    assert page.locator('[data-testid="decisions"]').count() == 1
    page.wait_for_selector('[data-testid="record-row"]')


def test_admin_reruns_a_check_and_follows_the_job(web_server_rw: Any, tabs: Any) -> None:
    site = web_server_rw
    tab = tabs(site)
    page = tab.page
    tab.login("admin")
    tab.go(f"/admin/checks?check={site.blocked_check}")
    page.click('[data-testid="rerun"]')
    job = page.locator('[data-testid="job"]')
    job.wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job]').dataset.status !== 'running'",
        timeout=180_000,
    )
    status = job.get_attribute("data-status")
    assert status in {"succeeded", "partial", "failed"}
    polls = [u for u in tab.requests if "/api/jobs/" in u]
    assert polls, "the page polls the job"
    assert tab.api(urlsplit(polls[-1]).path)["status"] == status
    tab.shot("check-rerun", full_page=True)


# ---- admin: users and tokens ---------------------------------------------------------------------


def test_admin_manages_users_and_own_tokens(web_server_rw: Any, tabs: Any) -> None:
    from tests.web.conftest import XSS

    site = web_server_rw
    tab = tabs(site)
    page = tab.page
    tab.login("admin")
    page.click('[data-testid="nav-users"]')
    page.wait_for_selector('[data-testid="user-row"]')
    names = {u["name"] for u in tab.api("/api/users")["users"]}
    assert set(data_of(page, "user-row", "name")) == names

    page.fill('[data-testid="new-name"]', "nora")
    page.select_option('[data-testid="new-role"]', "leadership")
    page.fill('[data-testid="new-password"]', "short")
    page.click('[data-testid="add-user-submit"]')  # the browser refuses a password under 10 characters
    assert page.locator('[data-testid="user-row"][data-name="nora"]').count() == 0
    page.fill('[data-testid="new-password"]', "nora-long-password")
    page.click('[data-testid="add-user-submit"]')
    page.locator('[data-testid="user-row"][data-name="nora"]').wait_for()
    assert {"name": "nora", "role": "leadership"}.items() <= next(
        u for u in tab.api("/api/users")["users"] if u["name"] == "nora"
    ).items()

    remove = page.locator('[data-testid="user-row"][data-name="nora"] [data-testid="remove-user"]')
    remove.click()  # asks once more
    assert page.locator('[data-testid="user-row"][data-name="nora"]').count() == 1
    remove.click()
    page.locator('[data-testid="user-row"][data-name="nora"]').wait_for(state="detached")
    assert "nora" not in {u["name"] for u in tab.api("/api/users")["users"]}
    me = site.users["admin"][0]
    assert page.locator(f'[data-testid="user-row"][data-name="{me}"] [data-testid=remove-user]').count() == 0

    # A token with markup in its label: shown once, listed as text, works, then revoked.
    page.fill('[data-testid="token-label"]', XSS)
    page.fill('[data-testid="token-days"]', "7")
    page.click('[data-testid="token-submit"]')
    issued = page.locator('[data-testid="issued-token"]')
    issued.wait_for()
    token = issued.input_value()
    assert token.startswith("okr_")
    row = page.locator('[data-testid="token-row"]').filter(has_text=XSS)
    row.wait_for()
    assert page.locator("img[src='x']").count() == 0
    tab.shot("users", full_page=True)
    bearer = {"Authorization": f"Bearer {token}"}
    assert page.request.get(site.url + "/api/me", headers=bearer).json()["name"] == me
    row.locator('[data-testid="revoke-token"]').click()
    row.locator('[data-testid="revoke-token"]').click()
    row.wait_for(state="detached")
    assert page.request.get(site.url + "/api/me", headers=bearer).status == 401


# ---- a narrow window -----------------------------------------------------------------------------


def test_pages_fit_a_narrow_window(web_server: Any, tabs: Any) -> None:
    tab = tabs(web_server, width=390, height=800)
    page = tab.page
    tab.login("admin")
    pages = {"/": "kr", f"/kr/{KR}": "record-row", "/admin/checks": "check-row", "/admin/users": "user-row"}
    for path, ready in pages.items():
        tab.go(path)
        page.wait_for_selector(f'[data-testid="{ready}"]')
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        tab.shot("narrow" + path.replace("/", "-"))
