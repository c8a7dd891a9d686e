"""The hr connector's files system: HR exports (CSV, XLSX) dropped in a folder.

Encodings, delimiters and sheets as HR teams produce them; every malformed case rejected whole, naming the
file, the line (or byte offset) and the column but never the value (RELIABILITY rows 21 and 33); and
incrementality by file: with the framework's watermark an unchanged folder reads nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from connectors.base import (
    ReportsDeletions,
    StreamSpec,
    Watermark,
    cursor_values,
    deletion_policy,
    typed_watermark,
)
from connectors.hr import HrConnector
from connectors.hr.parse import FileRejected
from okrsync.errors import ConfigError, SourceError
from okrsync.schema import FieldType, StreamSchema

T0 = 1_790_000_000_000_000_000  # a modification time (ns since the epoch), 2026-09-21
GERMAN = {
    "id": {"type": "integer", "header": "Personalnummer"},
    "first_name": {"type": "string", "header": "Vorname"},
    "last_name": {"type": "string", "header": "Nachname"},
    "hire_date": {"type": "date", "header": "Eintritt", "format": "%d.%m.%Y"},
    "termination_date": {"type": "date", "header": "Austritt", "format": "%d.%m.%Y"},
    "salary": {"type": "decimal(2)", "header": "Gehalt"},
}
GERMAN_OPTIONS = {"columns": GERMAN, "decimal_separator": ",", "thousands_separator": "."}
GERMAN_CSV = (
    "Personalnummer;Vorname;Nachname;Eintritt;Austritt;Gehalt\r\n"
    "1001;Jürgen;Müller;05.01.2024;;85.000,00\r\n"
    "1002;Seán;O'Brien;01.03.2023;31.08.2026;72.000,50\r\n"
    "1003;Zoë;Weiß;15.10.2025;;64.250,00\r\n"
)
SIMPLE = {"id": "integer", "name": "string", "department": "string", "hire_date": "date", "pay": "decimal(2)"}
SIMPLE_HEADER = "id,name,department,hire_date,pay\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "exports").mkdir()
    return tmp_path / "exports"


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Callable[..., HrConnector]]:
    opened: list[HrConnector] = []

    def make(**options: Any) -> HrConnector:
        conn = HrConnector("hrfiles", {"system": "files", "folder": "exports", **options}, tmp_path)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def put(folder: Path, name: str, data: bytes | str, at: int = 0, encoding: str = "utf-8") -> Path:
    """Write a file whose modification time is ``T0 + at`` seconds."""
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    ns = T0 + at * 1_000_000_000
    os.utime(path, ns=(ns, ns))
    return path


def spec(**more: Any) -> StreamSpec:
    base: dict[str, Any] = {"name": "staff", "source": "hrfiles", "primary_key": "id",
                            "cursor": "_file_modified"}
    return StreamSpec(**(base | more))


def read_all(conn: HrConnector, stream: StreamSpec, since: Watermark | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream, since))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def watermark(conn: HrConnector, df: pd.DataFrame, stream: StreamSpec) -> Watermark:
    """What the framework stores after committing ``df`` and hands back (a JSON round trip)."""
    last = df.tail(1)
    wm = Watermark(cursor_values(last, stream).iloc[0], tuple(last.iloc[0][k] for k in stream.primary_key))
    kept = stream.kept_fields(conn.schema(stream))
    typed = typed_watermark(wm.to_json(), stream, StreamSchema(tuple(
        f for f in conn.schema(stream).fields if f.name in kept)))
    assert typed is not None
    return typed


def rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    clean = df.astype(object).where(df.notna(), None)
    return clean.to_dict("records")


def simple_csv(*lines: str) -> str:
    return SIMPLE_HEADER + "".join(f"{line}\n" for line in lines)


# -- what HR exports look like ----------------------------------------------------------------------


def test_a_cp1252_semicolon_export_with_german_numbers_and_dates(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    put(folder, "mitarbeiter.csv", GERMAN_CSV, encoding="cp1252")  # as Excel writes it on German Windows
    conn = connect(**GERMAN_OPTIONS)
    df = read_all(conn, spec())
    got = rows(df)
    assert [(r["id"], r["first_name"], r["last_name"]) for r in got] == [
        (1001, "Jürgen", "Müller"), (1002, "Seán", "O'Brien"), (1003, "Zoë", "Weiß")]
    assert [r["salary"] for r in got] == [Decimal("85000.00"), Decimal("72000.50"), Decimal("64250.00")]
    assert [r["hire_date"] for r in got] == [date(2024, 1, 5), date(2023, 3, 1), date(2025, 10, 15)]
    assert [r["termination_date"] for r in got] == [None, date(2026, 8, 31), None]
    assert [r["_file_line"] for r in got] == [2, 3, 4]
    assert {r["_file_name"] for r in got} == {"mitarbeiter.csv"}
    assert len(got[0]["_file_sha256"]) == 64
    assert got[0]["_file_modified"] == datetime(2026, 9, 21, 14, 13, 20)  # T0, naive UTC
    types = {f.name: (f.type, f.scale) for f in conn.schema(spec()).fields}
    assert types["salary"] == (FieldType.DECIMAL, 2) and types["_file_modified"] == (FieldType.DATETIME, None)


def test_a_utf8_export_with_a_byte_order_mark(folder: Path, connect: Callable[..., HrConnector]) -> None:
    text = simple_csv("1,Zoë Ünal,Sales,2026-10-01,51000.00", '2,"Müller, Anna",People,2025-02-03,')
    put(folder, "staff.csv", b"\xef\xbb\xbf" + text.encode())
    got = rows(read_all(connect(columns=SIMPLE), spec()))
    assert [(r["id"], r["name"], r["pay"]) for r in got] == [
        (1, "Zoë Ünal", Decimal("51000.00")), (2, "Müller, Anna", None)]


def test_a_utf16_tab_separated_export(folder: Path, connect: Callable[..., HrConnector]) -> None:
    text = SIMPLE_HEADER.replace(",", "\t") + "7\tSøren\tFinance\t2024-06-30\t70000\n"
    put(folder, "staff.txt", text.encode("utf-16"))  # Excel's "Unicode text": UTF-16 with a BOM, tabs
    got = rows(read_all(connect(columns=SIMPLE, pattern="*.txt"), spec()))
    assert [(r["id"], r["name"], r["pay"]) for r in got] == [(7, "Søren", Decimal("70000.00"))]


def test_an_xlsx_export_on_a_named_sheet(folder: Path, connect: Callable[..., HrConnector]) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active["A1"] = "exported by the HR system"
    ws = wb.create_sheet("Staff")
    ws.append(["id", "name", "department", "hire_date", "pay", "comment"])
    ws.append([11, "Małgorzata Zieliński", "Engineering", datetime(2025, 4, 1), 91000.5, None])
    ws.append([None, None, None, None, None, None])  # an empty row in the middle
    ws.append(["12", "O'Brien", None, date(2026, 9, 1), 0.1 + 0.2, "note"])  # a text id, a float artefact
    wb.save(folder / "staff.xlsx")
    (folder / "~$staff.xlsx").write_bytes(b"lock")  # Excel's lock file is ignored
    conn = connect(columns=SIMPLE, pattern="*.xlsx", sheet="Staff")
    got = rows(read_all(conn, spec()))
    assert [(r["id"], r["name"], r["department"], r["hire_date"], r["pay"]) for r in got] == [
        (11, "Małgorzata Zieliński", "Engineering", date(2025, 4, 1), Decimal("91000.50")),
        (12, "O'Brien", None, date(2026, 9, 1), Decimal("0.30"))]
    assert [r["_file_line"] for r in got] == [2, 4]  # Excel's row numbers


def test_naive_datetimes_are_in_the_stream_timezone(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    put(folder, "moves.csv", "id,moved_at\n1,2026-10-01 09:30\n2,2026-10-01T09:30:00Z\n")
    conn = connect(columns={"id": "integer", "moved_at": "datetime"})
    got = rows(read_all(conn, spec(timezone="Europe/Berlin")))
    assert [r["moved_at"] for r in got] == [datetime(2026, 10, 1, 7, 30), datetime(2026, 10, 1, 9, 30)]


# -- malformed files are rejected whole, naming file, line and column (RELIABILITY row 21) ----------


BAD_CSV: list[tuple[str, bytes, dict[str, Any], str]] = [
    ("undecodable bytes",
     b"id,name,department,hire_date,pay\n1,Ann,Sales,2026-01-01,1.00\n2,\x81\x9d,Sales,2026-01-01,1.00\n",
     {}, r"staff\.csv: byte offset 63 \(line 3\): byte 0x81: the file is neither UTF-8 \(byte offset 63\)"),
    ("not the declared encoding",
     simple_csv("1,Jürgen,Sales,2026-01-01,1.00").encode("cp1252"), {"encoding": "utf-8"},
     r"staff\.csv: byte offset 36 \(line 2\): byte 0xfc: the file is not valid utf-8"),
    ("a NUL byte",
     simple_csv("1,Ann,Sales,2026-01-01,1.00", "2,Bo\x00b,Sales,2026-01-01,1.00").encode(), {},
     r"staff\.csv: line 3, column 'name': a NUL byte"),
    ("a missing declared column",
     b"id,name,hire_date,pay\n1,Ann,2026-01-01,1.00\n", {},
     r"staff\.csv: line 1, column 'department': the declared column is missing"),
    ("a repeated id",
     simple_csv("1,Ann,Sales,2026-01-01,1.00", "2,Bob,Sales,2026-01-01,1.00", "1,Cy,Sales,2026-01-01,1.00")
     .encode(), {}, r"staff\.csv: line 4: the primary key \(id\) repeats line 2"),
    ("an empty id",
     simple_csv("1,Ann,Sales,2026-01-01,1.00", ",Bob,Sales,2026-01-01,1.00").encode(), {},
     r"staff\.csv: line 3: the primary key \(id\) is empty"),
    ("a date that is not one",
     simple_csv("1,Ann,Sales,2026-01-01,1.00", "2,Bob,Sales,01/02/2026,1.00").encode(), {},
     r"staff\.csv: line 3, column 'hire_date': not a date \(YYYY-MM-DD\)"),
    ("an impossible date",
     simple_csv("1,Ann,Sales,2026-02-30,1.00").encode(), {},
     r"staff\.csv: line 2, column 'hire_date': not a date"),
    ("a salary with too many places",
     simple_csv("1,Ann,Sales,2026-01-01,98765.432").encode(), {},
     r"staff\.csv: line 2, column 'pay': has more than 2 decimal places"),
    ("a localised number in a plain column",
     simple_csv("1,Ann,Sales,2026-01-01,\"98.765,43\"").encode(), {},
     r"staff\.csv: line 2, column 'pay': not a decimal number with at most 2 places"),
    ("not a number",
     simple_csv("x1,Ann,Sales,2026-01-01,1.00").encode(), {},
     r"staff\.csv: line 2, column 'id': not a whole number"),
    ("a cut-off line",
     (simple_csv("1,Ann,Sales,2026-01-01,1.00") + "2,Bob,Sal").encode(), {},
     r"staff\.csv: line 3: 3 fields where the header has 5"),
    ("an unclosed quote",
     (simple_csv("1,Ann,Sales,2026-01-01,1.00") + '2,"Bob,Sales,2026-01-01,1.00\n').encode(), {},
     r"staff\.csv: line 3: malformed CSV"),
    ("an empty file", b"", {}, r"staff\.csv: the file is empty"),
]


@pytest.mark.parametrize(("case", "data", "options", "message"), BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_a_malformed_csv_is_rejected_before_any_row(
    folder: Path, connect: Callable[..., HrConnector], case: str, data: bytes, options: dict[str, Any],
    message: str,
) -> None:
    put(folder, "staff.csv", data)
    conn = connect(columns=SIMPLE, **options)
    rows_read = conn.read(spec(), None)
    with pytest.raises(FileRejected, match=message) as exc:
        next(rows_read)  # the very first batch fails: nothing of the file was yielded
    assert not exc.value.transient and exc.value.file == "staff.csv"
    assert "nothing from the file was loaded" in (exc.value.hint or "")
    with pytest.raises(FileRejected):
        list(conn.keys(spec()))


def test_a_rejection_never_shows_the_value(folder: Path, connect: Callable[..., HrConnector]) -> None:
    put(folder, "staff.csv", simple_csv("1,Canary Person,Sales,2026-01-01,123456.789"))
    with pytest.raises(FileRejected) as exc:
        read_all(connect(columns=SIMPLE), spec())
    for text in (str(exc.value), repr(exc.value)):
        assert "123456" not in text and "Canary" not in text
    put(folder, "staff.csv", simple_csv("1,Canary Person,Sales,31.12.2025,1.00"))
    with pytest.raises(FileRejected) as exc:
        read_all(connect(columns=SIMPLE | {"hire_date": {"type": "date", "format": "%Y-%m-%d"}}), spec())
    assert "31.12" not in str(exc.value) and "line 2, column 'hire_date'" in str(exc.value)


def test_a_bad_xlsx_value_names_row_column_and_cell(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "name", "department", "hire_date", "pay"])
    ws.append([1, "Ann", "Sales", datetime(2026, 1, 1), 1])
    ws.append([2, "Bob", "Sales", "soon", 2])
    wb.save(folder / "staff.xlsx")
    conn = connect(columns=SIMPLE, pattern="*.xlsx")
    with pytest.raises(FileRejected, match=r"staff\.xlsx: row 3, column 'hire_date' \(cell D3\): not a date"):
        next(conn.read(spec(), None))
    no_sheet = r"staff\.xlsx: the workbook has no sheet 'People' \(sheets: 'Sheet'\)"
    with pytest.raises(FileRejected, match=no_sheet):
        next(connect(columns=SIMPLE, pattern="*.xlsx", sheet="People").read(spec(), None))
    (folder / "staff.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(FileRejected, match=r"staff\.xlsx: not a readable \.xlsx workbook"):
        next(conn.read(spec(), None))


def test_old_excel_files_are_refused_with_a_way_out(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    put(folder, "staff.xls", b"\xd0\xcf\x11\xe0")
    with pytest.raises(FileRejected, match=r"\.xls\) are not read") as exc:
        next(connect(columns=SIMPLE, pattern="staff.*").read(spec(), None))
    assert ".xlsx or .csv" in (exc.value.hint or "")


def test_an_empty_snapshot_is_refused_but_an_empty_increment_is_fine(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    put(folder, "staff.csv", SIMPLE_HEADER)
    with pytest.raises(FileRejected, match="no rows: as a snapshot it would delete every record"):
        list(connect(columns=SIMPLE).keys(spec()))
    assert read_all(connect(columns=SIMPLE, mode="append"), spec()).empty


def test_in_append_mode_a_bad_increment_stops_everything_before_any_row(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    put(folder, "a.csv", simple_csv("1,Ann,Sales,2026-01-01,1.00"), at=0)
    put(folder, "b.csv", simple_csv("2,Bob,Sales,2026-01-01,oops"), at=10)
    with pytest.raises(FileRejected, match=r"b\.csv: line 2, column 'pay'"):
        next(connect(columns=SIMPLE, mode="append").read(spec(), None))


# -- incrementality: the framework's watermark skips what was read ----------------------------------


def test_snapshots_read_only_the_newest_file_and_only_what_changed(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    conn = connect(columns=SIMPLE)
    stream = spec()
    put(folder, "2026-09.csv", simple_csv("1,Ann,Sales,2026-01-01,1.00", "2,Bob,Sales,2026-01-01,2.00",
                                          "3,Cy,People,2026-02-01,3.00"), at=0)
    first = read_all(conn, stream)
    assert list(first["id"]) == [1, 2, 3]
    wm = watermark(conn, first, stream)

    assert read_all(conn, stream, wm).empty  # an unchanged folder re-read yields nothing new
    shutil.copy(folder / "2026-09.csv", folder / "2026-09 (copy).csv")
    os.utime(folder / "2026-09 (copy).csv", ns=(T0 + 5 * 10**9,) * 2)
    assert read_all(conn, stream, wm).empty  # newer, but the same bytes as the file read last

    # the October snapshot: Bob moves, Cy left, Dee joined
    put(folder, "2026-10.csv", simple_csv("1,Ann,Sales,2026-01-01,1.00", "2,Bob,Finance,2026-01-01,2.00",
                                          "4,Dee,Sales,2026-10-01,4.00"), at=100)
    second = read_all(conn, stream, wm)
    assert [(r["id"], r["department"], r["_file_name"]) for r in rows(second)] == [
        (2, "Finance", "2026-10.csv"), (4, "Sales", "2026-10.csv")]
    assert sorted(pd.concat(list(conn.keys(stream)))["id"]) == [1, 2, 4]  # Cy is gone: reconciliation
    wm2 = watermark(conn, second, stream)
    assert read_all(conn, stream, wm2).empty

    # the same data saved again (other line endings): different bytes, nothing changed
    put(folder, "2026-10b.csv", (folder / "2026-10.csv").read_text().replace("\n", "\r\n"), at=200)
    assert read_all(conn, stream, wm2).empty
    # if the file read last is gone, the newest one is read whole
    (folder / "2026-10.csv").unlink()
    assert list(read_all(conn, stream, wm2)["id"]) == [1, 2, 4]


def test_increments_are_read_once_in_modification_order(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    conn = connect(columns=SIMPLE, mode="append")
    stream = spec()
    assert conn.default_deletes == "none"  # increments never delete
    put(folder, "b-first.csv", simple_csv("1,Ann,Sales,2026-01-01,1.00", "2,Bob,Sales,2026-01-01,2.00"), at=0)
    put(folder, "a-second.csv", simple_csv("2,Bob,Finance,2026-01-01,2.50", "3,Cy,People,2026-02-01,3.00"),
        at=10)
    first = read_all(conn, stream)
    assert [(r["id"], r["department"], r["_file_name"]) for r in rows(first)] == [
        (1, "Sales", "b-first.csv"), (2, "Finance", "a-second.csv"), (3, "People", "a-second.csv")]
    keys = list(zip(first["_file_modified"], first["id"], strict=True))
    assert keys == sorted(keys)  # ordered by (cursor, primary key)
    wm = watermark(conn, first, stream)
    assert read_all(conn, stream, wm).empty

    shutil.copy(folder / "b-first.csv", folder / "b-first-again.csv")  # an old increment dropped again
    os.utime(folder / "b-first-again.csv", ns=(T0 + 20 * 10**9,) * 2)
    assert read_all(conn, stream, wm).empty  # its sha256 was read already: it would undo Bob's move

    put(folder, "c-third.csv", simple_csv("4,Dee,Sales,2026-10-01,4.00"), at=30)
    assert list(read_all(conn, stream, wm)["id"]) == [4]
    assert sorted(pd.concat(list(conn.keys(stream)))["id"]) == [1, 2, 3, 4]


def test_a_stream_without_cursor_reads_the_newest_file_every_time(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    put(folder, "s.csv", simple_csv("1,Ann,Sales,2026-01-01,1.00"))
    stream = spec(cursor=[], fields=["name"])
    df = read_all(connect(columns=SIMPLE), stream)
    assert list(df.columns) == ["id", "name"] and len(df) == 1


def test_batches(folder: Path, connect: Callable[..., HrConnector]) -> None:
    lines = [f"{i},Person {i},Sales,2026-01-01,{i}.00" for i in range(1, 2501)]
    put(folder, "big.csv", simple_csv(*lines))
    frames = list(connect(columns=SIMPLE).read(spec(batch_size=1000), None))
    assert [len(f) for f in frames] == [1000, 1000, 500]
    assert list(pd.concat(frames)["id"]) == list(range(1, 2501))


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"columns": {"id": "strng"}}, "'strng' is not a column type"),
    ({"columns": {"id": "decimal(x)"}}, "is not a column type"),
    ({"columns": {"id": "integer(2)"}}, "is not a column type"),
    ({"columns": {"_file_name": "string"}}, "is a column okrsync adds itself"),
    ({"columns": {"first name": "string"}}, "give the file's heading as `header:`"),
    ({"columns": {"a": "string", "b": {"type": "string", "header": "a"}}},
     "two columns read the same heading"),
    ({"columns": {"id": {"type": "integer", "format": "%d"}}}, "format applies to date and datetime"),
    ({"columns": {}}, "columns"),
    ({"encoding": "klingon"}, "'klingon' is not a known encoding"),
    ({"delimiter": ";;"}, "delimiter is one character"),
    ({"pattern": "../*.csv"}, "pattern is a glob inside the folder"),
    ({"pattern": "/etc/*"}, "pattern is a glob inside the folder"),
    ({"mode": "snap"}, "mode"),
    ({"api_key_env": "X"}, "'api_key_env' is a key of system bamboohr, not files"),
    ({"delimiter": ",", "decimal_separator": ","}, "delimiter and decimal_separator must differ"),
])
def test_bad_options_are_config_errors(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    base = {"system": "files", "folder": "exports", "columns": SIMPLE}
    with pytest.raises(ConfigError, match=message):
        HrConnector("hrfiles", base | options, tmp_path)


def test_bad_streams_are_config_errors(folder: Path, connect: Callable[..., HrConnector]) -> None:
    conn = connect(columns=SIMPLE)
    with pytest.raises(ConfigError, match="declares no column 'employee_id'"):
        conn.schema(spec(primary_key="employee_id"))
    with pytest.raises(ConfigError, match="did you mean 'hire_date'"):
        conn.schema(spec(fields=["hiredate"]))
    with pytest.raises(ConfigError, match="the cursor of a files stream is _file_modified"):
        conn.schema(spec(cursor="hire_date"))
    with pytest.raises(ConfigError, match="cannot be part of the primary key"):
        conn.schema(spec(primary_key=["id", "_file_sha256"]))
    with pytest.raises(ConfigError, match="`report` is for BambooHR sources"):
        conn.schema(spec(options={"report": "employees"}))
    with pytest.raises(ConfigError, match="goes in the source block"):
        conn.schema(spec(options={"pattern": "*.csv"}))
    tombstones = spec(deletes="tombstones")
    assert isinstance(conn, ReportsDeletions)
    assert deletion_policy(tombstones, conn) == ("tombstones", 0)
    with pytest.raises(ConfigError, match="by comparing keys, not by tombstones"):
        list(conn.deleted(tombstones, None))
    assert deletion_policy(spec(), conn) == ("reconcile", 0)


def test_the_check_names_a_missing_folder_or_an_empty_one(
    folder: Path, connect: Callable[..., HrConnector]
) -> None:
    with pytest.raises(SourceError, match=r"no file in .*exports matches '\*\.csv'"):
        connect(columns=SIMPLE).check()
    with pytest.raises(SourceError, match=r"no file in .*exports matches"):
        list(connect(columns=SIMPLE).read(spec(), None))  # an empty folder must not delete everyone
    with pytest.raises(SourceError, match="folder .*elsewhere does not exist"):
        connect(columns=SIMPLE, folder="elsewhere").check()
    put(folder, "s.csv", simple_csv("1,Ann,Sales,2026-01-01,1.00"))
    connect(columns=SIMPLE).check()
    assert connect(columns=SIMPLE).record_url(spec(), "1") is None
    assert connect(columns=SIMPLE).api_calls is None


def test_no_personal_data_in_logs_or_errors(
    folder: Path, connect: Callable[..., HrConnector], caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("", "connectors", "okrsync", "charset_normalizer"):
        caplog.set_level(logging.DEBUG, logger=name or None)
    put(folder, "ok.csv", GERMAN_CSV, encoding="cp1252", at=0)
    conn = connect(**GERMAN_OPTIONS)
    wm = watermark(conn, read_all(conn, spec()), spec())
    put(folder, "bad.csv", (GERMAN_CSV + "1004;Canaryvorname;Canarynachname;01.01.2026;;12.345,678\r\n")
        .encode("cp1252") + b"\x81", at=10)
    errors = []
    for options in (GERMAN_OPTIONS, GERMAN_OPTIONS | {"encoding": "cp1252"}):
        with pytest.raises(FileRejected) as exc:
            read_all(connect(**options), spec(), wm)
        errors.append(f"{exc.value}\n{exc.value!r}")
    printed = capsys.readouterr()
    assert "byte 0x81" in errors[0] and "line 5, column 'Gehalt'" not in errors[0]
    for secret in ("Müller", "O'Brien", "Jürgen", "85.000", "85000", "72000", "Canaryvorname",
                   "Canarynachname", "12.345", "12345"):
        assert secret not in caplog.text and secret not in printed.out + printed.err
        assert all(secret not in e for e in errors)


# -- through the project file and the store (kind: hr, registered in pyproject.toml) -----------------


def test_an_unchanged_folder_syncs_nothing_and_a_new_snapshot_only_its_changes(
    folder: Path, tmp_path: Path
) -> None:
    from flows import compute, pipeline
    from okr_store.store import Store
    from okrsync.project import load_project

    doc = {
        "version": 1,
        "settings": {"timezone": "Europe/Berlin", "default_period": "2026-Q4"},
        "sources": {"hrfiles": {"kind": "hr", "system": "files", "folder": "exports", "pattern": "*.csv",
                                **GERMAN_OPTIONS}},
        "streams": {"staff": {"source": "hrfiles", "primary_key": "id", "cursor": "_file_modified",
                              "fields": ["hire_date", "termination_date", "salary"],
                              "sensitive": ["salary"]}},
        "metrics": {"hires": {"stream": "staff", "measure": "count", "time_field": "hire_date"}},
        "objectives": [{"id": "O1", "title": "Grow the team", "key_results": [
            {"id": "KR-HIRES", "title": "Hires this quarter", "metric": "hires", "target": 5}]}],
    }
    (tmp_path / "okrsync.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    project = load_project(tmp_path / "okrsync.yaml")
    store = Store(project.store_url())
    compute.register_okrs(project, store)
    as_of = datetime(2026, 12, 31, 12, 0)

    def run() -> tuple[Any, Any]:
        run_id = store.start_run(as_of, None)
        connector = project.connector("hrfiles")
        try:
            counts = pipeline.sync_stream(project, store, connector, run_id, "staff")
        finally:
            connector.close()
        values, held = compute.compute_values(project, store, run_id, None, as_of, {})
        store.finish_run(run_id, "succeeded", None)
        assert held == {}
        return counts, values["KR-HIRES"].value

    put(folder, "2026-10.csv", GERMAN_CSV, encoding="cp1252", at=0)
    first, value = run()
    assert (first.rows_read, first.inserted) == (3, 3) and value == 0  # nobody joined in 2026-Q4
    again, value = run()
    assert (again.rows_read, again.inserted, again.updated, again.deleted) == (0, 0, 0, 0) and value == 0
    # the November snapshot corrects Zoë's hire date (October 2026) and no longer lists Seán
    november = GERMAN_CSV.replace("15.10.2025", "15.10.2026")
    november = november.replace("1002;Seán;O'Brien;01.03.2023;31.08.2026;72.000,50\r\n", "")
    put(folder, "2026-11.csv", november, encoding="cp1252", at=100)
    third, value = run()
    assert (third.rows_read, third.inserted, third.updated, third.deleted) == (1, 0, 1, 1) and value == 1
    last, value = run()
    assert last.rows_read == 0


def test_a_file_overwritten_in_place_without_cursor_versions_only_real_changes(
    folder: Path, tmp_path: Path
) -> None:
    from flows import compute, pipeline
    from okr_store.store import Store
    from okrsync.project import load_project

    doc = {
        "version": 1,
        "settings": {"timezone": "UTC", "default_period": "2026-Q4"},
        "sources": {"hrfiles": {"kind": "hr", "system": "files", "folder": "exports",
                                "pattern": "employees.csv", "columns": SIMPLE}},
        "streams": {"staff": {"source": "hrfiles", "primary_key": "id",
                              "fields": ["department", "hire_date", "pay"]}},
        "metrics": {"hires": {"stream": "staff", "measure": "count", "time_field": "hire_date"}},
        "objectives": [{"id": "O1", "title": "Grow", "key_results": [
            {"id": "KR-HIRES", "title": "Hires", "metric": "hires", "target": 5}]}],
    }
    (tmp_path / "okrsync.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    project = load_project(tmp_path / "okrsync.yaml")
    store = Store(project.store_url())
    compute.register_okrs(project, store)

    def sync() -> Any:
        run_id = store.start_run(datetime(2026, 12, 31), None)
        connector = project.connector("hrfiles")
        try:
            return pipeline.sync_stream(project, store, connector, run_id, "staff")
        finally:
            connector.close()
            store.finish_run(run_id, "succeeded", None)

    people = [f"{i},Person {i},Sales,2026-01-01,{i}.00" for i in range(1, 51)]
    put(folder, "employees.csv", simple_csv(*people), at=0)
    assert sync().inserted == 50
    put(folder, "employees.csv", simple_csv(*people), at=100)  # the nightly export, unchanged
    again = sync()
    assert (again.rows_read, again.inserted, again.updated, again.deleted) == (50, 0, 0, 0)
    people[4] = "5,Person 5,Finance,2026-01-01,5.00"
    put(folder, "employees.csv", simple_csv(*people[:-1]), at=200)  # one moved, one left
    third = sync()
    assert (third.inserted, third.updated, third.deleted) == (0, 1, 1)
