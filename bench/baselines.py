"""What the same work costs without okrsync: plain reads of the source, per-KR SQL, a plain top-N query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg import sql

from bench.data import FULL_SELECT, KrPlan

PLACES = Decimal("1e-12")  # okrsync's documented precision for averages and ratios (half-even)


@dataclass(frozen=True)
class ReadResult:
    rows: int
    bytes: int = 0


def read_pandas(sa_url: str, chunksize: int) -> ReadResult:
    """``pandas.read_sql`` in chunks over a server-side cursor; Decimals kept (no float coercion)."""
    engine = sa.create_engine(sa_url)
    rows = 0
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(stream_results=True, max_row_buffer=chunksize)
            for chunk in pd.read_sql(sa.text(FULL_SELECT), conn, chunksize=chunksize, coerce_float=False):
                rows += len(chunk)
    finally:
        engine.dispose()
    return ReadResult(rows)


def read_tuples(conninfo: str, batch: int) -> ReadResult:
    """psycopg named (server-side) cursor, ``fetchmany``: Python tuples, no DataFrame."""
    rows = 0
    with psycopg.connect(conninfo) as conn, conn.cursor(name="bench_read") as cur:
        cur.itersize = batch
        cur.execute(FULL_SELECT)
        while chunk := cur.fetchmany(batch):
            rows += len(chunk)
    return ReadResult(rows)


def read_copy(conninfo: str) -> ReadResult:
    """``COPY (SELECT …) TO STDOUT``: the bytes only, nothing parsed."""
    rows = size = 0
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({FULL_SELECT}) TO STDOUT") as copy:
            for block in copy:
                data = bytes(block)
                size += len(data)
                rows += data.count(b"\n")
    return ReadResult(rows, size)


def copy_pipe(src_conninfo: str, dst_conninfo: str) -> ReadResult:
    """``COPY … TO STDOUT`` from the source straight into ``COPY … FROM STDIN`` of a table in the store
    database: the floor for any sync that lands every row in PostgreSQL (no hashing, no versions)."""
    rows = size = 0
    with psycopg.connect(src_conninfo) as src, psycopg.connect(dst_conninfo) as dst:
        dst.execute(
            "CREATE TABLE bench_copy_target (id bigint, order_id bigint, region text, product text, "
            "quantity integer, unit_price numeric(12,2), amount numeric(12,2), state text, "
            "order_date date, write_date timestamp)"
        )
        with src.cursor() as rcur, dst.cursor() as wcur:
            with (
                rcur.copy(f"COPY ({FULL_SELECT}) TO STDOUT") as out,
                wcur.copy("COPY bench_copy_target FROM STDIN") as into,
            ):
                for block in out:
                    data = bytes(block)
                    size += len(data)
                    rows += data.count(b"\n")
                    into.write(data)
        dst.execute("DROP TABLE bench_copy_target")
        dst.commit()
    return ReadResult(rows, size)


# ---- key results straight from the source ----------------------------------------------------------

_REGION = sql.SQL(" AND region = %(region)s")
_NONE = sql.SQL("")
_SQL = {
    "gross": sql.SQL(
        "SELECT sum(amount), count(amount) FROM order_lines WHERE order_date BETWEEN %(first)s AND %(last)s"
    ),
    "revenue": sql.SQL(
        "SELECT sum(amount), count(amount) FROM order_lines "
        "WHERE state IN ('confirmed', 'done') AND order_date BETWEEN %(first)s AND %(last)s"
    ),
    "lines": sql.SQL(
        "SELECT count(*), count(*) FROM order_lines "
        "WHERE state IN ('confirmed', 'done') AND order_date BETWEEN %(first)s AND %(last)s"
    ),
    "avg_line_value": sql.SQL(
        "SELECT sum(amount), count(amount) FROM order_lines "
        "WHERE state IN ('confirmed', 'done') AND order_date BETWEEN %(first)s AND %(last)s"
    ),
    "cancel_rate": sql.SQL(
        "SELECT count(*) FILTER (WHERE state = 'cancel'), count(*) FROM order_lines "
        "WHERE order_date BETWEEN %(first)s AND %(last)s"
    ),
}
_TOP = {
    "revenue": sql.SQL(
        "SELECT * FROM order_lines "
        "WHERE state IN ('confirmed', 'done') AND order_date BETWEEN %(first)s AND %(last)s"
    ),
    "gross": sql.SQL("SELECT * FROM order_lines WHERE order_date BETWEEN %(first)s AND %(last)s"),
}
_TOP_ORDER = sql.SQL(" ORDER BY amount DESC, id LIMIT %(limit)s")


def _value(metric: str, a: Any, b: Any) -> Decimal | None:
    """The KR value from the two aggregates, with okrsync's documented semantics."""
    n = int(b or 0)
    if metric in ("revenue", "gross"):
        return Decimal(a) if a is not None else Decimal(0)
    if metric == "lines":
        return Decimal(n)
    if n == 0:
        return None
    return (Decimal(a) / n).quantize(PLACES)  # avg: sum / count; ratio: cancelled / all


