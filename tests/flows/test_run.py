"""End-to-end runs of the real Prefect flow over the demo ERP: incremental sync, lineage, diff,
idempotence and failure handling. Expected values come from SQL on the ERP itself."""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from okr_store import lineage, queries
from okr_store.store import Store
from okrsync import demo_erp
from okrsync.demo_erp import change_order_amount, delete_order
from okrsync.errors import ConfigError
from okrsync.project import load_project
from tests.flow_runs import run_flow

AS_OF = datetime(2026, 11, 20, 18, 0)  # naive UTC, inside 2026-Q4
LATER = datetime(2026, 11, 20, 21, 0)


def run(d: Path, as_of: datetime = AS_OF) -> dict:
    return run_flow(d / "okrsync.yaml", as_of)


def store_of(d: Path) -> Store:
    return Store(load_project(d / "okrsync.yaml").store_url())


def erp_revenue(d: Path, region: str | None = None, until: str = "2026-11-20") -> Decimal:
    """Booked Q4 revenue up to the day ``until`` straight from the ERP (independent of okrsync)."""
    con = sqlite3.connect(d / "erp.db")
    q = (
        "SELECT untaxed_amount FROM orders WHERE state IN ('confirmed','done') "
        "AND order_date >= '2026-10-01' AND order_date <= ?"
    )
    args: tuple = (until,)
    if region:
        q += " AND region = ?"
        args += (region,)
    rows = con.execute(q, args).fetchall()
    con.close()
    return sum((Decimal(str(r[0])).quantize(Decimal("0.01")) for r in rows), Decimal(0))


def latest(store: Store, kr: str) -> queries.StoredValue:
    with store.engine.connect() as conn:
        return queries.value_at(conn, kr)


def test_values_match_the_erp_and_drill_adds_up(demo_dir: Path) -> None:
    summary = run(demo_dir)
    assert summary["status"] == "succeeded"
    store = store_of(demo_dir)
    v = latest(store, "KR-REV")
    assert v.value == erp_revenue(demo_dir)
    assert latest(store, "KR-REV-EMEA").value == erp_revenue(demo_dir, "EMEA")
    d = lineage.drill(store, v, limit=100_000)
    assert d.total == v.records == len(d.records)
    assert sum(r.contribution for r in d.records) == v.value
    assert {r.fields["state"] for r in d.records} <= {"confirmed", "done"}
    fast = lineage.drill(store, v, limit=10, sums=False)  # the first page without a full scan
    assert fast.total == d.total and fast.contribution_sum is None
    assert [(r.record_id, r.fields) for r in fast.records] == [
        (r.record_id, r.fields) for r in d.records[:10]
    ]


def test_late_rate_is_the_ratio_of_erp_counts(demo_dir: Path) -> None:
    run(demo_dir)
    con = sqlite3.connect(demo_dir / "erp.db")
    late, shipped = con.execute(
        "SELECT SUM(is_late), COUNT(*) FROM shipments WHERE state = 'done' "
        "AND effective_date >= '2026-10-01' AND effective_date <= '2026-11-20'"
    ).fetchone()
    con.close()
    v = latest(store_of(demo_dir), "KR-LATE")
    assert v.value == (Decimal(late) / Decimal(shipped)).quantize(Decimal("1e-12"))
    d = lineage.drill(store_of(demo_dir), v, limit=10)
    assert d.contribution_sum == late and d.denominator_sum == shipped


def test_second_run_pulls_nothing_and_repeats_values(demo_dir: Path) -> None:
    first = run(demo_dir)
    second = run(demo_dir)
    assert all(s["rows_read"] == 0 for s in second["streams"].values())
    assert first["values"] == second["values"]
    store = store_of(demo_dir)
    with store.engine.connect() as conn:
        hist = queries.history(conn, "KR-REV")
    a, b = hist[-2], hist[-1]
    assert (a.value, a.snapshot != b.snapshot or True) and a.value == b.value
    da, db = lineage.drill(store, a, limit=5000), lineage.drill(store, b, limit=5000)
    assert [(r.record_id, r.contribution) for r in da.records] == [
        (r.record_id, r.contribution) for r in db.records
    ]


def test_changed_order_is_the_only_row_pulled_and_diff_explains_it(demo_dir: Path) -> None:
    run(demo_dir)
    store = store_of(demo_dir)
    before = latest(store, "KR-REV")
    top = lineage.drill(store, before, limit=1).records[0]
    order_id = int(top.record_id)
    change_order_amount(demo_dir / "erp.db", order_id, Decimal("120.00"), at=LATER)
    summary = run(demo_dir, LATER)
    assert summary["streams"]["orders"]["rows_read"] == 1
    assert summary["streams"]["orders"]["updated"] == 1
    after = latest(store, "KR-REV")
    assert after.value == erp_revenue(demo_dir)
    df = lineage.diff(store, before, after)
    assert df.total_changes == 1
    (c,) = df.changes
    assert c.kind == "changed" and c.record_id == str(order_id)
    assert c.delta == after.value - before.value  # type: ignore[operator]
    assert "untaxed_amount" in c.reason


