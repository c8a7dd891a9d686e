"""A demo store with history, a blocked check and one user per role, served by a real uvicorn on
loopback (``web_server``, shared and read-only; ``web_server_rw``, a private copy per test).

The state is built once per test session (per xdist worker) through the real Prefect flow:
four runs over the demo ERP with orders edited between them, the last after three orders were broken,
so the orders check blocks and the revenue KRs are held. One order's number is an XSS payload, a few
others' are spreadsheet formulas (CSV injection).
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.flows.conftest import TODAY, prefect_api  # noqa: F401 (the session's Prefect API)

XSS = '<img src=x onerror="window.__xss=1">'
# Order numbers a spreadsheet would run as formulas if a CSV wrote them as they are (OWASP, CSV injection)
FORMULAS = (
    '=HYPERLINK("http://evil.example/","Click me")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
)
ROLES = ("viewer", "leadership", "hr", "admin")
USERS = {"viewer": "vera", "leadership": "lea", "hr": "hugo", "admin": "ada"}
RUNS = [datetime(2026, 11, 17, 18, 0) + timedelta(days=i) for i in range(4)]


def password(role: str) -> str:
    return f"{USERS[role]}-secret-pw-1"


@dataclass
class Site:
    project_dir: Path
    url: str = ""
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    xss_order: str = ""  # the number (record field) holding the XSS payload: its order id
    formula_orders: dict[str, str] = field(default_factory=dict)  # order id → its number, a formula
    blocked_check: int = 0
    edited: list[list[str]] = field(default_factory=list)  # order ids changed before runs 2, 3
    # (order id, salesperson before, after): the first order edited before run 2 also changed hands
    handed_over: tuple[str, str, str] = ("", "", "")
    app: Any = None

    @property
    def project_file(self) -> Path:
        return self.project_dir / "okrsync.yaml"


def _orders_in_quarter(erp: Path) -> list[int]:
    con = sqlite3.connect(erp)
    ids = [
        r[0]
        for r in con.execute(
            "SELECT id FROM orders WHERE state IN ('confirmed','done') AND order_date >= '2026-10-01' "
            "AND order_date <= '2026-11-16' ORDER BY id"
        )
    ]
    con.close()
    return ids


def _hand_over(erp: Path, order_id: int, *, at: datetime) -> tuple[str, str, str]:
    """Give the order to another salesperson, as an ERP user would (write_date = ``at``)."""
    import sqlalchemy as sa

    from okrsync.demo_erp import orders

    engine = sa.create_engine(f"sqlite:///{erp}", poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            before = conn.execute(sa.select(orders.c.salesperson).where(orders.c.id == order_id)).scalar_one()
            after = conn.execute(
                sa.select(orders.c.salesperson).where(orders.c.salesperson != before).limit(1)
            ).scalar_one()
            change = sa.update(orders).where(orders.c.id == order_id)
            conn.execute(change.values(salesperson=after, write_date=at))
    finally:
        engine.dispose()
    return str(order_id), before, after


def _build(d: Path) -> Site:
    from okr_store import checks
    from okr_store import users as stored
    from okr_store.store import Store
    from okrsync import demo, users
    from okrsync.demo_erp import change_order_amount, inject_bad_rows
    from okrsync.project import load_project
    from tests.flow_runs import run_flow

    demo.build(d, today=TODAY)
    erp = d / "erp.db"
    ids = _orders_in_quarter(erp)
    con = sqlite3.connect(erp)
    con.execute("UPDATE orders SET number = ? WHERE id = ?", (XSS, ids[0]))
    formulas = dict(zip((str(i) for i in ids[-len(FORMULAS):]), FORMULAS, strict=True))
    con.executemany("UPDATE orders SET number = ? WHERE id = ?", [(f, int(i)) for i, f in formulas.items()])
    con.commit()
    con.close()
    pf = str(d / "okrsync.yaml")
    # Edits are stamped after everything already synced (the ERP's newest write), so each
    # incremental sync picks them up; the runs themselves compute as of RUNS.
    edited = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    edits: list[list[str]] = []
    handed_over = ("", "", "")
    for i, at in enumerate(RUNS[:3]):
        if i:
            edits.append([str(x) for x in ids[i * 5 : i * 5 + 3]])
            for k, oid in enumerate(ids[i * 5 : i * 5 + 3]):  # a few orders change between runs
                edited += timedelta(seconds=1)
                change_order_amount(erp, oid, Decimal(1000 + 250 * i + k), at=edited)
        if i == 1:  # one of them also changes hands: a sensitive field in the diff
            handed_over = _hand_over(erp, ids[5], at=edited)
        assert run_flow(pf, at)["status"] == "succeeded"
    inject_bad_rows(erp, at=edited + timedelta(seconds=1))
    assert run_flow(pf, RUNS[3])["status"] == "partial"
    store = Store(load_project(d / "okrsync.yaml").store_url())
    with store.engine.begin() as conn:
        blocked = [r.id for r in checks.list_checks(conn) if r.status == "blocked"]
        for role in ROLES:
            stored.add_user(conn, USERS[role], role, users.hash_password(password(role)), users.utcnow())
    store.close()
    assert blocked, "the fixture needs a blocked check"
    return Site(
        d,
        users={r: (USERS[r], password(r)) for r in ROLES},
        xss_order=str(ids[0]),
        formula_orders=formulas,
        blocked_check=blocked[0],
        edited=edits,
        handed_over=handed_over,
    )


@pytest.fixture(scope="session")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return _build(tmp_path_factory.mktemp("web-template") / "demo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(template: Site, where: Path) -> Iterator[Site]:
    """A copy of ``template`` served by uvicorn on a free loopback port, until the block ends."""
    import uvicorn

    from okr_store.store import Store
    from okrsync.project import load_project
    from okrsync.web.app import create_app

    shutil.copytree(template.project_dir, where)
    project = load_project(where / "okrsync.yaml")
    store = Store(project.store_url())
    site = Site(
        where,
        users=template.users,
        xss_order=template.xss_order,
        formula_orders=template.formula_orders,
        blocked_check=template.blocked_check,
        edited=template.edited,
        handed_over=template.handed_over,
    )
    # The API and browser tests page through whole values as fast as they can: the per-user rate
    # limit is tested on its own (tests/web/test_access_security.py), not met by accident here.
    site.app = create_app(project, store, drill_per_minute=100_000, exports_per_minute=100_000)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180  # only stops a hung start: a busy machine may be slow
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    site.url = f"http://127.0.0.1:{port}"
    try:
        yield site
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


@pytest.fixture(scope="session")
def web_server(web_template: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo store served on loopback; shared by the session: do not change it."""
    with serving(web_template, tmp_path_factory.mktemp("web-shared") / "demo") as site:
        yield site


@pytest.fixture
def web_server_rw(web_template: Site, tmp_path: Path) -> Iterator[Site]:
    """A private copy of the demo store, served on loopback for one test."""
    with serving(web_template, tmp_path / "demo") as site:
        yield site


@pytest.fixture(scope="session")
def hr_template(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The small HR project of tests/web/hr_site.py, run twice, with one user per role."""
    from tests.web import hr_site

    d = tmp_path_factory.mktemp("hr-template") / "hr"
    users = {r: (USERS[r], password(r)) for r in ROLES}
    # In a thread of its own: a browser test may have started Playwright's event loop in this one,
    # and Prefect would then hand back coroutines instead of results.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(hr_site.build, d, users).result()
    return Site(d, users=users)


@pytest.fixture(scope="session")
def hr_server(hr_template: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The small HR project served on loopback; shared by the session: do not change it."""
    with serving(hr_template, tmp_path_factory.mktemp("hr-shared") / "hr") as site:
        yield site
