"""Data-quality gates end to end over the demo ERP: block, warn, accept (audited), rerun after a fix,
freshness, volume change and KR jumps. Expected values come from SQL on the ERP itself."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.review import accept
from okr_store import checks, queries
from okr_store.store import Store
from okrsync.demo import inject_bad_rows
from okrsync.demo_erp import change_order_amount
from okrsync.errors import LeaseBusy
from okrsync.project import load_project
from tests.flow_runs import run_flow

AS_OF = datetime(2026, 11, 20, 18, 0)


def run(d: Path) -> dict:
    return run_flow(d / "okrsync.yaml", AS_OF)


def store_of(d: Path) -> Store:
    return Store(load_project(d / "okrsync.yaml").store_url())


def kr(store: Store, kr_id: str) -> queries.KrStatus:
    with store.engine.connect() as conn:
        found = [k for o in _all(queries.status_tree(conn)) for k in o.key_results if k.id == kr_id]
    return found[0]


def _all(objs: list[queries.ObjectiveStatus]) -> list[queries.ObjectiveStatus]:
    return [x for o in objs for x in [o, *_all(o.objectives)]]


def erp_revenue(d: Path) -> Decimal:
    con = sqlite3.connect(d / "erp.db")
    rows = con.execute(
        "SELECT untaxed_amount FROM orders WHERE state IN ('confirmed','done') "
        "AND order_date >= '2026-10-01' AND order_date <= '2026-11-20'"
    ).fetchall()
    con.close()
    return sum((Decimal(str(r[0])).quantize(Decimal("0.01")) for r in rows), Decimal(0))


def edit_project(d: Path, old: str, new: str) -> None:
    p = d / "okrsync.yaml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def blocked(store: Store) -> list[checks.CheckRow]:
    with store.engine.connect() as conn:
        return [r for r in checks.list_checks(conn) if r.status == "blocked"]


def test_bad_rows_block_the_stream_and_accept_lets_them_through_once(demo_dir: Path) -> None:
    assert run(demo_dir)["status"] == "succeeded"
    store = store_of(demo_dir)
    good = kr(store, "KR-REV").value
    bad_ids = inject_bad_rows(demo_dir)
    summary = run(demo_dir)
    assert summary["status"] == "partial" and not summary["streams"]["orders"]["ok"]
    held = kr(store, "KR-REV")
    assert held.held_reason and "blocked" in held.held_reason
    assert held.value is not None and good is not None and held.value.id == good.id  # last good value stays
    (check,) = blocked(store)
    assert check.label == "expect_column_values_to_be_between(untaxed_amount)"
    assert check.unexpected_count == 3
    assert sorted(int(s["record_id"]) for s in check.sample) == sorted(bad_ids)
    assert all(s["fields"]["salesperson"] == "•••" for s in check.sample)  # sensitive: masked
    assert "KR-REV" in check.held_krs and "KR-LATE" not in check.held_krs
    assert kr(store, "KR-LATE").held_reason is None  # shipments are unaffected

    done = accept(
        load_project(demo_dir / "okrsync.yaml"),
        store,
        check.id,
        reason="refunds, confirmed by finance",
        actor="alice",
    )
    assert done.rows_committed == 3 and check.id in done.check_ids
    after = kr(store, "KR-REV")
    assert (
        after.held_reason is None and after.value is not None and after.value.value == erp_revenue(demo_dir)
    )
    with store.engine.connect() as conn:
        assert checks.get_check(conn, check.id).status == "accepted"
        (event,) = checks.audit_log(conn, check_id=check.id)
        assert (event.actor, event.action, event.reason) == (
            "alice",
            "accept",
            "refunds, confirmed by finance",
        )
        assert checks.verify_audit_chain(conn) is None
        (decision,) = checks.decisions_for_kr(conn, "KR-REV")  # visible in the KR's history
        assert (decision["actor"], decision["check_id"]) == ("alice", check.id)
    assert run(demo_dir)["streams"]["orders"]["rows_read"] == 0  # accepted once, and synced past it


def test_rerun_after_the_source_is_fixed_supersedes_the_block(demo_dir: Path) -> None:
    run(demo_dir)
    store = store_of(demo_dir)
    bad_ids = inject_bad_rows(demo_dir)
    run(demo_dir)
    (check,) = blocked(store)
    for oid in bad_ids:
        change_order_amount(demo_dir / "erp.db", oid, Decimal("240.00"), at=datetime(2100, 1, 1))
    assert run(demo_dir)["status"] == "succeeded"
    with store.engine.connect() as conn:
        assert checks.get_check(conn, check.id).status == "superseded"
    assert kr(store, "KR-REV").value.value == erp_revenue(demo_dir)  # type: ignore[union-attr]


def test_a_warning_lets_the_data_through(demo_dir: Path) -> None:
    edit_project(
        demo_dir,
        "      - expect_column_values_to_be_between: {column: untaxed_amount, min_value: 0}\n",
        "      - expect_column_values_to_be_between: {column: untaxed_amount, min_value: 0}\n"
        "        severity: warn\n",
    )
    run(demo_dir)
    inject_bad_rows(demo_dir)
    assert run(demo_dir)["status"] == "succeeded"
    store = store_of(demo_dir)
    with store.engine.connect() as conn:
        warned = [
            r for r in checks.list_checks(conn) if r.status == "warned" and r.kind.startswith("expect_")
        ]
    assert [w.unexpected_count for w in warned] == [3]
    assert kr(store, "KR-REV").value.value == erp_revenue(demo_dir)  # type: ignore[union-attr]


def test_stale_data_fails_freshness(demo_dir: Path) -> None:
    edit_project(
        demo_dir,
        "      - freshness: {max_age_hours: 72}     # newest change no older than 3 days\n"
        "        severity: warn\n",
        "      - freshness: {max_age_hours: 1}\n",
    )
    # the demo ERP's newest change is from 2026-11-20; the run's clock is today's
    summary = run(demo_dir)
    assert not summary["streams"]["orders"]["ok"]
    (check,) = blocked(store_of(demo_dir))
    assert check.kind == "freshness" and "h old" in (check.observed or "")


def test_a_mass_deletion_fails_the_volume_check(demo_dir: Path) -> None:
    run(demo_dir)
    con = sqlite3.connect(demo_dir / "erp.db")
    with con:
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute("DELETE FROM orders WHERE id % 3 != 0")  # two thirds of the orders vanish
    con.close()
    store = store_of(demo_dir)
    live_before = _live(store)
    assert not run(demo_dir)["streams"]["orders"]["ok"]
    (check,) = blocked(store)
    assert check.kind == "volume_change" and "%" in (check.observed or "")
    assert _live(store) == live_before  # nothing was applied


def _live(store: Store) -> int:
    tables = store.streams.tables("orders")
    assert tables is not None
    rec = tables.records
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(rec.c._to.is_(None))).scalar_one())


def test_a_kr_jump_is_held_until_acknowledged(demo_dir: Path) -> None:
    run(demo_dir)
    store = store_of(demo_dir)
    before = kr(store, "KR-AOV").value
    assert before is not None and before.value is not None
    with store.engine.connect() as conn:
        top = queries.value_at(conn, "KR-REV")
    from okr_store import lineage

    order = lineage.drill(store, top, limit=1).records[0]
    change_order_amount(
        demo_dir / "erp.db", int(order.record_id), Decimal("9000000.00"), at=datetime(2100, 1, 1)
    )
    summary = run(demo_dir)
    assert "KR-AOV" in summary["held"] and "KR-REV" in summary["values"]
    held = kr(store, "KR-AOV")
    assert held.value is not None and held.value.id == before.id and held.held_reason
    with store.engine.connect() as conn:
        (check,) = [r for r in checks.list_checks(conn) if r.kr_id == "KR-AOV"]
    assert (
        check.status == "blocked" and check.proposed_value is not None and check.proposed_value > before.value
    )
    accept(load_project(demo_dir / "okrsync.yaml"), store, check.id, reason="a real mega-deal", actor="bob")
    now = kr(store, "KR-AOV")
    assert now.held_reason is None and now.value is not None and now.value.value == check.proposed_value


def test_an_accept_waits_for_the_project_like_a_run(demo_dir: Path) -> None:
    """An admin's accept commits and records like a run: never while another run holds the project."""
    edit_project(demo_dir, "settings:\n", "settings:\n  wait_for_run_seconds: 0\n")
    run(demo_dir)
    inject_bad_rows(demo_dir)
    run(demo_dir)
    store = store_of(demo_dir)
    (check, *_) = blocked(store)
    holder = store.begin_run(AS_OF, None, lease_seconds=600, wait_seconds=0)  # a run is going
    try:
        with pytest.raises(LeaseBusy, match="another run of this project is still going"):
            accept(load_project(demo_dir / "okrsync.yaml"), store, check.id, reason="refunds", actor="ana")
        assert check.id in {c.id for c in blocked(store)}  # nothing was accepted
    finally:
        store.end_run(holder, "succeeded")
    done = accept(load_project(demo_dir / "okrsync.yaml"), store, check.id, reason="refunds", actor="ana")
    assert done.rows_committed > 0
