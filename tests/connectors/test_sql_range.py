"""An incremental SQL read is a range on the cursor (connectors/sql_range.py): the SQL says so, the answer
is the one of ``(cursor, key) > (w, k)``, and PostgreSQL's plan has an Index Cond on the cursor."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from connectors.base import Watermark
from connectors.sql import SqlConnector
from tests.connectors.conftest import Db
from tests.connectors.test_sql import T0, make_orders, read_all, spec


@contextmanager
def statements(conn: SqlConnector) -> Iterator[list[tuple[str, Any]]]:
    """The SQL (and parameters) the connector sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    sa.event.listen(conn.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(conn.engine, "before_cursor_execute", record)


def the_read(seen: list[tuple[str, Any]]) -> tuple[str, Any]:
    (read,) = [(s, p) for s, p in seen if re.search(r"\bFROM\s+\S*orders\b.*ORDER BY", s, re.S | re.I)]
    return read


def test_incremental_sql_has_the_range_predicate(db: Db) -> None:
    make_orders(db, [{"id": 1, "write_date": T0}])
    conn = db.connector()
    with statements(conn) as seen:
        read_all(conn, spec(cursor="write_date"), Watermark(T0, (1,)))
    sql, _ = the_read(seen)
    where = re.sub(r"\s+", " ", sql.split("WHERE", 1)[1].split("ORDER BY", 1)[0])
    column = r"(julianday\()?[`\"]?orders[`\"]?\.[`\"]?write_date[`\"]?\)?"
    # the range conjunct first, then the tie-break on the key
    assert re.match(rf"\s*{column} >= .+? AND \({column} > .+? OR {column} = .+? AND ", where), where


@pytest.mark.parametrize("batch_size", [3, 1000])
def test_range_reads_exactly_the_rows_after_the_watermark(db: Db, batch_size: int) -> None:
    """Against the order computed here in Python: ties on the cursor (also at a batch boundary), NULL
    cursors (sorted first), watermarks on a row, between rows, and past the end."""
    rng = random.Random(15)
    stamps = [T0 + timedelta(seconds=s) for s in (0, 0, 0, 5, 5, 9)]
    rows = [{"id": i, "write_date": None if i % 7 == 0 else rng.choice(stamps)} for i in range(1, 41)]
    make_orders(db, rows)
    conn = db.connector()
    stream = spec(cursor="write_date", batch_size=batch_size, fields=())

    def order(r: dict[str, Any]) -> tuple[int, datetime, int]:
        return (0, T0, r["id"]) if r["write_date"] is None else (1, r["write_date"], r["id"])

    expected = sorted(rows, key=order)
    assert read_all(conn, stream)["id"].tolist() == [r["id"] for r in expected]
    marks = [(r["write_date"], r["id"]) for r in expected] + [(T0 + timedelta(seconds=5), 0),
                                                               (T0 + timedelta(seconds=5), 10**6),
                                                               (T0 + timedelta(seconds=99), 0)]
    for cursor, key in marks:
        since = Watermark.from_json(Watermark(pd.NaT if cursor is None else cursor, (key,)).to_json())
        after = [r["id"] for r in expected if order(r) > order({"id": key, "write_date": cursor})]
        got = read_all(conn, stream, since)
        assert (got["id"].tolist() if len(got) else []) == after, (cursor, key)


def test_postgres_plan_has_an_index_cond_on_the_cursor(pg_url: str, tmp_path: Path) -> None:
    """The plan of the read as the connector runs it (a server-side cursor: EXPLAIN DECLARE) uses the
    ``(write_date, id)`` index as a range; without ``write_date >= w`` it walked the whole index."""
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as c:
            c.exec_driver_sql("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, "
                              "write_date timestamp NOT NULL)")
            c.exec_driver_sql("INSERT INTO orders SELECT g, g %% 100, timestamp '2026-01-01' + g * interval "
                              "'1 minute' FROM generate_series(1, 20000) g")
            c.exec_driver_sql("CREATE INDEX orders_write_date_id ON orders (write_date, id)")
            c.exec_driver_sql("ANALYZE orders")
        conn = SqlConnector("erp", {"url": pg_url}, tmp_path)
        try:
            since = Watermark(datetime(2026, 1, 1) + timedelta(minutes=19900), (19900,))
            stream = spec(cursor="write_date", fields=())
            with statements(conn) as seen:
                assert read_all(conn, stream, since)["id"].tolist() == list(range(19901, 20001))
        finally:
            conn.close()
        sql, params = the_read(seen)
        with admin.begin() as c:
            c.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: the range must still show
            # psycopg sends a server-side cursor's SELECT as DECLARE … CURSOR FOR (planned for the first rows)
            plan = "\n".join(r[0] for r in c.exec_driver_sql(f"EXPLAIN DECLARE c NO SCROLL CURSOR FOR {sql}",
                                                              params))
    finally:
        admin.dispose()
    assert re.search(r"Index Cond: \(+\(?write_date >= ", plan), plan

