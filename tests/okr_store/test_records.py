"""Record versioning: what a sync commits, what stays invisible, and what a past snapshot shows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from okr_store.records import RID
from okr_store.store import Store
from okrsync.errors import StoreError
from okrsync.schema import Field, FieldType, StreamSchema
from tests.store_templates import store_at_revision

SCHEMA = StreamSchema(
    (
        Field("id", FieldType.INTEGER),
        Field("amount", FieldType.DECIMAL, 2),
        Field("region", FieldType.STRING),
        Field("updated_at", FieldType.DATETIME),
    )
)


def frame(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(
        [
            {"id": i, "amount": Decimal(a), "region": r, "updated_at": datetime(2026, 10, 1)}
            for i, a, r in rows
        ]
    )
    return df.assign(**{RID: df["id"].astype(str)})


def sync(
    store: Store, rows: list[tuple[int, str, str]], *, keys: list[int] | None = None
) -> tuple[int, object]:
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=keys is not None)
    if rows:
        w.stage(frame(rows))
    if keys is not None:
        w.stage_keys(pd.Series([str(k) for k in keys]))
    return w.sync_id, w.commit('{"cursor": null, "key": []}')


def visible_rows(store: Store, sync_id: int | None) -> dict[str, Decimal]:
    found = store.view("orders", sync_id)
    assert found is not None
    with store.engine.connect() as conn:
        return {r[RID]: r["amount"] for r in conn.execute(sa.select(found[0])).mappings()}


def test_versions_and_snapshots(store: Store) -> None:
    s1, c1 = sync(store, [(1, "10.50", "EMEA"), (2, "20.25", "APAC")], keys=[1, 2])
    assert (c1.inserted, c1.updated, c1.deleted) == (2, 0, 0)  # type: ignore[attr-defined]
    s2, c2 = sync(store, [(2, "21.00", "APAC"), (3, "0.01", "EMEA")], keys=[2, 3])
    assert (c2.inserted, c2.updated, c2.deleted) == (1, 1, 1)  # type: ignore[attr-defined]
    s3, c3 = sync(store, [(3, "0.01", "EMEA")], keys=[2, 3])  # unchanged row re-read: no new version
    assert (c3.inserted, c3.updated, c3.deleted) == (0, 0, 0)  # type: ignore[attr-defined]
    assert visible_rows(store, s1) == {"1": Decimal("10.50"), "2": Decimal("20.25")}
    assert visible_rows(store, s2) == {"2": Decimal("21.00"), "3": Decimal("0.01")}
    assert visible_rows(store, s3) == visible_rows(store, s2)
    assert visible_rows(store, None) == {}


def test_failed_sync_changes_nothing(store: Store) -> None:
    s1, _ = sync(store, [(1, "10.50", "EMEA")], keys=[1])
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=True)
    w.stage(frame([(1, "99.99", "EMEA"), (5, "1.00", "EMEA")]))
    w.fail("source went away")
    assert store.snapshot(["orders"]) == {"orders": s1}
    assert visible_rows(store, s1) == {"1": Decimal("10.50")}
    assert store.watermark("orders") == '{"cursor": null, "key": []}'
    # and the staged rows of the failed sync never surface in a later sync
    s3, c3 = sync(store, [], keys=[1])
    assert visible_rows(store, s3) == {"1": Decimal("10.50")}


def test_lease_blocks_a_concurrent_sync_of_the_same_stream(store: Store) -> None:
    store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    with pytest.raises(StoreError, match="is being synced"):
        store.begin_sync("run2", "orders", "erp", ("id",), SCHEMA, reconcile=False)


def test_new_source_field_adds_a_column_and_keeps_history(store: Store) -> None:
    s1, _ = sync(store, [(1, "10.50", "EMEA")])
    wider = StreamSchema(SCHEMA.fields + (Field("channel", FieldType.STRING),))
    w = store.begin_sync("run", "orders", "erp", ("id",), wider, reconcile=False)
    w.stage(frame([(1, "10.50", "EMEA")]).assign(channel="web"))
    w.commit(None)
    assert visible_rows(store, s1) == {"1": Decimal("10.50")}


def test_exact_decimals_sum_exactly(store: Store) -> None:
    rows = [(i, f"{i}.{i % 100:02d}", "EMEA") for i in range(1, 400)]
    s1, _ = sync(store, rows)
    found = store.view("orders", s1)
    assert found is not None
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.sum(found[0].c.amount))).scalar()
    assert total == sum(Decimal(a) for _, a, _ in rows)


def test_primary_key_change_is_refused(store: Store) -> None:
    sync(store, [(1, "1.00", "EMEA")])
    with pytest.raises(StoreError, match="primary key changed"):
        store.begin_sync("run", "orders", "erp", ("id", "region"), SCHEMA, reconcile=False)


def test_a_record_staged_twice_in_one_sync_keeps_the_later_copy(store: Store) -> None:
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    w.stage(frame([(1, "1.00", "EMEA"), (2, "2.00", "EMEA")]))
    w.stage(frame([(2, "2.50", "EMEA"), (3, "3.00", "APAC")]))  # a re-delivered record, changed
    w.stage(frame([(4, "4.00", "EMEA"), (4, "4.40", "EMEA")]))  # and twice within one batch
    counts = w.commit(None)
    assert counts.inserted == 4
    assert visible_rows(store, w.sync_id) == {
        "1": Decimal("1.00"),
        "2": Decimal("2.50"),
        "3": Decimal("3.00"),
        "4": Decimal("4.40"),
    }


def test_reconcile_cadence(store: Store) -> None:
    assert store.reconcile_due("orders", 24)  # never reconciled
    sync(store, [(1, "1.00", "EMEA")], keys=[1])
    assert store.reconcile_due("orders", 0)
    assert not store.reconcile_due("orders", 24)
    sync(store, [], keys=None)  # a sync without key comparison does not reset the clock
    assert not store.reconcile_due("orders", 24)


def test_a_store_made_by_an_older_version_is_upgraded_in_place(store_url: str) -> None:
    with store_at_revision(store_url, "0001") as conn:
        conn.execute(
            sa.text(
                "INSERT INTO stream_state (name, source, record_table, primary_key, schema) "
                "VALUES ('orders', 'erp', 'rec_orders_x', '[\"id\"]', '[]')"
            )
        )
    upgraded = Store(store_url)
    with upgraded.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT name, last_reconcile_at FROM stream_state")).one()
    assert tuple(row) == ("orders", None)
    upgraded.close()


def test_a_first_sync_counts_its_keys_without_writing_them(store: Store) -> None:
    """Nothing is live before the first sync, so no key can keep anything from deletion: the keys are
    counted, not staged; the next sync stages them and reconciles deletions as before."""
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=True)
    w.stage(frame([(1, "10.50", "EMEA"), (2, "20.25", "APAC")]))
    w.stage_keys(pd.Series(["1", "2", "2"]))
    keys = w.tables.keys
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one() == 0
    c1 = w.commit(None)
    assert (c1.keys_read, c1.inserted, c1.deleted) == (2, 2, 0)
    w2 = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=True)
    w2.stage_keys(pd.Series(["2"]))
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one() == 1
    c2 = w2.commit(None)
    assert (c2.keys_read, c2.inserted, c2.deleted) == (1, 0, 1)
    assert visible_rows(store, w2.sync_id) == {"2": Decimal("20.25")}


def test_a_re_read_stages_only_rows_that_differ_from_their_live_version(store: Store) -> None:
    """``changed`` (a lookback re-read): unchanged live rows are dropped; a changed row, a new id and an
    id whose last version was deleted are kept. On PostgreSQL it is one LATERAL probe per row."""
    sync(store, [(1, "1.00", "EMEA"), (2, "2.00", "APAC"), (3, "3.00", "NA")], keys=[1, 2, 3])
    sync(store, [], keys=[1, 2])  # 3 deleted: its version is closed, none is live
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    reread = frame([(1, "1.00", "EMEA"), (2, "2.01", "APAC"), (3, "3.00", "NA"), (4, "4.00", "EMEA")])
    reread.index = [10, 11, 12, 13]  # the caller's index is kept (it filters its own frame with it)
    fresh = w.changed(reread)
    assert fresh.index.tolist() == [10, 11, 12, 13]
    assert fresh.tolist() == [False, True, True, True]
    many = frame([(i, "1.00", "EMEA") for i in range(1, 6001)])  # past one IN list of 5,000 elsewhere
    assert many[w.changed(many).to_numpy()]["id"].tolist() == list(range(2, 6001))
    w.fail("test over")
