"""The demo ERP: deterministic, exact money, plausible texture, and mutations that do what they say."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okrsync.demo_erp import (
    DEMO_REGIONS,
    SEGMENTS,
    ErpSummary,
    build_erp,
    change_order_amount,
    delete_order,
    inject_bad_rows,
)
from okrsync.errors import NotFound

TODAY = date(2026, 5, 14)  # a Thursday, half-way through 2026-Q2
TABLES = ("customers", "orders", "order_lines", "shipments")
CENT = Decimal("0.01")
Dump = dict[str, dict[int, tuple[Any, ...]]]


def quarter_of(column: str) -> str:
    """SQL for the calendar quarter ('2026-Q2') of a DATE column."""
    return f"strftime('%Y', {column}) || '-Q' || ((CAST(strftime('%m', {column}) AS INTEGER) + 2) / 3)"


def rows(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def scalar(path: Path, sql: str, *args: object) -> Any:
    return rows(path, sql, *args)[0][0]


def dump(path: Path) -> Dump:
    return {t: {r[0]: r for r in rows(path, f"SELECT * FROM {t} ORDER BY id")} for t in TABLES}


def changed(before: Dump, after: Dump) -> dict[str, set[int]]:
    """Ids added, removed or modified, per table."""
    return {
        t: {i for i in before[t].keys() | after[t].keys() if before[t].get(i) != after[t].get(i)}
        for t in TABLES
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ErpSummary]:
    path = tmp_path_factory.mktemp("erp") / "erp.db"
    summary = build_erp(path, today=TODAY)
    return path, summary


@pytest.fixture
def erp(built: tuple[Path, ErpSummary], tmp_path: Path) -> Path:
    """A private copy of the module's ERP, for tests that change it."""
    return Path(shutil.copy(built[0], tmp_path / "erp.db"))


@pytest.fixture
def at(built: tuple[Path, ErpSummary]) -> datetime:
    """A mutation time after everything the build generated."""
    return built[1].as_of + timedelta(hours=1)


@pytest.fixture
def tables(built: tuple[Path, ErpSummary]) -> Iterator[tuple[sa.Connection, dict[str, sa.Table]]]:
    """A connection to the module's ERP and its tables as reflected (what a SQL connector sees)."""
    engine = sa.create_engine(f"sqlite:///{built[0]}")
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        yield conn, dict(meta.tables)
    engine.dispose()


# ------------------------------------------------------------------------------------------- building


def test_same_arguments_give_the_same_content_and_another_seed_does_not(
    built: tuple[Path, ErpSummary], tmp_path: Path
) -> None:
    assert build_erp(tmp_path / "again.db", today=TODAY) == built[1]
    assert dump(tmp_path / "again.db") == dump(built[0])
    assert (tmp_path / "again.db").read_bytes() == built[0].read_bytes()
    build_erp(tmp_path / "other.db", today=TODAY, seed=8)
    assert dump(tmp_path / "other.db")["orders"] != dump(built[0])["orders"]


