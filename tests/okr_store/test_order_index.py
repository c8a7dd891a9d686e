"""The index of a shared drill order (okr_store/order_index.py): created the first time a stream's
records are ranked by a field, and the positions taken through it are exactly those of the live order,
also past versions no longer visible (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from okr_store import order_index, ranking
from okr_store.records import RID
from okr_store.store import Store
from tests.okr_store.test_drill import SCHEMA, compute, contributions, ordered, positions, rows


@pytest.fixture
def synced(store: Store) -> tuple[Store, pd.DataFrame]:
    df = rows()
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    w.stage(df)
    w.commit('{"cursor": null, "key": []}')
    return store, df


def _indexes(store: Store) -> dict[str, list[str | None]]:
    tables = store.streams.tables("orders")
    assert tables is not None
    found = sa.inspect(store.engine).get_indexes(tables.records.name)
    return {str(i["name"]): list(i["column_names"]) for i in found}


def test_ranking_creates_the_index_of_its_order_once(synced: tuple[Store, pd.DataFrame]) -> None:
    store, df = synced
    tables = store.streams.tables("orders")
    assert tables is not None
    name = order_index.index_name(tables.records, "amount")
    assert name not in _indexes(store)
    v = compute(store, ["revenue", "orders"])
    assert _indexes(store)[name] == ["amount"]
    assert not any(n.startswith("ix_ord_") and n != name for n in _indexes(store))  # counts: the key's order
    assert positions(store, v["revenue"]) == ordered(contributions(df, "revenue"), "contribution", True)[:500]
    again = compute(store, ["revenue"])  # the index is there: not created again (it would fail)
    assert positions(store, again["revenue"]) == positions(store, v["revenue"])


def test_positions_through_the_index_skip_versions_no_longer_visible(
    synced: tuple[Store, pd.DataFrame]
) -> None:
    """Versions replaced by a later sync stay in the index with their old amounts; the walk skips them."""
    store, df = synced
    compute(store, ["revenue"])
    changed = df.copy()
    gone = ordered(contributions(df, "revenue"), "contribution", True)[:30]
    changed.loc[changed[RID].isin(gone), "amount"] = Decimal("0.00")  # the first 30 drop to the end
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    w.stage(changed)
    w.commit('{"cursor": null, "key": []}')
    v = compute(store, ["revenue", "aov"])
    want = ordered(contributions(changed, "revenue"), "contribution", True)[:ranking.TOP]
    assert not set(gone) & set(want)
    assert positions(store, v["revenue"]) == want
    assert positions(store, v["aov"]) == want


def test_without_the_index_the_positions_are_the_same(
    synced: tuple[Store, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot create the index (here: no dialect may) ranks by scanning, the same positions."""
    store, df = synced
    monkeypatch.setattr(order_index, "DIALECTS", ())
    v = compute(store, ["revenue", "unpaid_rate"])
    assert not any(n.startswith("ix_ord_") for n in _indexes(store))
    assert positions(store, v["revenue"]) == ordered(contributions(df, "revenue"), "contribution", True)[:500]
    leading = contributions(df, "unpaid_rate")
    assert positions(store, v["unpaid_rate"]) == ordered(leading[leading["contribution"] > 0],
                                                        "contribution", True)[:500]
