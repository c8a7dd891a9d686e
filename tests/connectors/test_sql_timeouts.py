"""statement_timeout_seconds: a lock on a source table or a slow query ends in a clear transient error.

Each test runs on SQLite, PostgreSQL and MariaDB (conftest ``db``: a database of its own per test).
No test asserts elapsed times; the waits are bounded by the statement timeout under test.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.base import StreamSpec, Watermark
from connectors.sql import SqlConnector
from connectors.sql_session import failure_kind as _failure_kind
from okrsync.errors import SourceError
from tests.connectors.conftest import Db

CANARY = "canary-9f3Kq"  # a watermark value: bound parameters never reach error text


def spec(**kw: Any) -> StreamSpec:
    base: dict[str, Any] = {"name": "ledger", "source": "erp", "primary_key": ("code",), "cursor": ("code",),
                            "options": {"table": "ledger"}}
    return StreamSpec(**{**base, **kw})


def make_ledger(db: Db, rows: int, width: int = 10) -> None:
    md = sa.MetaData()
    ledger = sa.Table("ledger", md, sa.Column("code", sa.String(40), primary_key=True),
                      sa.Column("pad", sa.String(1000), nullable=False))
    md.create_all(db.admin)
    with db.admin.begin() as c:
        c.execute(ledger.insert(), [{"code": f"r{i:06d}", "pad": "x" * width} for i in range(rows)])


@contextmanager
def table_locked(db: Db, table: str) -> Iterator[None]:
    """A second connection holds a lock that blocks reading ``table`` until the block ends."""
    if db.backend == "sqlite":
        holder = sqlite3.connect(db.base_dir / "data" / "src.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # rollback journal: readers wait for the writer
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    elif db.backend == "postgresql":
        with db.admin.begin() as conn:
            conn.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    else:  # InnoDB reads take no row locks; a table lock blocks them (a metadata lock wait)
        with db.admin.connect() as conn:
            conn.exec_driver_sql(f"LOCK TABLES {table} WRITE")
            try:
                yield
            finally:
                conn.exec_driver_sql("UNLOCK TABLES")


def read_all(conn: SqlConnector, stream: StreamSpec, since: Watermark | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream, since))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def assert_lock_error(err: pytest.ExceptionInfo[SourceError], stream: str = "ledger") -> None:
    exc, text = err.value, str(err.value)
    assert exc.transient, text
    assert f"source 'erp', stream '{stream}': waited 1 s for a lock on the source table, then gave up" in text
    assert "find what holds the lock" in text
    assert "raise statement_timeout_seconds (now 2) on source 'erp' in the project file" in text
    assert CANARY not in text


def test_statement_timeout_option() -> None:
    assert SqlConnector.Options(url="sqlite:///a.db").statement_timeout_seconds == 300
    assert SqlConnector.Options(url="sqlite:///a.db", statement_timeout_seconds=5).statement_timeout_seconds \
        == 5
    with pytest.raises(ValidationError, match="statement_timeout_seconds"):
        SqlConnector.Options(url="sqlite:///a.db", statement_timeout_seconds=0)


def test_a_locked_source_table_ends_in_a_transient_lock_error(db: Db) -> None:
    make_ledger(db, 3)
    conn = db.connector(statement_timeout_seconds=2)
    stream = spec()
    conn.schema(stream)  # planned before the lock: the read itself waits
    since = Watermark(CANARY, (CANARY,))
    with table_locked(db, "ledger"):
        with pytest.raises(SourceError) as err:
            read_all(conn, stream, since)
        assert_lock_error(err)
        with pytest.raises(SourceError) as err:  # listing keys (deletion reconciliation) too
            list(conn.keys(stream))
        assert_lock_error(err)
        fresh = db.connector(statement_timeout_seconds=2)  # describing the table (SQLite waits there)
        with pytest.raises(SourceError) as err:
            read_all(fresh, spec(name="fresh"))
        assert_lock_error(err, "fresh")
    # the lock is gone: the same connector reads again (its pooled connections still work)
    assert read_all(conn, stream)["code"].tolist() == ["r000000", "r000001", "r000002"]


SLOW_STATEMENTS = {
    "postgresql": "SELECT pg_sleep(30)",
    "mysql": "SELECT SLEEP(30)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) "
              "SELECT max(x) FROM c",
}


def test_every_statement_of_the_connector_is_bounded(db: Db) -> None:
    """Not only reads: probes, key listings and checks run on the same sessions."""
    conn = db.connector(statement_timeout_seconds=3)
    with conn.engine.connect() as c:
        if db.backend == "postgresql":
            assert [c.exec_driver_sql(f"SHOW {v}").scalar() for v in ("statement_timeout", "lock_timeout")] \
                == ["3s", "2s"]
        elif db.backend == "mysql":
            assert c.exec_driver_sql("SELECT @@max_statement_time, @@lock_wait_timeout, "
                                     "@@innodb_lock_wait_timeout").one() == (3, 2, 2)
    quick = db.connector(statement_timeout_seconds=1)
    with pytest.raises(sa.exc.DBAPIError) as err, quick.engine.connect() as c:
        c.exec_driver_sql(SLOW_STATEMENTS[db.backend]).all()
    assert _failure_kind(err.value) == "timeout", err.value.orig


SLOW_QUERIES = {
    "postgresql": "SELECT l.code, l.pad FROM ledger l CROSS JOIN pg_sleep(30) AS s",
    "mysql": "SELECT code, pad FROM ledger WHERE SLEEP(30) = 0",
    "sqlite": "SELECT code, pad FROM ledger WHERE (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
              "SELECT x + 1 FROM c WHERE x < 1000000000000) SELECT max(x) FROM c) > 0",
}


def test_a_slow_query_ends_in_a_statement_timeout(db: Db) -> None:
    make_ledger(db, 3)
    conn = db.connector(statement_timeout_seconds=1)
    stream = spec(name="slow", options={"query": SLOW_QUERIES[db.backend]})
    assert [f.name for f in conn.schema(stream).fields] == ["code", "pad"]  # describing it is quick
    with pytest.raises(SourceError) as err:
        read_all(conn, stream, Watermark(CANARY, (CANARY,)))
    exc, text = err.value, str(err.value)
    assert exc.transient, text
    assert "source 'erp', stream 'slow': the statement timed out after 1 s" in text
    assert "raise statement_timeout_seconds (now 1) on source 'erp' in the project file" in text
    assert "make the query cheaper" in text and CANARY not in text
    conn.check()  # the connector (and its pooled connection) still works


def test_time_spent_on_received_batches_does_not_count(db: Db) -> None:
    # 30 MB outgrow the socket buffers: MariaDB is still sending the result (inside the statement)
    # while the reader works on its first batch for longer than the timeout.
    make_ledger(db, 30_000, width=1000)
    conn = db.connector(statement_timeout_seconds=1)
    seen = 0
    for i, frame in enumerate(conn.read(spec(batch_size=1000), None)):
        if i == 0:
            time.sleep(1.5)  # the caller's time: not a wait on the database
        seen += len(frame)
    assert seen == 30_000

