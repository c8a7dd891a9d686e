"""SqlConnector against real databases: SQLite files, PostgreSQL and MariaDB (see conftest ``db``)."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.base import Connector, StreamSpec, Watermark, cursor_values, deletion_policy
from connectors.registry import connector_kind
from connectors.sql import SqlConnector, SqlStreamOptions
from okrsync.errors import ConfigError, SourceError
from okrsync.schema import FieldType
from tests.connectors.conftest import Db
from tests.prefect_shared import shared_server

T0 = datetime(2026, 10, 1, 9, 30)


def spec(**kw: Any) -> StreamSpec:
    base: dict[str, Any] = {"name": "orders", "source": "erp", "primary_key": ("id",),
                            "options": {"table": "orders"}}
    return StreamSpec(**{**base, **kw})


def read_all(conn: SqlConnector, stream: StreamSpec, since: Watermark | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream, since))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def make_orders(db: Db, rows: list[dict[str, Any]]) -> sa.Table:
    md = sa.MetaData()
    orders = sa.Table(
        "orders", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("region", sa.String(20)),
        sa.Column("amount", sa.Numeric(14, 2)),
        sa.Column("order_date", sa.Date),
        sa.Column("write_date", sa.DateTime, nullable=True),
        sa.Column("create_date", sa.DateTime, nullable=False),
        sa.Column("paid", sa.Boolean),
    )
    md.create_all(db.admin)
    defaults = {"region": "EMEA", "amount": Decimal("1.00"), "order_date": date(2026, 10, 1),
                "write_date": None, "create_date": T0, "paid": True}
    if rows:
        with db.admin.begin() as c:
            c.execute(orders.insert(), [{**defaults, **r} for r in rows])
    return orders


# -- options -----------------------------------------------------------------------------------------


def test_options_need_exactly_one_url_and_no_password_in_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of url, url_env, url_secret"):
        SqlConnector.Options(url="sqlite:///a.db", url_env="X")
    with pytest.raises(ValidationError, match="exactly one"):
        SqlConnector.Options()
    with pytest.raises(ValidationError) as err:
        SqlConnector.Options(url="postgresql+psycopg://u:hunter2@db.example/erp")
    assert "url_env" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="source 'erp'.*password") as cerr:
        SqlConnector("erp", {"url": "postgresql+psycopg://u:hunter2@db.example/erp"}, tmp_path)
    assert "hunter2" not in str(cerr.value)
    with pytest.raises(ConfigError, match="source 'erp'.*bogus"):
        SqlConnector("erp", {"url": "sqlite:///a.db", "bogus": 1}, tmp_path)


@pytest.mark.parametrize("query", [
    "SELECT 1",
    "  with x as (select 1 as id) select * from x ;  ",
    "SELECT 'a;b' AS s, \"we;ird\" FROM t -- trailing; comment",
    "/* leading */ SELECT id FROM t WHERE note = 'it''s; fine'",
])
def test_query_accepts_one_select(query: str) -> None:
    opts = SqlStreamOptions.model_validate({"query": query})
    assert opts.query is not None and not opts.query.endswith(";")


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT 1; SELECT 2", "single statement"),
    ("SELECT 1; DROP TABLE t", "single statement"),
    ("DELETE FROM t", "starting with SELECT or WITH"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
    ("SELECT * INTO copy FROM t", "INTO"),
    ("SELECT * FROM t FOR UPDATE", "UPDATE"),
])
def test_query_rejects_anything_but_one_read(query: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SqlStreamOptions.model_validate({"query": query})


def test_stream_options_need_table_or_query(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of table or query"):
        SqlStreamOptions.model_validate({"table": "a", "query": "SELECT 1"})
    opts = SqlStreamOptions.model_validate({"table": "orders", "schema": "sales"})
    for dumped in (opts.model_dump(), opts.model_dump(by_alias=True)):  # the project file keeps a dump
        assert SqlStreamOptions.model_validate(dumped).db_schema == "sales"
    conn = SqlConnector("erp", {"url": "sqlite:///x.db"}, tmp_path)
    with pytest.raises(ConfigError, match="source 'erp', stream 'orders'.*colour"):
        conn.schema(spec(options={"table": "orders", "colour": "red"}))


def test_missing_env_var_and_missing_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKRSYNC_NO_SUCH_URL", raising=False)
    conn = SqlConnector("erp", {"url_env": "OKRSYNC_NO_SUCH_URL"}, tmp_path)
    with pytest.raises(ConfigError, match="environment variable OKRSYNC_NO_SUCH_URL is not set"):
        conn.check()
    monkeypatch.setenv("OKRSYNC_URL", "sqlite:///x.db")
    monkeypatch.delenv("OKRSYNC_NO_SUCH_PW", raising=False)
    conn = SqlConnector("erp", {"url_env": "OKRSYNC_URL", "password_env": "OKRSYNC_NO_SUCH_PW"}, tmp_path)
    with pytest.raises(ConfigError, match="OKRSYNC_NO_SUCH_PW"):
        conn.check()
    conn = SqlConnector("erp", {"url": "sqlite:///missing.db"}, tmp_path)
    with pytest.raises(ConfigError, match="missing.db does not exist"):
        conn.check()
    assert not (tmp_path / "missing.db").exists()


# -- connecting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql+psycopg://okr:s3cr3t-pw@127.0.0.1:1/erp",
                                 "mysql+pymysql://okr:s3cr3t-pw@127.0.0.1:1/erp"])
def test_unreachable_server_is_transient_and_hides_the_password(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_URL", url)
    conn = SqlConnector("erp", {"url_env": "ERP_URL", "connect_timeout_seconds": 2}, tmp_path)
    with pytest.raises(SourceError) as err:
        conn.check()
    assert err.value.transient
    text = str(err.value)
    assert "source 'erp'" in text and "127.0.0.1:1" in text and "s3cr3t-pw" not in text
    assert "check that the server is up" in text
    # the same with the password in its own variable
    monkeypatch.setenv("ERP_URL", url.replace(":s3cr3t-pw", ""))
    monkeypatch.setenv("ERP_PW", "s3cr3t-pw")
    conn = SqlConnector("erp", {"url_env": "ERP_URL", "password_env": "ERP_PW"}, tmp_path)
    with pytest.raises(SourceError) as err:
        list(conn.read(spec(), None))
    assert err.value.transient and "s3cr3t-pw" not in str(err.value)


SECRET_SCRIPT = """
from pathlib import Path
from connectors.sql import SqlConnector
from okrsync.errors import ConfigError
from prefect.blocks.system import Secret

