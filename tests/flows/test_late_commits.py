"""Incremental reads lose nothing that commits late or is dated ahead of the source's clock (issue #12,
RELIABILITY rows 8, 34, 35): a second connection holds a transaction open across a sync, on
PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows import compute, pipeline
from okr_store import models as m
from okr_store.queries import status_tree
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync.project import Project, load_project

AS_OF = datetime(2026, 11, 20)
PROJECT = """\
version: 1
settings: {{default_period: 2026-Q4}}
sources:
  erp: {{kind: sql, url: "{url}"}}
streams:
  sales:
    source: erp
    table: sale
    primary_key: id
    cursor: write_date
{extra}metrics:
  sold: {{stream: sales, measure: count, field: id}}
objectives:
  - id: O1
    title: Sell
    key_results: [{{id: KR-SOLD, title: Sales, metric: sold, target: 10}}]
"""
NOW_SQL = {"postgresql": "SELECT clock_timestamp() AT TIME ZONE 'UTC'", "mysql": "SELECT UTC_TIMESTAMP(6)",
           "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"}
COLUMN = {"postgresql": "TIMESTAMP", "mysql": "TIMESTAMP(6) NULL", "sqlite": "TIMESTAMP"}
UTC_SESSION = {"postgresql": {"options": "-c timezone=UTC"}, "sqlite": {},
               "mysql": {"init_command": "SET time_zone = '+00:00'"}}


@dataclass
class Erp:
    """A source database with a ``sale`` table; projects sync it into a SQLite store."""

    backend: str
    url: str  # as the project file holds it
    admin: sa.Engine  # may write, in UTC
    path: Path

    def now(self) -> datetime:
        """The source's clock (naive UTC): what an ERP stamps its rows with."""
        with self.admin.connect() as conn:
            return datetime.fromisoformat(str(conn.exec_driver_sql(NOW_SQL[self.backend]).scalar_one()))

    def insert(self, conn: sa.Connection, id_: int, at: datetime | str) -> None:
        """A confirmed sale stamped ``at``: a time, or SQL the database evaluates (its own clock)."""
        if isinstance(at, str):
            conn.execute(sa.text(f"INSERT INTO sale (id, state, write_date) VALUES (:id, 'confirmed', {at})"),
                         {"id": id_})
            return
        value = at.isoformat(sep=" ") if self.backend == "sqlite" else at
        conn.execute(sa.text("INSERT INTO sale (id, state, write_date) VALUES (:id, 'confirmed', :at)"),
                     {"id": id_, "at": value})

    def stamp(self, id_: int, at: datetime) -> None:
        """An edit of sale ``id_`` stamped ``at``."""
        with self.admin.begin() as conn:
            conn.execute(sa.text("UPDATE sale SET state = 'done', write_date = :at WHERE id = :id"),
                         {"id": id_, "at": at.isoformat(sep=" ") if self.backend == "sqlite" else at})

    def project(self, extra: str = "") -> Project:
        pf = self.path / "okrsync.yaml"
        pf.write_text(PROJECT.format(url=self.url, extra=extra))
        return load_project(pf)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def erp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Erp]:
    backend = request.param
    if backend == "sqlite":
        url, admin_url = "sqlite:///erp.db", f"sqlite:///{tmp_path / 'erp.db'}"
    else:
        url = admin_url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    admin = sa.create_engine(admin_url, connect_args=UTC_SESSION[backend])
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE sale (id INTEGER PRIMARY KEY, state VARCHAR(20), "
                             f"write_date {COLUMN[backend]})")
    try:
        yield Erp(backend, url, admin, tmp_path)
    finally:
        admin.dispose()


def sync(project: Project) -> SyncCounts:
    store = Store(project.store_url())
    connector = project.connector("erp")
    try:
        run_id = store.start_run(AS_OF, None)
        compute.register_okrs(project, store)
        return pipeline.sync_stream(project, store, connector, run_id, "sales")
    finally:
        connector.close()
        store.close()


def live_ids(project: Project) -> set[int]:
    store = Store(project.store_url())
    try:
        found = store.view("sales", store.snapshot({"sales"})["sales"])
        assert found is not None
        with store.engine.connect() as conn:
            return {int(r) for r in conn.execute(sa.select(found[0].c.id)).scalars()}
    finally:
        store.close()


