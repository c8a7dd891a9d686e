"""Landing a sync's batches in its staging tables (see :mod:`okr_store.records`): COPY on PostgreSQL, an
upsert elsewhere, so that a record staged twice in one sync keeps its later copy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from okrsync.errors import StoreError

if TYPE_CHECKING:
    import pandas as pd

RID = "_rid"  # the record id: with ``_sync``, the key of every staging table (and re-exported by records)


def among(col: sa.ColumnElement[Any], ids: Sequence[str], dialect: str,
          chunk: int) -> Iterator[sa.ColumnElement[bool]]:
    """``col IN ids`` as conditions of ``chunk`` ids each, one statement each. On PostgreSQL each chunk
    is one array parameter (``= ANY``): an IN list is compiled, parsed and bound id by id. Keep chunks
    small where an index should serve: a long list tips PostgreSQL's planner into a scan of the table
    (8,000 ids: a sequential scan of the record table, growing with it)."""
    for i in range(0, len(ids), chunk):
        part = list(ids[i:i + chunk])
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            yield col == sa.any_(sa.bindparam(None, part, type_=postgresql.ARRAY(sa.String), unique=True))
        else:
            yield col.in_(part)


def _upsert(conn: sa.Connection, table: sa.Table, *, replace: bool) -> Any:
    """INSERT that replaces (or keeps) a staged row of the same record re-read in the same sync."""
    # The dialect's module when it is used, not at import: read commands never need these.
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(conn.dialect.name)
    if dialect is None:
        raise StoreError(f"the store does not support {conn.dialect.name!r}", hint="use SQLite or PostgreSQL")
    ins = dialect.insert(table)
    if not replace:
        return ins.on_conflict_do_nothing(index_elements=["_sync", RID])
    cols = [c.name for c in table.columns if c.name not in ("_sync", RID)]
    return ins.on_conflict_do_update(index_elements=["_sync", RID], set_={c: ins.excluded[c] for c in cols})


def plain_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Python objects with None for missing values: what DB-API drivers and COPY understand."""
    return df.astype(object).where(df.notna(), None)


def write_staged(conn: sa.Connection, table: sa.Table, df: pd.DataFrame, *, replace: bool) -> None:
    """Stage rows: COPY on PostgreSQL (row-by-row INSERT was 40 % of a full sync), an executemany
    upsert elsewhere. A record staged twice in one sync keeps its later copy."""
    if conn.dialect.name != "postgresql":
        conn.execute(_upsert(conn, table, replace=replace), plain_rows(df).to_dict("records"))
        return
    rows = df
    # Rows of one ordered read never repeat a record: COPY straight into the staging table. Only if
    # a record arrives twice in one sync (a lookback overlap, a re-delivered batch) go through a
    # temporary table and an upsert, so the later copy wins.
    from psycopg.errors import UniqueViolation

    try:
        with conn.begin_nested():
            _copy(conn, table.name, rows)
        return
    except UniqueViolation:
        pass
    columns = (sa.Column(c.name, c.type) for c in table.columns)
    tmp = sa.Table(
        f"tmp_{table.name}"[:63], sa.MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP"
    )
    tmp.create(conn)
    _copy(conn, tmp.name, rows.drop_duplicates(subset=[RID], keep="last"))
    cols = list(rows.columns)
    upsert = _upsert(conn, table, replace=replace)
    conn.execute(upsert.from_select(cols, sa.select(*(tmp.c[c] for c in cols))))
    tmp.drop(conn)


def _copy(conn: sa.Connection, table_name: str, rows: pd.DataFrame) -> None:
    """COPY ``rows`` into a table (PostgreSQL, psycopg 3): the batch as an Arrow table, written as
    CSV by Arrow's own writer (no Python per row or value) and sent in one piece. Money goes as its
    exact decimal text; NULL is an unquoted empty field, an empty string a quoted one."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.Table.from_pandas(rows, preserve_index=False)
    data = pa.BufferOutputStream()
    pa_csv.write_csv(table, data, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    quote = conn.dialect.identifier_preparer.quote
    dbapi: Any = conn.connection.dbapi_connection
    with dbapi.cursor() as cur:
        # Identifiers only (store-generated table name, quoted column names): no values in this text.
        copy_sql = (f"COPY {quote(table_name)} ({', '.join(quote(c) for c in rows.columns)}) "
                    "FROM STDIN (FORMAT csv)")
        with cur.copy(copy_sql) as copy:
            copy.write(memoryview(data.getvalue()))
