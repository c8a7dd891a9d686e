"""CSV cells a spreadsheet opens as data (OWASP, CSV injection): text that starts like a formula gets a
leading single quote; numbers, dates and empty cells are written as they are."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.definition import KrDefinition, PeriodSpec
from metrics.spec import SimpleMetric
from okr_store.lineage import Drill, DrillRecord
from okr_store.queries import StoredValue
from okrsync.access import RecordLinks
from okrsync.drill_export import Links, Page, cell, csv_chunks, csv_columns, write_json
from okrsync.project import load_project
from okrsync.render import drill_json, plain


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example/","Click me")', '\'=HYPERLINK("http://evil.example/","Click me")'),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-5", "'-5"),  # text, even when it reads as a number: OWASP quotes it
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("EMEA", "EMEA"),
        ("a=b", "a=b"),
        ("", ""),
        (Decimal("-5"), "-5"),  # numbers stay numbers
        (Decimal("-12.50"), "-12.50"),
        (-3, "-3"),
        (-0.5, "-0.5"),
        (None, ""),
        (date(2026, 10, 1), "2026-10-01"),
        (datetime(2026, 10, 1, 8, 30), "2026-10-01T08:30:00Z"),
    ],
)
def test_a_cell_is_quoted_only_when_it_is_text_starting_like_a_formula(value: object, written: str) -> None:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerow([cell(value)])
    (row,) = csv.reader(io.StringIO(buf.getvalue(), newline=""))
    assert row == [written]


@given(st.text())
def test_no_text_cell_starts_like_a_formula_and_its_text_is_kept(text: str) -> None:
    out = cell(text)
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert out in (text, "'" + text)


# ---- the streamed JSON is render.drill_json's, page after page ---------------------------------------
def _drill(records: list[DrillRecord]) -> Drill:
    period = PeriodSpec(label="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31), timezone="UTC")
    metric = SimpleMetric(name="revenue", stream="orders", measure="sum", field="amount")
    v = StoredValue(7, "KR-REV", Decimal("10.50"), None, len(records), Decimal(0), Decimal(100), None, None,
                    Decimal(50), "on_track", datetime(2026, 12, 1, 9), datetime(2026, 12, 1, 9, 5), "h",
                    {"orders": 3}, "run-1", None)
    d = KrDefinition(kr_id="KR-REV", metric=metric, period=period)
    return Drill(v, d, len(records), Decimal("10.50"), None, records, {"orders": ["amount", "at", "note"]})


def test_write_json_streams_exactly_what_drill_json_holds() -> None:
    """Decimals, times, dates, bytes, None, masked text and links, over pages (one of them empty), give
    the same JSON as render.drill_json of every record at once."""
    recs = [DrillRecord("erp", "orders", str(i), Decimal(i) / 4, None if i % 2 else Decimal(1), "summed",
                        {"amount": Decimal("12.50") * i, "at": datetime(2026, 11, i + 1, 8, 30),
                         "day": date(2026, 11, i + 1), "raw": bytes([i, 255]),
                         "note": None if i % 3 else "=1+1", "who": "•••" if i % 2 else "Ana Lima"})
            for i in range(7)]
    links: Links = {("orders", str(i)): f"https://erp.example/orders/{i}" for i in range(0, 7, 2)}
    head = _drill(recs)
    pages: list[Page] = [(recs[:3], links), ([], {}), (recs[3:], links)]
    out = io.StringIO()
    write_json(out, replace(head, records=[]), pages)
    assert json.loads(out.getvalue()) == json.loads(json.dumps(drill_json(head, links), default=plain))
    empty = io.StringIO()
    write_json(empty, replace(head, records=[]), [([], {})])
    assert json.loads(empty.getvalue())["records"] == []


def test_csv_chunks_write_every_cell_as_cell_makes_it() -> None:
    """The CSV spells cell() inline for speed: it must write exactly what cell() makes of each value,
    text that starts like a formula included (a record id, a masked or a plain field)."""
    recs = [DrillRecord("erp", "orders", rid, Decimal("-2.50"), None, "summed",
                        {"amount": Decimal("-12.50"), "at": datetime(2026, 11, 2, 8, 30),
                         "day": date(2026, 11, 2), "raw": b"\x01\xff", "note": note, "n": -3, "ok": True,
                         "x": -0.5})
            for rid, note in (("=1+1", "@SUM(A1)"), ("7", None), ("-8", "EMEA"))]
    head = replace(_drill(recs), columns={"orders": ["amount", "at", "day", "raw", "note", "n", "ok", "x"]})
    got = "".join(csv_chunks(head, [(recs[:1], {}), ([], {}), (recs[1:], {})]))
    want = io.StringIO()
    w = csv.writer(want)
    names = csv_columns(head)[6:]
    w.writerow(csv_columns(head))
    for r in recs:
        w.writerow([cell(x) for x in (r.source, r.stream, r.record_id, r.contribution,
                                      r.denominator_contribution, r.role, *(r.fields[n] for n in names))])
    assert got == want.getvalue()
    assert "'=1+1" in got and "'@SUM(A1)" in got and "'-8" in got and "-12.50" in got


def test_record_links_make_each_sources_connector_once_for_every_page(tmp_path: Path) -> None:
    """An export asks for links page after page: the source's connector is made on the first and closed
    once, at the end (it was made and closed on every page)."""
    (tmp_path / "erp.db").touch()
    (tmp_path / "okrsync.yaml").write_text(
        "version: 1\nsources:\n  erp: {kind: sql, url: 'sqlite:///erp.db'}\n"
        "streams:\n  orders: {source: erp, table: orders, primary_key: id, cursor: write_date}\n")
    project = load_project(tmp_path / "okrsync.yaml")

    class Tracked:
        """The project's real connector, its closing noted."""

        def __init__(self, name: str) -> None:
            self.connector = project.connector(name)

        def record_url(self, spec: Any, record_id: str) -> str | None:
            return self.connector.record_url(spec, record_id)

        def close(self) -> None:
            closed.append(self)
            self.connector.close()

    class Counted:
        streams = project.streams

        def connector(self, name: str) -> Tracked:
            made.append(Tracked(name))
            return made[-1]

    made: list[Tracked] = []
    closed: list[Tracked] = []
    page = _drill([DrillRecord("erp", "orders", "1", Decimal(1), None, "summed", {})])
    with RecordLinks(Counted()) as links:
        for _ in range(3):
            assert links(page) == {("orders", "1"): None}
        assert len(made) == 1 and not closed
    assert closed == made