def test_a_row_stamped_before_the_watermark_and_committed_after_a_sync_is_read_next(erp: Erp) -> None:
    """An ERP stamps a sale with its transaction's start; another change commits, a sync runs while the
    first transaction is still open, then it commits: the next sync reads it (default settings)."""
    project = erp.project()
    t0 = erp.now() - timedelta(hours=2)
    with erp.admin.begin() as conn:
        erp.insert(conn, 1, t0)
    assert sync(project).inserted == 1
    t1 = erp.now()
    late, other = t1 - timedelta(seconds=1), t1  # the late row's transaction started first
    writer = erp.admin.connect()
    try:
        if erp.backend == "sqlite":  # one writer at a time: the other change commits first
            with erp.admin.begin() as conn:
                erp.insert(conn, 3, other)
            writer.exec_driver_sql("BEGIN IMMEDIATE")
            erp.insert(writer, 2, late)
        else:
            writer.begin()
            erp.insert(writer, 2, late)
            with erp.admin.begin() as conn:
                erp.insert(conn, 3, other)
        during = sync(project)
        assert during.inserted == 1 and live_ids(project) == {1, 3}  # sale 2 is not committed yet
        writer.commit()
    finally:
        writer.close()
    after = sync(project)
    assert live_ids(project) == {1, 2, 3}
    # sale 3 is read again (it may still have had company), but it did not change: not pulled again
    assert (after.rows_read, after.inserted, after.updated, after.deleted) == (1, 1, 0, 0)
    assert after.warning is None


@pytest.mark.parametrize("erp", ["postgresql", "mysql"], indirect=True)
def test_the_oldest_open_transaction_holds_the_watermark_without_a_lookback(erp: Erp) -> None:
    """With ``lookback_seconds: 0``, the source's own list of open transactions (pg_stat_activity,
    information_schema.innodb_trx) keeps the watermark before a row stamped at its transaction's
    start, however long that transaction stays open."""
    project = erp.project("    lookback_seconds: 0\n")
    stamp = "now()" if erp.backend == "postgresql" else "NOW(6)"  # stamped by the database itself
    with erp.admin.begin() as conn:
        erp.insert(conn, 1, erp.now() - timedelta(hours=2))
    assert sync(project).inserted == 1
    writer = erp.admin.connect()
    try:
        writer.begin()
        erp.insert(writer, 2, stamp)  # PostgreSQL: the transaction's start; MariaDB: this statement's
        with erp.admin.begin() as conn:
            later = conn.exec_driver_sql(NOW_SQL[erp.backend]).scalar_one()
            erp.insert(conn, 3, datetime.fromisoformat(str(later)) + timedelta(seconds=2))
        assert sync(project).inserted == 1
        writer.commit()
    finally:
        writer.close()
    assert sync(project).inserted == 1
    assert live_ids(project) == {1, 2, 3}


def test_rows_dated_in_the_future_are_reported_and_do_not_hide_later_edits(erp: Erp) -> None:
    """Rows stamped tomorrow (a wrong clock or timezone), then an edit stamped now: the edit is read,
    and the sync result, `status` and the freshness check say how many records are in the future."""
    project = erp.project("    checks:\n      - freshness: {max_age_hours: 24}\n        severity: warn\n")
    now = erp.now()
    with erp.admin.begin() as conn:
        erp.insert(conn, 1, now - timedelta(hours=1))
        erp.insert(conn, 2, now + timedelta(days=1))
        erp.insert(conn, 3, now + timedelta(days=1, hours=2))
    first = sync(project)
    assert first.inserted == 3
    erp.stamp(1, erp.now())
    second = sync(project)
    # the edit; the future rows are read again each time, but unchanged, so not pulled
    assert (second.rows_read, second.updated, second.inserted) == (1, 1, 0)
    for counts in (first, second):
        assert counts.warning is not None and "2 records dated in the future (up to " in counts.warning
    store = Store(project.store_url())
    try:
        with store.engine.connect() as conn:
            (kr,) = status_tree(conn)[0].key_results
            observed = conn.execute(sa.select(m.check_result.c.observed, m.check_result.c.status)
                                    .order_by(m.check_result.c.id)).all()
    finally:
        store.close()
    assert "2 records dated in the future" in kr.warnings["sales"]
    assert observed[-1].status == "warned" and "2 records dated in the future" in observed[-1].observed