def kr_values(conninfo: str, krs: Iterable[KrPlan]) -> dict[str, Decimal | None]:
    """Every KR by its own query on the source table (one query per KR, no shared scan)."""
    out: dict[str, Decimal | None] = {}
    with psycopg.connect(conninfo) as conn:
        for k in krs:
            query = _SQL[k.metric] + (_REGION if k.region else _NONE)
            params = {"first": k.first_day, "last": k.last_day, "region": k.region}
            row = conn.execute(query, params).fetchone()
            assert row is not None
            out[k.id] = _value(k.metric, row[0], row[1])
    return out


def top_lines(conn: psycopg.Connection[Any], k: KrPlan, limit: int | None) -> list[tuple[int, Decimal]]:
    """The plain-SQL answer to a drill's page: the ``limit`` biggest lines behind a revenue or gross KR
    (None: all of them, every column fetched as a drill does)."""
    query = _TOP[k.metric] + (_REGION if k.region else _NONE) + _TOP_ORDER
    params = {"first": k.first_day, "last": k.last_day, "region": k.region, "limit": limit}
    rows = conn.execute(query, params).fetchall()  # LIMIT NULL = no limit
    return [(int(r[0]), r[6]) for r in rows]


def count_top_lines(conninfo: str, k: KrPlan, batch: int = 50_000) -> int:
    """The same SELECT as ``top_lines(…, None)`` (every column, every line behind ``k``), streamed through
    a server-side cursor and counted: its baseline where the whole list would not fit in memory."""
    query = _TOP[k.metric] + (_REGION if k.region else _NONE) + _TOP_ORDER
    params = {"first": k.first_day, "last": k.last_day, "region": k.region, "limit": None}
    n = 0
    with psycopg.connect(conninfo) as conn, conn.cursor(name="bench_every_line") as cur:
        cur.execute(query, params)
        while rows := cur.fetchmany(batch):
            n += len(rows)
    return n


# ---- the same key results from one hand-written grouped scan ---------------------------------------

GROUPED_SQL = (
    "SELECT region, date_trunc('quarter', order_date)::date AS quarter, "
    "sum(amount) FILTER (WHERE state IN ('confirmed', 'done')) AS revenue, "
    "count(amount) FILTER (WHERE state IN ('confirmed', 'done')) AS revenue_n, "
    "count(*) FILTER (WHERE state IN ('confirmed', 'done')) AS lines, "
    "count(*) FILTER (WHERE state = 'cancel') AS cancelled, "
    "count(*) AS all_lines, sum(amount) AS gross, count(amount) AS gross_n "
    "FROM order_lines WHERE order_date BETWEEN %(first)s AND %(last)s GROUP BY 1, 2"
)


def grouped_kr_values(conninfo: str, krs: Iterable[KrPlan]) -> dict[str, Decimal | None]:
    """Every KR from one ``GROUP BY region, quarter`` scan of the source (the dimensions and period
    buckets the KRs use), each KR rolled up from its cells: what a hand-written report would do."""
    plans = list(krs)
    first, last = min(k.first_day for k in plans), max(k.last_day for k in plans)
    with psycopg.connect(conninfo) as conn:
        cells = conn.execute(GROUPED_SQL, {"first": first, "last": last}).fetchall()
    terms = {"revenue": (2, 3), "gross": (7, 8), "lines": (4, 4), "avg_line_value": (2, 3),
             "cancel_rate": (5, 6)}
    out: dict[str, Decimal | None] = {}
    for k in plans:
        a_col, b_col = terms[k.metric]
        mine = [c for c in cells
                if (k.region is None or c[0] == k.region) and k.first_day <= c[1] <= k.last_day]
        sums = [c[a_col] for c in mine if c[a_col] is not None]
        total = sum(sums[1:], sums[0]) if sums else None
        out[k.id] = _value(k.metric, total, sum(int(c[b_col]) for c in mine))
    return out