def test_deleted_order_leaves_the_value_and_old_lineage_keeps_it(demo_dir: Path) -> None:
    run(demo_dir)
    store = store_of(demo_dir)
    before = latest(store, "KR-REV")
    victim = lineage.drill(store, before, limit=1).records[0]
    delete_order(demo_dir / "erp.db", int(victim.record_id))
    summary = run(demo_dir, LATER)
    assert summary["streams"]["orders"]["deleted"] == 1
    after = latest(store, "KR-REV")
    assert after.value == before.value - victim.contribution  # type: ignore[operator]
    df = lineage.diff(store, before, after)
    assert [(c.kind, c.record_id, c.reason) for c in df.changes] == [
        ("removed", victim.record_id, "deleted in the source")
    ]
    # the old value still drills down to the deleted order, with its old fields
    old = lineage.drill(store, before, limit=100_000)
    assert victim.record_id in {r.record_id for r in old.records}
    assert sum(r.contribution for r in old.records) == before.value


def test_an_order_edited_out_of_a_query_stream_s_where_is_closed_on_the_next_sync(demo_dir: Path) -> None:
    pf = demo_dir / "okrsync.yaml"
    text = pf.read_text()
    assert "    table: orders\n" in text
    pf.write_text(text.replace("    table: orders\n", (  # the filter lives in the user's SQL
        "    query: \"SELECT * FROM orders WHERE state IN ('confirmed', 'done')\"\n"), 1))
    run(demo_dir)
    store = store_of(demo_dir)
    before = latest(store, "KR-REV")
    victim = lineage.drill(store, before, limit=1).records[0]
    engine = sa.create_engine(f"sqlite:///{demo_dir / 'erp.db'}")
    with engine.begin() as conn:
        conn.execute(sa.update(demo_erp.orders).where(demo_erp.orders.c.id == int(victim.record_id))
                     .values(state="cancelled", write_date=LATER))
    engine.dispose()
    summary = run(demo_dir, LATER)
    assert summary["streams"]["orders"]["deleted"] == 1  # no longer returned by the query: closed
    after = latest(store, "KR-REV")
    assert after.value == erp_revenue(demo_dir) == before.value - victim.contribution  # type: ignore[operator]
    assert victim.record_id not in {r.record_id for r in lineage.drill(store, after, limit=100_000).records}


def test_unreachable_source_keeps_last_good_values_and_says_why(demo_dir: Path) -> None:
    run(demo_dir)
    store = store_of(demo_dir)
    good = latest(store, "KR-REV")
    shutil.move(demo_dir / "erp.db", demo_dir / "erp.db.away")
    (demo_dir / "erp.db").mkdir()  # sqlite cannot open a directory: the source is unreachable
    summary = run(demo_dir, LATER)
    assert summary["status"] == "partial"
    assert not summary["streams"]["orders"]["ok"]
    assert "KR-REV" in summary["held"] and "orders" in summary["held"]["KR-REV"]
    assert latest(store, "KR-REV").id == good.id
    with store.engine.connect() as conn:
        roots = queries.status_tree(conn)
        wm = conn.execute(sa.text("SELECT watermark FROM stream_state WHERE name='orders'")).scalar()
    kr = next(k for k in roots[0].key_results if k.id == "KR-REV")
    assert kr.held_reason and kr.value and kr.value.id == good.id
    assert wm is not None
    # the source comes back: the KR updates and the hold clears
    (demo_dir / "erp.db").rmdir()
    shutil.move(demo_dir / "erp.db.away", demo_dir / "erp.db")
    assert run(demo_dir, LATER)["status"] == "succeeded"
    with store.engine.connect() as conn:
        kr = next(k for k in queries.status_tree(conn)[0].key_results if k.id == "KR-REV")
    assert kr.held_reason is None


