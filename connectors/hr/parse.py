"""Reading one HR export (CSV or XLSX) into a table of cells, or rejecting the whole file; the cells are
typed by :mod:`connectors.hr.columns`.

A file is validated from its first byte to its last before any of its rows is used: bytes that do not
decode, NUL characters, a missing declared column, rows with the wrong number of fields, malformed quoting,
a value that does not match its column's type, an empty or repeated primary key. The rejection names the
file, the line (CSV) or row (XLSX) — or the byte offset for bytes that do not decode — and the column,
never the value: HR exports are personal data (RELIABILITY rows 21 and 33).

Encodings (``encoding: auto``): a byte-order mark decides (UTF-8, UTF-16, UTF-32); otherwise the file must
be strict UTF-8 or, failing that, strict cp1252 (what Excel on Western European Windows writes). A file
that is neither is rejected at the first byte cp1252 cannot decode. No statistical detector is used:
charset_normalizer (installed with requests) reads a small German cp1252 export as cp775, turning "Müller"
into something else without a word; a declared ``encoding`` is the way for other code pages.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from okrsync.errors import ConfigError, SourceError

DELIMITERS = (",", ";", "\t", "|")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


class FileRejected(SourceError):
    """A file that cannot be used as it is (never transient: it needs fixing, or removing)."""

    def __init__(self, source: str, file: str, where: str, what: str, hint: str | None = None) -> None:
        place = f"{file}: {where}: " if where else f"{file}: "
        super().__init__(f"source {source!r}: {place}{what}",
                         hint=f"{hint or 'fix or remove the file, then run again'}; nothing from the file "
                         "was loaded, and the key results keep their last values")
        self.file, self.where = file, where


@dataclass(frozen=True)
class Table:
    """The cells of a file: its header and its non-empty rows, each with its line (or row) number."""

    header_at: int
    header: list[str]
    rows: list[tuple[int, list[Any]]]
    xlsx: bool


# -- decoding -------------------------------------------------------------------------------------


def decode(data: bytes, encoding: str, source: str, file: str) -> str:
    """The file's text, by its BOM, strict UTF-8 then strict cp1252 (``auto``) or the declared codec."""
    if encoding != "auto":
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        try:
            return data.decode(codec)
        except UnicodeDecodeError as exc:
            raise _undecodable(source, file, data, exc, f"is not valid {encoding}",
                               "re-export the file as UTF-8, or set the source's `encoding`") from None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise _undecodable(source, file, data, exc, f"starts with a {codec} byte-order mark but "
                                   f"is not valid {codec}", "re-export the file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            hint = ("set the source's `encoding` to the one the file was written in (cp1250 for Central "
                    "European Windows, cp1251 Cyrillic, mac_roman, ...), or re-export it as UTF-8")
            raise _undecodable(source, file, data, exc, f"is neither UTF-8 (byte offset {utf8.start}) nor "
                               "cp1252", hint) from None


def _undecodable(source: str, file: str, data: bytes, exc: UnicodeDecodeError, what: str,
                 hint: str) -> FileRejected:
    offset = exc.start
    line = data[:offset].decode(exc.encoding, errors="replace").count("\n") + 1
    return FileRejected(source, file, f"byte offset {offset} (line {line})",
                        f"byte 0x{data[offset]:02x}: the file {what}", hint)


# -- CSV ------------------------------------------------------------------------------------------


def csv_table(text: str, delimiter: str | None, wanted: Sequence[str], source: str, file: str) -> Table:
    """The rows of a delimited text, with the delimiter given or sniffed (the one whose header line holds
    every declared heading wins)."""
    if not text.strip():
        raise FileRejected(source, file, "", "the file is empty")
    candidates = [delimiter] if delimiter else _candidates(text)
    chosen = candidates[0]
    for d in candidates:
        header = _first_row(text, d)
        if header is not None and all(w in header for w in wanted):
            chosen = d
            break
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=chosen, quotechar='"', doublequote=True,
                        strict=True)
    header_at, header_row, rows = 0, None, []
    next_line = 1
    try:
        for row in reader:
            line, next_line = next_line, reader.line_num + 1
            if not row or all(not c.strip() for c in row):
                continue
            if header_row is None:
                header_at, header_row = line, [_heading(c) for c in row]
                continue
            rows.append((line, row))
    except csv.Error as exc:
        raise FileRejected(source, file, f"line {next_line}", f"malformed CSV ({exc})",
                           "check the quoting of that line (a quote inside a quoted value is written \"\")") \
            from None
    if header_row is None:
        raise FileRejected(source, file, "", "the file has no header line")
    return Table(header_at, header_row, rows, xlsx=False)


def _candidates(text: str) -> list[str]:
    sample = text[:65_536]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        first = next((line for line in sample.splitlines() if line.strip()), "")
        sniffed = max(DELIMITERS, key=first.count)
    return [sniffed, *(d for d in DELIMITERS if d != sniffed)]


def _first_row(text: str, delimiter: str) -> list[str] | None:
    try:
        for row in csv.reader(io.StringIO(text[:65_536], newline=""), delimiter=delimiter):
            if row and any(c.strip() for c in row):
                return [_heading(c) for c in row]
    except csv.Error:
        return None
    return None


def _heading(cell: Any) -> str:
    return "" if cell is None else str(cell).replace("\ufeff", "").strip()


# -- XLSX -----------------------------------------------------------------------------------------


def xlsx_table(data: bytes, sheet: str | int | None, source: str, file: str) -> Table:
    """The rows of one worksheet (pandas.read_excel over openpyxl), with Excel's row numbers."""
    try:
        import openpyxl  # noqa: F401 - the engine pandas needs, checked here for a clear message
    except ImportError:
        raise ConfigError(f"source {source!r}: reading {file} needs openpyxl",
                          hint="pip install openpyxl (or export the file as CSV)") from None
    import pandas as pd  # on a read only: loading a project file needs no pandas

    wanted = 0 if sheet is None else sheet
    try:
        df = pd.read_excel(io.BytesIO(data), sheet_name=wanted, header=None, dtype=object, engine="openpyxl")
    except ValueError as exc:
        if "not found" in str(exc) or "invalid" in str(exc).lower():
            names = _sheet_names(data)
            raise FileRejected(source, file, "", f"the workbook has no sheet {wanted!r} (sheets: "
                               f"{', '.join(map(repr, names))})", "set the source's `sheet`") from None
        raise FileRejected(source, file, "", "not a readable .xlsx workbook") from None
    except (zipfile.BadZipFile, KeyError, OSError, TypeError, IndexError):
        raise FileRejected(source, file, "", "not a readable .xlsx workbook",
                           "save it again from Excel as .xlsx, or export it as CSV") from None
    header_at, header, rows = 0, None, []
    for i, record in enumerate(df.itertuples(index=False, name=None), start=1):
        cells = [None if _blank(v) else v for v in record]
        if all(c is None for c in cells):
            continue
        if header is None:
            header_at, header = i, [_heading(c) for c in cells]
            continue
        rows.append((i, cells))
    if header is None:
        raise FileRejected(source, file, "", "the sheet is empty")
    while header and not header[-1]:
        header.pop()
    return Table(header_at, header, rows, xlsx=True)


def _sheet_names(data: bytes) -> list[str]:
    try:
        import openpyxl

        return list(openpyxl.load_workbook(io.BytesIO(data), read_only=True).sheetnames)
    except Exception:  # only for a message
        return []


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and v != v:
        return True
    if isinstance(v, str) and not v.strip():
        return True
    pandas = sys.modules.get("pandas")  # a NaT exists only once pandas is imported
    return pandas is not None and v is pandas.NaT
