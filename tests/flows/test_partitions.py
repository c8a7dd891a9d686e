"""A stream read in partitions (key or date ranges) as parallel tasks still commits one atomic
snapshot, with exactly the values of an unpartitioned read (issue #11, acceptance 8)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.run import LocalSteps, run_project
from okr_store import models as m
from okr_store.store import Store
from okrsync.demo_erp import change_order_amount
from okrsync.errors import ConfigError
from okrsync.project import load_project
from tests.flow_runs import run_flow

AS_OF = datetime(2026, 11, 20, 18, 0)
ORDERS = "  orders:\n    source: erp\n"


def _partitioned(d: Path, spec: str) -> Path:
    pf = d / "okrsync.yaml"
    text = pf.read_text()
    assert ORDERS in text
    pf.write_text(text.replace(ORDERS, ORDERS + f"    partitions: {spec}\n", 1))
    return pf


def _values(pf: Path) -> dict[str, tuple[str | None, int]]:
    store = Store(load_project(pf).store_url())
    k, v = m.key_result.c, m.kr_value.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(k.id, v.value, v.records).join(m.kr_value, v.id == k.last_value_id))
        out = {r.id: (r.value, r.records) for r in rows}
    store.close()
    return out


def _syncs(pf: Path) -> list[sa.Row]:
    store = Store(load_project(pf).store_url())
    with store.engine.connect() as conn:
        rows = list(conn.execute(sa.select(m.sync_run).where(m.sync_run.c.stream == "orders")))
    store.close()
    return rows


@pytest.fixture
def pair(demo_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The demo as is, and a copy whose orders are read in four key ranges."""
    copy = tmp_path / "partitioned"
    shutil.copytree(demo_dir, copy)
    return demo_dir / "okrsync.yaml", _partitioned(copy, "{field: id, bounds: [1000, 3000, 5000]}")


def test_partitions_give_the_values_of_one_read_full_and_incremental(pair: tuple[Path, Path]) -> None:
    whole, parts = pair
    for pf in pair:
        assert run_project(pf, LocalSteps(), as_of=AS_OF).status == "succeeded"
    assert _values(parts) == _values(whole)
    (first,) = _syncs(parts)  # four reads, one sync, one commit
    (one,) = _syncs(whole)
    assert first.status == "committed" and first.rows_read == one.rows_read > 5000
    later = datetime(2026, 11, 20, 23, 0)
    for pf in pair:  # an order in the third range changes: only it is read again
        change_order_amount(pf.parent / "erp.db", 4321, Decimal("123456.78"), at=later)
        summary = run_project(pf, LocalSteps(), as_of=AS_OF)
        assert summary.status == "succeeded" and summary.streams["orders"]["updated"] == 1
    assert _values(parts) == _values(whole)


def test_partitions_through_the_prefect_flow(pair: tuple[Path, Path]) -> None:
    whole, parts = pair
    assert run_flow(whole, AS_OF)["status"] == "succeeded"
    summary = run_flow(parts, AS_OF)
    assert summary["status"] == "succeeded"
    assert summary["streams"]["orders"]["rows_read"] == _syncs(whole)[0].rows_read
    assert _values(parts) == _values(whole)


def test_a_failed_partition_commits_nothing_of_the_stream(pair: tuple[Path, Path]) -> None:
    _, pf = pair
    run_project(pf, LocalSteps(), as_of=AS_OF)
    before, syncs = _values(pf), _syncs(pf)
    con = sqlite3.connect(pf.parent / "erp.db")  # a malformed amount in the last range only
    con.execute("UPDATE orders SET untaxed_amount = 'n/a', write_date = '2026-11-20 23:30:00' "
                "WHERE id = 6000")
    con.commit()
    con.close()
    summary = run_project(pf, LocalSteps(), as_of=AS_OF)
    assert summary.status == "partial" and not summary.streams["orders"]["ok"]
    assert "untaxed_amount" in summary.streams["orders"]["error"]
    assert "KR-REV" in summary.held
    assert _values(pf) == before  # the other three ranges read fine, and none of it landed
    failed = [s for s in _syncs(pf) if s.id not in {x.id for x in syncs}]
    assert [s.status for s in failed] == ["failed"]
    store = Store(load_project(pf).store_url())
    tables = store.streams.tables("orders")
    assert tables is not None
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.stage)).scalar() == 0
        assert conn.execute(sa.select(m.stream_state.c.last_sync_id).where(
            m.stream_state.c.name == "orders")).scalar() == syncs[0].id


def test_bad_partitions_are_clear_errors(demo_dir: Path) -> None:
    pf = _partitioned(demo_dir, "{field: id, bounds: [3000, 1000]}")
    with pytest.raises(ConfigError, match=r"okrsync.yaml:\d+.*ascending"):
        load_project(pf)
    pf.write_text(pf.read_text().replace("{field: id, bounds: [3000, 1000]}", "{field: nope, bounds: [1]}"))
    summary = run_project(pf, LocalSteps(), as_of=AS_OF)
    assert "partitions.field 'nope' is not one of the stream's fields" in summary.streams["orders"]["error"]