def test_counts_and_date_range(built: tuple[Path, ErpSummary]) -> None:
    path, s = built
    counts = tuple(scalar(path, f"SELECT COUNT(*) FROM {t}") for t in TABLES)
    assert (s.customers, s.orders, s.lines, s.shipments) == counts
    assert s.customers == 300
    assert 5_000 < s.orders < 8_000 and 2 * s.orders < s.lines < 3 * s.orders
    assert s.first_order_date == date(2025, 4, 1)  # 5 quarters: 2025-Q2 .. 2026-Q2
    assert s.last_order_date == TODAY and scalar(path, "SELECT MAX(order_date) FROM orders") == str(TODAY)
    per_quarter = dict(rows(path, f"SELECT {quarter_of('order_date')}, COUNT(*) FROM orders GROUP BY 1"))
    assert list(per_quarter) == ["2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]
    assert all(n >= 1200 for q, n in per_quarter.items() if q != "2026-Q2")
    assert 400 < per_quarter["2026-Q2"] < 1000  # a month and a half of the current quarter
    assert per_quarter["2025-Q4"] > per_quarter["2025-Q3"]  # seasonality: summer lull, year-end push
    latest = [
        scalar(path, f"SELECT MAX({c}) FROM {t}") for t in TABLES for c in ("create_date", "write_date")
    ]
    assert str(s.as_of) + ".000000" == max(latest)
    assert s.as_of <= datetime(2026, 5, 14, 20, 0)


def test_columns_read_back_with_their_types_through_reflection(
    tables: tuple[sa.Connection, dict[str, sa.Table]],
) -> None:
    conn, t = tables
    order = conn.execute(sa.select(t["orders"]).where(t["orders"].c.id == 1)).one()
    waiting = conn.execute(
        sa.select(t["shipments"]).where(t["shipments"].c.state == "waiting").limit(1)
    ).one()
    assert type(order.order_date) is date and type(order.create_date) is datetime
    assert isinstance(order.total_amount, Decimal) and order.total_amount == order.total_amount.quantize(CENT)
    assert order.number == "SO-2025-00001" and order.currency == "EUR"
    assert type(waiting.planned_date) is date and (waiting.effective_date, waiting.is_late) == (None, None)


def test_totals_are_exact_and_consistent(
    built: tuple[Path, ErpSummary], tables: tuple[sa.Connection, dict[str, sa.Table]]
) -> None:
    path = built[0]
    assert (
        scalar(path, "SELECT COUNT(*) FROM orders WHERE ROUND(untaxed_amount + tax_amount - total_amount, 2)")
        == 0
    )
    assert not scalar(path, "SELECT COUNT(*) FROM orders WHERE id NOT IN (SELECT order_id FROM order_lines)")
    off = """
        SELECT COUNT(*) FROM orders o
        JOIN (SELECT order_id, SUM(amount) AS s FROM order_lines GROUP BY order_id) l ON l.order_id = o.id
        WHERE ROUND(o.untaxed_amount - l.s, 2) != 0"""
    assert scalar(path, off) == 0
    assert {n for (n,) in rows(path, "SELECT COUNT(*) FROM order_lines GROUP BY order_id")} == {1, 2, 3, 4, 5}
    conn, t = tables
    o, ln = t["orders"].c, t["order_lines"].c
    for untaxed, tax, total in conn.execute(sa.select(o.untaxed_amount, o.tax_amount, o.total_amount)):
        assert tax == (untaxed * Decimal("0.2")).quantize(CENT, ROUND_HALF_UP) and untaxed + tax == total
    for qty, price, amount in conn.execute(sa.select(ln.quantity, ln.unit_price, ln.amount)):
        assert amount == (qty * price).quantize(CENT, ROUND_HALF_UP) and amount > 0
    totals = conn.execute(sa.select(o.total_amount)).scalars().all()
    assert sum(1 for c in totals if c % 1) > 0.9 * len(totals)  # amounts with cents


def test_states_regions_and_write_dates_look_like_an_erp(built: tuple[Path, ErpSummary]) -> None:
    path, s = built
    share = {k: n / s.orders for k, n in rows(path, "SELECT state, COUNT(*) FROM orders GROUP BY 1")}
    assert set(share) == {"draft", "confirmed", "done", "cancelled"}
    assert 0.04 < share["cancelled"] < 0.06 and 0.02 < share["draft"] < 0.045
    regions = dict(rows(path, "SELECT region, COUNT(*) FROM orders GROUP BY 1"))
    assert set(regions) == set(DEMO_REGIONS) and min(regions.values()) > 0.15 * s.orders
    mismatch = (
        "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.region != c.region"
    )
    assert scalar(path, mismatch) == 0
    assert {r for (r,) in rows(path, "SELECT DISTINCT segment FROM customers")} == set(SEGMENTS)
    numbers = [
        n for (n,) in rows(path, "SELECT number FROM orders WHERE order_date >= '2026-01-01' ORDER BY id")
    ]
    assert numbers[:2] == ["SO-2026-00001", "SO-2026-00002"] and len(set(numbers)) == len(numbers)
    for table in TABLES:
        never, edited, backwards = rows(
            path,
            f"SELECT SUM(write_date IS NULL), SUM(write_date > create_date), SUM(write_date <= create_date) "
            f"FROM {table}",
        )[0]
        assert never > 0 and edited > 0 and not backwards, table
    assert 20 < scalar(path, "SELECT COUNT(*) FROM orders WHERE write_date IS NULL") < 0.05 * s.orders
    late_customers = """
        SELECT COUNT(*) FROM customers c
        WHERE create_date >= (SELECT MIN(create_date) FROM orders o WHERE o.customer_id = c.id)"""
    assert scalar(path, late_customers) == 0


def test_shipments_follow_their_orders(built: tuple[Path, ErpSummary]) -> None:
    path = built[0]
    join = "FROM shipments s JOIN orders o ON o.id = s.order_id"
    pairs = {p for (p,) in rows(path, f"SELECT DISTINCT o.state || '/' || s.state {join}")}
    assert pairs == {"done/done", "confirmed/waiting", "confirmed/done", "cancelled/cancelled"}
    unshipped = """
        SELECT COUNT(*) FROM orders
        WHERE state IN ('confirmed', 'done') AND id NOT IN (SELECT order_id FROM shipments)"""
    assert scalar(path, unshipped) == 0
    lead = "julianday(s.planned_date) - julianday(o.order_date)"
    assert rows(path, f"SELECT MIN({lead}), MAX({lead}) {join}") == [(2.0, 7.0)]
    inconsistent = """
        SELECT COUNT(*) FROM shipments
        WHERE (state = 'done') != (effective_date IS NOT NULL) OR (state = 'done') != (is_late IS NOT NULL)
           OR is_late != (effective_date > planned_date)"""
    assert scalar(path, inconsistent) == 0
    delay = "julianday(effective_date) - julianday(planned_date)"
    assert rows(path, f"SELECT MIN({delay}), MAX({delay}) FROM shipments WHERE is_late = 1") == [(1.0, 6.0)]
    oldest_waiting = scalar(path, f"SELECT MIN(o.order_date) {join} WHERE s.state = 'waiting'")
    assert str(TODAY - timedelta(days=14)) < oldest_waiting  # only recent orders are still to ship


def test_late_share_is_plausible_and_falls_in_the_current_quarter(built: tuple[Path, ErpSummary]) -> None:
    late = dict(
        rows(
            built[0],
            f"SELECT {quarter_of('o.order_date')}, AVG(s.is_late) FROM shipments s JOIN orders o "
            "ON o.id = s.order_id WHERE s.state = 'done' GROUP BY 1",
        )
    )
    current = late.pop("2026-Q2")
    assert all(0.10 <= v <= 0.16 for v in late.values()), late
    assert 0.06 <= current < min(late.values())
    assert 0.10 <= scalar(built[0], "SELECT AVG(is_late) FROM shipments WHERE state = 'done'") <= 0.14


@pytest.mark.parametrize(("today", "quarters"), [(date(2023, 10, 1), 1), (date(2024, 2, 29), 2)])
def test_edge_days_build(tmp_path: Path, today: date, quarters: int) -> None:
    s = build_erp(tmp_path / "erp.db", today=today, quarters=quarters)  # a Sunday starting a quarter; Feb 29
    assert 0 < s.orders and s.last_order_date <= today
    assert (today - s.first_order_date).days < 92 * quarters


def test_refuses_to_overwrite(built: tuple[Path, ErpSummary], tmp_path: Path) -> None:
    before = built[0].read_bytes()
    with pytest.raises(FileExistsError, match="delete it first"):
        build_erp(built[0], today=TODAY)
    assert built[0].read_bytes() == before
    other = tmp_path / "notes.txt"
    other.write_text("not an ERP")
    with pytest.raises(FileExistsError):
        build_erp(other, today=TODAY)
    assert other.read_text() == "not an ERP"
    with pytest.raises(ValueError):
        build_erp(tmp_path / "none.db", today=TODAY, quarters=0)
    assert not (tmp_path / "none.db").exists()


# ------------------------------------------------------------------------------------------ mutations


def test_change_order_amount_rewrites_the_order_and_its_lines(erp: Path, at: datetime) -> None:
    order_id = scalar(erp, "SELECT order_id FROM order_lines GROUP BY order_id HAVING COUNT(*) = 3 LIMIT 1")
    line_ids = {i for (i,) in rows(erp, "SELECT id FROM order_lines WHERE order_id = ?", order_id)}
    header = "SELECT untaxed_amount, tax_amount, total_amount, write_date FROM orders WHERE id = ?"
    line_sum = "SELECT ROUND(SUM(amount), 2) FROM order_lines WHERE order_id = ?"
    before = dump(erp)
    change_order_amount(erp, order_id, Decimal("1234.57"), at=at)
    after = dump(erp)
    diff = changed(before, after)
    assert diff["orders"] == {order_id} and diff["order_lines"] and diff["order_lines"] <= line_ids
    assert not diff["customers"] and not diff["shipments"]
    untaxed, tax, total, write = rows(erp, header, order_id)[0]
    assert (untaxed, tax, total) == (1028.81, 205.76, 1234.57)  # 20 % of 1028.81 is 205.762
    assert write == str(at) + ".000000" and scalar(erp, line_sum, order_id) == untaxed
    assert before["orders"][order_id][:8] == after["orders"][order_id][:8]  # number, customer, state, date...
    for i in diff["order_lines"]:  # quantities stay, unit prices follow the amounts, write_date moves
        (*_, qty, price, amount, _, line_write), old = after["order_lines"][i], before["order_lines"][i]
        assert qty == old[4] and abs(qty * price - amount) <= qty * 0.005 + 1e-9 and line_write == write

    # no untaxed amount plus its 20 % makes 100.05 (83.37 -> 100.04, 83.38 -> 100.06): tax is a cent off
    change_order_amount(erp, order_id, Decimal("100.05"), at=at + timedelta(minutes=1))
    assert rows(erp, header, order_id)[0][:3] == (83.38, 16.67, 100.05)
    assert scalar(erp, line_sum, order_id) == 83.38


def test_change_order_amount_rejects_bad_input(erp: Path, at: datetime, tmp_path: Path) -> None:
    before = dump(erp)
    with pytest.raises(NotFound):
        change_order_amount(erp, 10**9, Decimal("10.00"), at=at)
    with pytest.raises(ValueError, match="naive"):
        change_order_amount(erp, 1, Decimal("10.00"), at=at.astimezone())
    with pytest.raises(ValueError, match="NUMERIC"):
        change_order_amount(erp, 1, Decimal("10.001"), at=at)
    with pytest.raises(ValueError, match="before order 1 was created"):
        change_order_amount(erp, 1, Decimal("10.00"), at=datetime(2020, 1, 1))
    assert dump(erp) == before
    with pytest.raises(FileNotFoundError):
        change_order_amount(tmp_path / "missing.db", 1, Decimal("10.00"), at=at)
    assert not (tmp_path / "missing.db").exists()


def test_delete_order_removes_the_order_its_lines_and_shipments(erp: Path) -> None:
    order_id = scalar(erp, "SELECT order_id FROM shipments WHERE state = 'done' LIMIT 1")
    before = dump(erp)
    delete_order(erp, order_id)
    diff = changed(before, dump(erp))
    assert diff["orders"] == {order_id} and not diff["customers"]
    assert diff["order_lines"] == {i for i, r in before["order_lines"].items() if r[1] == order_id}
    assert diff["shipments"] == {i for i, r in before["shipments"].items() if r[1] == order_id} != set()
    assert not any(i in dump(erp)[t] for t in TABLES[1:] for i in diff[t])
    with pytest.raises(NotFound):
        delete_order(erp, order_id)


def test_inject_bad_rows_negates_three_current_orders(erp: Path, at: datetime) -> None:
    before = dump(erp)
    ids = inject_bad_rows(erp, at=at)
    diff = changed(before, dump(erp))
    assert len(ids) == 3 and ids == sorted(ids)
    assert diff == {"customers": set(), "orders": set(ids), "order_lines": set(), "shipments": set()}
    sql = "SELECT state, order_date, untaxed_amount, tax_amount, total_amount, write_date FROM orders"
    for order_id in ids:
        state, day, untaxed, tax, total, write = rows(erp, sql + " WHERE id = ?", order_id)[0]
        old = before["orders"][order_id]
        assert state in ("confirmed", "done") and day >= "2026-04-01"
        assert (untaxed, tax, total) == (-old[8], -old[9], -old[10]) and total < 0
        assert round(untaxed + tax, 2) == total and write == str(at) + ".000000"
    assert set(inject_bad_rows(erp, at=at)).isdisjoint(ids)  # the broken ones no longer qualify


def test_built_at_a_moment_of_today_nothing_is_dated_after_it(tmp_path: Path) -> None:
    """The demo builds at 09:00 with today's orders: no stamp later than 09:00 (issue #12: stamps up to
    20:00 put the watermark in the future and the next edit was never read)."""
    until = datetime.combine(TODAY, datetime.min.time()) + timedelta(hours=9)
    path = tmp_path / "erp.db"
    summary = build_erp(path, today=TODAY, until=until)
    for table in ("customers", "orders", "order_lines", "shipments"):
        newest = scalar(path, f"SELECT max(max(create_date), max(write_date)) FROM {table}")
        assert datetime.fromisoformat(newest) <= until, table
    assert summary.as_of == until  # today's later activity is stamped with the build moment
