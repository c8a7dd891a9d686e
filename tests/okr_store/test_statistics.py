"""A sync that changed much of a record table refreshes its planner statistics (okr_store/statistics.py);
a small incremental sync leaves them be. Read from the database's own catalogue: PostgreSQL's
``pg_class.reltuples`` (set by ANALYZE in its transaction) and ``pg_stat_user_tables``, SQLite's
``sqlite_stat1``."""

from __future__ import annotations

import time

import sqlalchemy as sa

from okr_store import models as m
from okr_store.statistics import needs_analyze
from okr_store.store import Store
from tests.okr_store.test_records import sync


def measured(store: Store) -> int | None:
    """The table's row count as its statistics hold it (None: never measured)."""
    with store.engine.connect() as conn:
        name = conn.execute(sa.select(m.stream_state.c.record_table)
                            .where(m.stream_state.c.name == "orders")).scalar_one()
        if store.engine.dialect.name == "postgresql":
            tuples = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE relname = :t"),
                                  {"t": name}).scalar_one()
            return None if tuples < 0 else int(tuples)
        if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first():
            return None
        stat = conn.execute(sa.text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t"), {"t": name}).scalar()
        return None if stat is None else int(stat.split()[0])


def last_analyze(store: Store) -> object:
    """pg_stat_user_tables.last_analyze of the record table (statistics reach the view within seconds)."""
    with store.engine.connect() as conn:
        name = conn.execute(sa.select(m.stream_state.c.record_table)
                            .where(m.stream_state.c.name == "orders")).scalar_one()
        for _ in range(50):
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            at = conn.execute(sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                              {"t": name}).scalar()
            if at is not None:
                return at
            conn.rollback()
            time.sleep(0.2)
    return None


def test_a_first_sync_and_a_big_one_analyze_a_small_one_does_not(store: Store) -> None:
    sync(store, [(i, "1.00", "EMEA") for i in range(1, 201)], keys=list(range(1, 201)))
    assert measured(store) == 200  # the first sync measured it
    if store.engine.dialect.name == "postgresql":
        assert last_analyze(store) is not None

    # 5 changed rows and 5 new ones: 15 versions written, under 10 % of 200
    changed = [(i, "2.00", "EMEA") for i in range(1, 6)] + [(i, "1.00", "APAC") for i in range(201, 206)]
    sync(store, changed)
    assert measured(store) == 200  # left as it was

    # 100 new rows: over 10 % of the 200 measured
    sync(store, [(i, "1.00", "AMER") for i in range(206, 306)])
    assert measured(store) == 310  # 305 live records and the 5 closed versions


def test_nothing_written_changes_nothing(store: Store) -> None:
    sync(store, [])
    assert measured(store) is None


def test_the_rule() -> None:
    assert needs_analyze(None, 1) and not needs_analyze(None, 0)
    assert needs_analyze(1000, 101) and not needs_analyze(1000, 100) and not needs_analyze(1000, 0)