@pytest.mark.postgres
def test_postgres_store_gives_the_same_values(
    demo_dir: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_values = run(demo_dir)["values"]
    monkeypatch.setenv("OKRSYNC_STORE_URL", pg_url)
    with pytest.raises(ConfigError, match="OKRSYNC_PII_KEY holds no key"):  # a server store needs the key
        run(demo_dir)
    monkeypatch.setenv("OKRSYNC_PII_KEY", base64.b64encode(os.urandom(64)).decode())
    pg = run(demo_dir)
    assert pg["values"] == sqlite_values
    store = Store(pg_url)
    v = latest(store, "KR-REV")
    assert sum(r.contribution for r in lineage.drill(store, v, limit=100_000).records) == v.value


def test_transient_source_errors_are_retried_and_others_are_not(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.sql import SqlConnector
    from okrsync.errors import ConfigError, SourceError

    calls: dict[str, int] = {}
    real_read = SqlConnector.read

    def flaky_read(self: SqlConnector, stream, since):  # type: ignore[no-untyped-def]
        calls[stream.name] = calls.get(stream.name, 0) + 1
        if stream.name == "orders" and calls["orders"] == 1:
            raise SourceError("connection reset by peer", transient=True)
        if stream.name == "shipments":
            raise ConfigError("column 'is_late' was dropped")
        return real_read(self, stream, since)

    monkeypatch.setattr(SqlConnector, "read", flaky_read)
    summary = run(demo_dir)
    assert calls == {"orders": 2, "shipments": 1}  # one retry for the transient error, none for the other
    assert summary["streams"]["orders"]["ok"] and not summary["streams"]["shipments"]["ok"]
    assert summary["status"] == "partial"
    assert set(summary["held"]) == {"KR-LATE", "KR-ONTIME"}
    assert "KR-REV" in summary["values"]


def test_values_stand_when_their_drill_positions_cannot_be_stored(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored first drill positions are a speed-up: failing to write them fails nothing."""
    import flows.compute

    def broken(*_: object) -> None:
        raise sa.exc.OperationalError("INSERT INTO kr_value_top …", {}, Exception("disk full"))

    monkeypatch.setattr(flows.compute, "record_ranks", broken)
    assert run(demo_dir)["status"] == "succeeded"
    store = store_of(demo_dir)
    with store.engine.connect() as conn:
        v = queries.value_at(conn, "KR-REV")
        assert conn.execute(sa.text("SELECT COUNT(*) FROM kr_value_top")).scalar_one() == 0
    d = lineage.drill(store, v, limit=100_000, sums=False)  # the live query answers
    assert v.value == erp_revenue(demo_dir) == sum(r.contribution for r in d.records)
    store.close()


def test_a_backfill_run_keeps_the_current_value_current(demo_dir: Path) -> None:
    run(demo_dir)
    store = store_of(demo_dir)
    now = latest(store, "KR-REV")
    nov1 = datetime(2026, 11, 1, 12, 0)
    back = run(demo_dir, nov1)  # back-fills November 1st from the same records
    assert back["status"] == "succeeded"
    assert Decimal(back["values"]["KR-REV"]) == erp_revenue(demo_dir, until="2026-11-01") < now.value  # type: ignore[operator]
    assert back["previous"].get("KR-REV") is None  # nothing was recorded as of November 1st or before
    assert latest(store, "KR-REV").id == now.id
    with store.engine.connect() as conn:
        hist = queries.history(conn, "KR-REV")
        (kr,) = [k for k in queries.status_tree(conn)[0].key_results if k.id == "KR-REV"]
    assert [v.as_of for v in hist] == [nov1, AS_OF]
    assert back["statuses"]["KR-REV"] == hist[0].status
    assert kr.value is not None and kr.value.id == now.id and kr.held_reason is None
    d = lineage.diff(store, hist[0], hist[1])  # what moved between the two dates: orders since Nov 1st
    assert d.summary["added"][1] == now.value - hist[0].value  # type: ignore[operator]
    store.close()


def test_a_future_as_of_is_refused_before_anything_runs(demo_dir: Path) -> None:
    from flows.run import CLOCK_SKEW, run_as_of

    future = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ConfigError, match="is in the future") as exc:
        run(demo_dir, future)  # a Prefect parameter, as a deployment would pass it
    assert "back-filling history" in (exc.value.hint or "")
    assert not (demo_dir / ".okrsync").exists()  # no store opened, no run recorded
    now = datetime(2026, 12, 7, 4, 0)
    assert run_as_of(now + CLOCK_SKEW, now) == now + CLOCK_SKEW  # clock skew between machines is fine
    with pytest.raises(ConfigError):
        run_as_of(now + CLOCK_SKEW + timedelta(seconds=1), now)
    assert run_as_of(None, now) == now


def test_a_sync_builds_the_index_of_each_drill_order_its_krs_rank_by(demo_dir: Path) -> None:
    """The first sync leaves the stream's records indexed in the order the first drill page of a sum
    over ``untaxed_amount`` needs, before any compute (okr_store/order_index.py); a second sync keeps it."""
    from flows import compute, pipeline
    from okr_store import order_index

    project = load_project(demo_dir / "okrsync.yaml")
    store = Store(project.store_url())
    connector = project.connector("erp")
    try:
        for _ in range(2):
            run_id = store.start_run(AS_OF, None)
            compute.register_okrs(project, store)
            pipeline.sync_stream(project, store, connector, run_id, "orders")
            tables = store.streams.tables("orders")
            assert tables is not None
            name = order_index.index_name(tables.records, "untaxed_amount")
            indexes = sa.inspect(store.engine).get_indexes(tables.records.name)
            found = {i["name"]: i["column_names"] for i in indexes}
            assert found[name] == ["untaxed_amount"]
            assert [n for n in found if str(n).startswith("ix_ord_")] == [name]
    finally:
        connector.close()
        store.close()