Secret(value="sqlite:///src.db").save("erp-url", overwrite=True)
SqlConnector("erp", {"url_secret": "erp-url"}, Path.cwd()).check()
try:
    SqlConnector("erp", {"url_secret": "no-such-block"}, Path.cwd()).check()
except ConfigError as exc:
    assert "Prefect Secret block 'no-such-block' was not found" in str(exc), exc
else:
    raise AssertionError("a missing block must be a ConfigError")
"""


@pytest.mark.prefect
def test_url_from_a_prefect_secret_block(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    sqlite3.connect(tmp_path / "src.db").close()
    server = shared_server(tmp_path_factory)  # the session's Prefect server, as an operator's would be
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": server.url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run([sys.executable, "-c", SECRET_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]


def test_password_env_is_used(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    if db.backend == "sqlite":
        pytest.skip("SQLite has no passwords")
    monkeypatch.setenv("ERP_PW", "pw-from-env")
    conn = db.connector(password_env="ERP_PW")
    assert conn.engine.url.password == "pw-from-env" and "pw-from-env" not in repr(conn.engine.url)
    if db.backend == "postgresql":
        conn.check()  # the test server trusts local connections and ignores the password
        return
    with pytest.raises(SourceError) as err:  # the test MariaDB's root has no password: access denied
        conn.check()
    assert not err.value.transient and "pw-from-env" not in str(err.value)
    assert "Access denied" in str(err.value) and "password_env" in str(err.value)


def test_unknown_user_is_not_transient(db: Db) -> None:
    if db.backend == "sqlite":
        pytest.skip("SQLite has no users")
    conn = SqlConnector("erp", {"url": str(sa.make_url(db.url).set(username="nobody_here"))}, db.base_dir)
    with pytest.raises(SourceError) as err:
        conn.check()
    assert not err.value.transient
    assert "nobody_here" in str(err.value) and "user name and password" in str(err.value)


def test_bad_values_are_named_with_their_row(db: Db) -> None:
    if db.backend != "sqlite":
        pytest.skip("only SQLite lets a column hold values of another type")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, amount DECIMAL(10, 2), day DATE)")
    db.execute("INSERT INTO t VALUES (1, 1.5, '2026-01-01'), (2, 'n/a', '2026-01-02'), (3, 2, 'soon')")
    conn = db.connector()
    with pytest.raises(SourceError, match=r"stream 't': field 'amount': row 2 holds 'n/a', not a decimal"):
        read_all(conn, spec(name="t", options={"table": "t"}, fields=("amount",)))
    with pytest.raises(SourceError, match=r"field 'day': row 3 holds 'soon', not a date"):
        read_all(conn, spec(name="t", options={"table": "t"}, fields=("day",)))


def test_connector_is_a_connector(tmp_path: Path) -> None:
    assert connector_kind("sql") is SqlConnector  # the entry point
    conn: Connector = SqlConnector("erp", {"url": "sqlite:///x.db"}, tmp_path)  # checked by mypy too
    assert isinstance(conn, Connector) and conn.kind == "sql"
    assert conn.record_url(spec(), "1") is None


def test_writes_fail_through_the_connectors_engine(db: Db) -> None:
    make_orders(db, [{"id": 1}])
    conn = db.connector()
    conn.check()
    for sql in ["INSERT INTO orders (id, create_date) VALUES (2, '2026-01-01 00:00:00')",
                "UPDATE orders SET region = 'APAC'", "DELETE FROM orders",
                "CREATE TABLE sneaky (id INTEGER)"]:
        with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read.?only"), conn.engine.connect() as c:
            c.execute(sa.text(sql))
            c.commit()
    if db.backend == "postgresql":  # a data-modifying CTE is a SELECT to the parser, not to the server
        with pytest.raises(sa.exc.DBAPIError, match="read-only"), conn.engine.connect() as c:
            c.execute(sa.text("WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d"))
    with db.admin.connect() as c:
        assert c.execute(sa.text("SELECT count(*), min(region) FROM orders")).one() == (1, "EMEA")


# -- schema ------------------------------------------------------------------------------------------


def test_schema_maps_types(db: Db) -> None:
    md = sa.MetaData()
    sa.Table("kinds", md,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("big", sa.BigInteger), sa.Column("small", sa.SmallInteger),
             sa.Column("money", sa.Numeric(12, 2)), sa.Column("rate", sa.Numeric()),
             sa.Column("ratio", sa.Float), sa.Column("dbl", sa.Double),
             sa.Column("name", sa.String(30)), sa.Column("note", sa.Text),
             sa.Column("status", sa.Enum("new", "done", name="status_kind")),
             sa.Column("day", sa.Date), sa.Column("at", sa.DateTime),
             sa.Column("at_tz", sa.DateTime(timezone=True)),
             sa.Column("flag", sa.Boolean))
    md.create_all(db.admin)
    schema = db.connector().schema(spec(name="kinds", options={"table": "kinds"}))
    got = {f.name: (f.type, f.scale) for f in schema.fields}
    unscaled = 0 if db.backend == "mysql" else 6  # MySQL's NUMERIC means DECIMAL(10,0)
    assert got == {
        "id": (FieldType.INTEGER, None), "big": (FieldType.INTEGER, None), "small": (FieldType.INTEGER, None),
        "money": (FieldType.DECIMAL, 2), "rate": (FieldType.DECIMAL, unscaled),
        "ratio": (FieldType.FLOAT, None), "dbl": (FieldType.FLOAT, None),
        "name": (FieldType.STRING, None), "note": (FieldType.STRING, None),
        "status": (FieldType.STRING, None),
        "day": (FieldType.DATE, None), "at": (FieldType.DATETIME, None), "at_tz": (FieldType.DATETIME, None),
        "flag": (FieldType.BOOLEAN, None),
    }
    assert schema.names[0] == "id"


def test_unknown_table_lists_close_matches(db: Db) -> None:
    make_orders(db, [])
    with pytest.raises(ConfigError) as err:
        db.connector().schema(spec(options={"table": "ordrs"}))
    text = str(err.value)
    assert "source 'erp', stream 'orders': no table 'ordrs'" in text and "did you mean orders" in text


def test_missing_fields_are_named_with_the_available_ones(db: Db) -> None:
    make_orders(db, [])
    stream = spec(fields=("region", "regoin", "amount"), cursor=("updated_at",))
    with pytest.raises(ConfigError) as err:
        db.connector().schema(stream)
    text = str(err.value)
    assert "'regoin', 'updated_at'" in text and "table 'orders'" in text
    assert "available fields: id, region, amount, order_date, write_date, create_date, paid" in text


# -- reading -----------------------------------------------------------------------------------------


def test_full_read_converts_values(db: Db) -> None:
    make_orders(db, [
        {"id": 2, "region": "APAC", "amount": Decimal("12.50"), "paid": False, "write_date": T0},
        {"id": 1, "region": None, "amount": None, "order_date": None, "paid": None},
    ])
    conn = db.connector()
    df = read_all(conn, spec(fields=("region", "amount", "paid", "order_date")))
    assert list(df.columns) == ["id", "region", "amount", "order_date", "paid"]
    assert df["id"].tolist() == [1, 2] and str(df["id"].dtype) == "int64[pyarrow]"
    assert df["amount"].iloc[1] == Decimal("12.50") and isinstance(df["amount"].iloc[1], Decimal)
    assert pd.isna(df["amount"].iloc[0]) and pd.isna(df["region"].iloc[0]) and pd.isna(df["paid"].iloc[0])
    assert df["paid"].iloc[1] is False
    assert str(df["paid"].dtype) == "bool[pyarrow]"  # Arrow-backed batches (#15)
    assert df["order_date"].iloc[1] == date(2026, 10, 1) and type(df["order_date"].iloc[1]) is date
    # order, ties, lookback and keys(): the connector contract (test_contract_sql.py)


def test_coalesced_cursor_falls_back_to_create_date(db: Db) -> None:
    make_orders(db, [
        {"id": 1, "create_date": T0, "write_date": None},
        {"id": 2, "create_date": T0 - timedelta(hours=1), "write_date": T0 + timedelta(hours=1)},
        {"id": 3, "create_date": T0 + timedelta(hours=2), "write_date": None},
        {"id": 4, "create_date": T0 - timedelta(hours=2), "write_date": T0 + timedelta(minutes=30)},
    ])
    conn = db.connector()
    stream = spec(cursor=("write_date", "create_date"))
    df = read_all(conn, stream)
    assert df["id"].tolist() == [1, 4, 2, 3]
    row = df[df["id"] == 4]
    since = Watermark(cursor_values(row, stream).iloc[0], (row["id"].iloc[0],))  # pandas scalars, in memory
    assert read_all(conn, stream, since)["id"].tolist() == [2, 3]


def test_null_cursors_come_first_and_are_read_once(db: Db) -> None:
    make_orders(db, [{"id": i, "write_date": None if i <= 5 else T0 + timedelta(hours=9 - i)}
                     for i in range(1, 9)])
    conn = db.connector()
    stream = spec(cursor="write_date", batch_size=2)
    seen: list[int] = []
    since: Watermark | None = None
    while (batch := next(iter(conn.read(stream, since)), None)) is not None:
        seen += batch["id"].tolist()
        last = Watermark(batch["write_date"].iloc[-1], (batch["id"].iloc[-1],))  # NaT while among NULLs
        since = Watermark.from_json(last.to_json())
    assert seen == [1, 2, 3, 4, 5, 8, 7, 6]


def test_query_stream(db: Db) -> None:
    make_orders(db, [{"id": i, "region": "EMEA" if i % 2 else "APAC", "amount": Decimal(i) / 4,
                      "write_date": T0 + timedelta(minutes=i)} for i in range(1, 11)])
    query = ("SELECT o.id, o.amount, o.region AS area, o.write_date, o.paid, o.id * 10 AS tenfold "
             "FROM orders o WHERE o.region = 'EMEA' AND o.amount > 0 AND o.region <> ':nope 100%';")
    stream = spec(name="emea", options={"query": query}, cursor="write_date")
    conn = db.connector()
    schema = conn.schema(stream)
    assert {f.name: (f.type, f.scale) for f in schema.fields} == {
        "id": (FieldType.INTEGER, None), "amount": (FieldType.DECIMAL, 2), "area": (FieldType.STRING, None),
        "write_date": (FieldType.DATETIME, None), "paid": (FieldType.BOOLEAN, None),
        "tenfold": (FieldType.INTEGER, None)}
    df = read_all(conn, stream)
    assert df["id"].tolist() == [1, 3, 5, 7, 9] and df["tenfold"].tolist() == [10, 30, 50, 70, 90]
    assert df["amount"].tolist() == [Decimal("0.25"), Decimal("0.75"), Decimal("1.25"), Decimal("1.75"),
                                     Decimal("2.25")]
    since = Watermark(df["write_date"].iloc[2], (5,))
    assert read_all(conn, stream, since)["id"].tolist() == [7, 9]


def test_decimals_are_exact(db: Db) -> None:
    rng = random.Random(42)
    amounts = [Decimal(rng.randint(-10**9, 10**9)).scaleb(-2) for _ in range(2000)]
    make_orders(db, [{"id": i, "amount": a} for i, a in enumerate(amounts)])
    df = read_all(db.connector(), spec(fields=("amount",), batch_size=700))
    assert all(isinstance(a, Decimal) and a.as_tuple().exponent == -2 for a in df["amount"])
    assert sum(df["amount"], Decimal(0)) == sum(amounts, Decimal(0))


def test_timezones_become_naive_utc(db: Db) -> None:
    local_type, aware_type = {"sqlite": ("DATETIME", "DATETIME"), "postgresql": ("TIMESTAMP", "TIMESTAMPTZ"),
                              "mysql": ("DATETIME", "TIMESTAMP NULL")}[db.backend]
    db.execute(f"CREATE TABLE ev (id INTEGER PRIMARY KEY, local_ts {local_type}, aware_ts {aware_type})")
    rows = [{"id": 1, "l": "2026-01-15 12:00:00", "a": "2026-01-15 12:00:00+02:00"},
            {"id": 2, "l": "2026-07-01 12:00:00", "a": "2026-07-01 12:00:00-05:00"},
            {"id": 3, "l": "2026-07-01 12:30:00", "a": None}]
    with db.admin.begin() as c:
        if db.backend == "mysql":  # TIMESTAMP literals are read in the session zone
            c.execute(sa.text("SET time_zone = '+02:00'"))
            rows[0]["a"], rows[1]["a"] = "2026-01-15 12:00:00", "2026-07-01 19:00:00"
        c.execute(sa.text("INSERT INTO ev VALUES (:id, :l, :a)"), rows)
    conn = db.connector()
    stream = spec(name="ev", options={"table": "ev"}, cursor="local_ts", timezone="Europe/Berlin")
    df = read_all(conn, stream)
    assert df["local_ts"].tolist() == [datetime(2026, 1, 15, 11), datetime(2026, 7, 1, 10),
                                       datetime(2026, 7, 1, 10, 30)]
    assert df["aware_ts"].iloc[:2].tolist() == [datetime(2026, 1, 15, 10), datetime(2026, 7, 1, 17)]
    assert df["local_ts"].dt.tz is None and df["aware_ts"].dt.tz is None
    # the watermark is UTC; the comparison happens in the column's own (Berlin) time
    assert read_all(conn, stream, Watermark(datetime(2026, 7, 1, 10), (2,)))["id"].tolist() == [3]
    if db.backend != "sqlite":  # SQLite text holds no zone of its own: cursors compare as stored
        aware = spec(name="ev", options={"table": "ev"}, cursor="aware_ts", timezone="Europe/Berlin")
        assert read_all(conn, aware, Watermark("2026-01-15T10:00:00", (1,)))["id"].tolist() == [2]
        assert read_all(conn, aware, Watermark("2026-01-15T09:59:59", (1,)))["id"].tolist() == [1, 2]


def test_null_primary_key_is_a_malformed_record(db: Db) -> None:
    db.execute("CREATE TABLE loose (id INTEGER, name VARCHAR(10))")
    db.execute("INSERT INTO loose VALUES (1, 'a'), (NULL, 'b'), (3, 'c')")
    with pytest.raises(SourceError, match=r"stream 'loose': row \d of this read has a NULL primary key"):
        read_all(db.connector(), spec(name="loose", options={"table": "loose"}))


def test_dropped_column_says_to_validate(db: Db) -> None:
    make_orders(db, [{"id": 1}])
    conn = db.connector()
    stream = spec(fields=("region",))
    conn.schema(stream)
    db.execute("ALTER TABLE orders DROP COLUMN region")
    with pytest.raises(SourceError) as err:
        read_all(conn, stream)
    assert not err.value.transient
    assert "stream 'orders'" in str(err.value) and "okrsync validate --check-sources" in str(err.value)


def test_postgres_schema_option(db: Db) -> None:
    if db.backend != "postgresql":
        pytest.skip("schemas are a PostgreSQL notion here")
    db.execute("CREATE SCHEMA sales")
    db.execute("CREATE TABLE sales.deals (id INTEGER PRIMARY KEY, value NUMERIC(10, 3))")
    db.execute("INSERT INTO sales.deals VALUES (1, 2.125)")
    stream = spec(name="deals", options={"table": "deals", "schema": "sales"})
    conn = db.connector()
    assert conn.schema(stream).get("value") is not None
    assert read_all(conn, stream)["value"].tolist() == [Decimal("2.125")]
    with pytest.raises(ConfigError, match="no table 'deals'"):
        conn.schema(spec(name="deals", options={"table": "deals"}))


def test_a_query_stream_compares_keys_on_every_sync(tmp_path: Path) -> None:
    """Only a key comparison finds a row edited out of a query's WHERE: no cadence for query streams."""
    conn = SqlConnector("erp", {"url": "sqlite:///x.db"}, tmp_path)
    query = {"query": "SELECT * FROM orders WHERE state = 'done'"}
    assert deletion_policy(spec(options=query), conn) == ("reconcile", 0)
    assert deletion_policy(spec(options=query, deletes="none"), conn) == ("none", 0)
    assert deletion_policy(spec(reconcile_every_hours=24), conn) == ("reconcile", 24)  # a table: no filter
    with pytest.raises(ConfigError, match="found only by comparing keys: on every sync, not every 24 h"):
        deletion_policy(spec(options=query, reconcile_every_hours=24), conn)
