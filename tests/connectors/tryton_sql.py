"""The SQL connector against a real ERP's tables: Tryton 8.2 (sale, stock, account_invoice).

The databases are built through Tryton's own API (tests/erp/tryton_build.py), on SQLite and on
PostgreSQL, once per session; each test reads a private copy. Expected values come from Tryton (the
build's summary, computed with Tryton's model reads, or Tryton's API changing a record), never from
okrsync.

Two things of Tryton's the connector must handle: on SQLite, Tryton stores NUMERIC values as bytes (its
sqlite3 adapter writes ``str(Decimal).encode()``), read as exact decimals; and
``account_invoice.invoice_report_cache`` (BLOB / bytea: the rendered invoice, a zip file) is kept as the
SHA-256 of its bytes.

The cases live here; ``test_tryton_sql_postgresql.py`` and ``test_tryton_sql_sqlite.py`` collect them,
each with its own ``tryton_db`` fixture, so pytest-xdist (``--dist loadfile``) can run the two backends
on different workers.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from connectors.base import StreamSpec, Watermark, cursor_values
from connectors.sql import SqlConnector
from okrsync.schema import FieldType
from tests.erp.fixtures import TEST_TODAY, TrytonDb

T = FieldType
BOOKED = ("confirmed", "processing", "done")


def spec(table: str, fields: list[str] | None = None, **kw: Any) -> StreamSpec:
    return StreamSpec(name=table, source="tryton", primary_key="id", cursor=["write_date", "create_date"],
                      fields=fields, timezone="UTC", options={"table": table}, **kw)


def connector(db: TrytonDb, tmp_path: Path) -> SqlConnector:
    return SqlConnector("tryton", {"url": db.url}, tmp_path)


def read_all(conn: SqlConnector, stream: StreamSpec, since: Watermark | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream, since))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def watermark(df: pd.DataFrame, stream: StreamSpec) -> Watermark:
    """Where the pipeline would stand after committing ``df`` (its last row)."""
    return Watermark(cursor_values(df.tail(1), stream).iloc[0], (int(df["id"].iloc[-1]),))


def test_tryton_columns_have_their_types(
    tryton_db: TrytonDb, tmp_path: Path,
) -> None:
    expected = {
        "sale_sale": {"id": T.INTEGER, "number": T.STRING, "party": T.INTEGER, "state": T.STRING,
                      "sale_date": T.DATE, "untaxed_amount_cache": T.DECIMAL, "total_amount_cache": T.DECIMAL,
                      "to_invoice": T.BOOLEAN, "write_date": T.DATETIME, "create_date": T.DATETIME},
        "sale_line": {"sale": T.INTEGER, "product": T.INTEGER, "quantity": T.FLOAT, "unit_price": T.DECIMAL,
                      "type": T.STRING},
        "stock_shipment_out": {"planned_date": T.DATE, "effective_date": T.DATE, "state": T.STRING,
                               "customer": T.INTEGER},
        "account_invoice": {"invoice_date": T.DATE, "untaxed_amount_cache": T.DECIMAL, "type": T.STRING},
        "party_party": {"name": T.STRING, "code": T.STRING, "active": T.BOOLEAN},
    }
    with closing(connector(tryton_db, tmp_path)) as conn:
        for table, types in expected.items():
            schema = conn.schema(spec(table))
            assert {n: schema.get(n).type for n in types} == types, table  # type: ignore[union-attr]
            # Tryton declares NUMERIC without a scale: okrsync keeps 6 places (declared scale: none)
            assert all(f.scale == 6 for f in schema.fields if f.type is T.DECIMAL), table


SALE_FIELDS = ["number", "party", "state", "sale_date", "untaxed_amount_cache", "total_amount_cache",
               "tax_amount_cache"]


def test_sale_amounts_are_exact_decimals(
    tryton_db: TrytonDb, tmp_path: Path,
) -> None:
    with closing(connector(tryton_db, tmp_path)) as conn:
        sales = read_all(conn, spec("sale_sale", SALE_FIELDS))
        lines = read_all(conn, spec("sale_line", ["sale", "quantity", "unit_price", "type"]))
        invoices = read_all(conn, spec("account_invoice", ["type", "state", "untaxed_amount_cache"]))
    booked = sales[sales["state"].isin(BOOKED)]
    assert all(type(v) is Decimal for v in booked["untaxed_amount_cache"])
    # Tryton computes amounts on the fly until a sale is confirmed: its caches are NULL before
    assert sales[sales["state"].isin(["draft", "quotation"])]["untaxed_amount_cache"].isna().all()
    top = tryton_db.summary["top_customer"]
    assert sum(booked["untaxed_amount_cache"], Decimal(0)) == Decimal(top["total_revenue"])
    by_party = booked.groupby("party")["untaxed_amount_cache"].sum()
    assert by_party.idxmax() == top["party_id"] and by_party.max() == Decimal(top["revenue"])
    # Arrow-backed decimal128(38, 2) columns: a sum of two needs 39 digits, so add them as Python Decimals
    untaxed, tax = booked["untaxed_amount_cache"].astype(object), booked["tax_amount_cache"].astype(object)
    assert (untaxed + tax == booked["total_amount_cache"].astype(object)).all()
    # sale_line has no amount: quantity × unit_price adds up to the sale's untaxed amount
    merged = lines[lines["type"] == "line"].assign(
        amount=lambda d: [Decimal(repr(q)) * p for q, p in zip(d["quantity"], d["unit_price"], strict=True)])
    per_sale = merged.groupby("sale")["amount"].sum()
    for sale_id, untaxed in zip(booked["id"], booked["untaxed_amount_cache"], strict=True):
        assert per_sale[sale_id].quantize(Decimal("0.01")) == untaxed
    out = invoices[(invoices["type"] == "out") & invoices["state"].isin(["posted", "paid"])]
    assert all(type(v) is Decimal and v > 0 for v in out["untaxed_amount_cache"])


def test_dates_stamps_and_flags_read_as_their_types(
    tryton_db: TrytonDb, tmp_path: Path,
) -> None:
    with closing(connector(tryton_db, tmp_path)) as conn:
        sales = read_all(conn, spec("sale_sale", ["number", "party", "state", "sale_date", "to_invoice"]))
        shipments = read_all(conn, spec("stock_shipment_out", ["state", "planned_date", "origin_planned_date",
                                                               "effective_date"]))
        parties = read_all(conn, spec("party_party", ["name", "code", "active"]))
    s = tryton_db.summary
    assert dict(Counter(sales["state"])) == s["sale_states"]
    start, today = date.fromisoformat(s["start"]), TEST_TODAY
    assert all(type(d) is date and start <= d <= today for d in sales["sale_date"])
    for df in (sales, shipments, parties):
        # Arrow-backed batches (docs/connectors.md): naive UTC microseconds
        assert {str(df["write_date"].dtype), str(df["create_date"].dtype)} == {"timestamp[us][pyarrow]"}
        assert df["create_date"].notna().all()
        stamped = df["write_date"].notna()
        assert (df["write_date"][stamped] >= df["create_date"][stamped]).all()
        assert isinstance(df["create_date"].iloc[0].to_pydatetime(), datetime)
    assert str(sales["to_invoice"].dtype) == "bool[pyarrow]"
    done = shipments[shipments["state"] == "done"]
    assert len(done) == s["shipments_done"]
    assert all(type(d) is date for d in [*done["planned_date"], *done["effective_date"]])
    # late by the date first planned: Tryton's daily reschedule action moves a missed planned_date
    # (the builder runs it), keeping the first one in origin_planned_date
    due = [o if isinstance(o, date) else p for o, p in zip(done["origin_planned_date"], done["planned_date"],
                                                             strict=True)]
    assert sum(e > d for e, d in zip(done["effective_date"], due, strict=True)) == s["shipments_late"] > 0
    rescheduled = shipments[shipments["planned_date"] != shipments["origin_planned_date"]]
    assert len(rescheduled[rescheduled["origin_planned_date"].notna()]) == s["shipments_rescheduled"] > 0
    assert parties["active"].all() and len(parties) == s["customers"] + 1  # + the company's own party


def test_the_whole_invoice_table_reads(
    tryton_db: TrytonDb, tmp_path: Path,
) -> None:
    with closing(connector(tryton_db, tmp_path)) as conn:
        invoices = read_all(conn, spec("account_invoice"))  # every column, as `fields` left out does
    assert len(invoices) == sum(tryton_db.summary["invoice_states"].values())
    # the rendered invoice (BLOB/bytea) is kept as its digest, not as bytes
    digests = invoices["invoice_report_cache"].dropna()
    assert digests.str.fullmatch(r"sha256:[0-9a-f]{64}").all()


def test_incremental_read_returns_exactly_the_sale_tryton_changed(
    tryton_db: TrytonDb, tmp_path: Path,
) -> None:
    # money is left out on SQLite (see test_sale_amounts_are_exact_decimals); the cursor is what matters
    fields = ["number", "party", "state", "sale_date"] + (
        ["untaxed_amount_cache"] if tryton_db.backend == "postgresql" else [])
    stream = spec("sale_sale", fields)
    with closing(connector(tryton_db, tmp_path)) as conn:
        full = read_all(conn, stream)
        wm = watermark(full, stream)
        assert read_all(conn, stream, wm).empty
    # closed before Tryton's API opens the database (it switches SQLite to WAL mode)

    changed = tryton_db.api("advance-draft", "--day", TEST_TODAY.isoformat())  # quote, confirm, ship, invoice

    with closing(connector(tryton_db, tmp_path)) as conn:
        after = read_all(conn, stream, wm)
        again = read_all(conn, stream, watermark(after, stream))
    assert after["id"].tolist() == [changed["sale"]]
    row = after.iloc[0]
    assert (row["state"], row["sale_date"]) == ("processing", TEST_TODAY)
    assert row["write_date"] > wm.cursor
    if tryton_db.backend == "postgresql":
        assert row["untaxed_amount_cache"] == Decimal(changed["untaxed_amount"])
    assert again.empty
    before = full.set_index("id").loc[changed["sale"]]
    assert before["state"] == "draft"
