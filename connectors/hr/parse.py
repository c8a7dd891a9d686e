"""Reading one HR export (CSV or XLSX) into typed rows, or rejecting the whole file.

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
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from connectors.hr.options import ColumnSpec, HrFilesOptions
from connectors.hr.values import as_naive_utc
from okrsync.errors import ConfigError, SourceError
from okrsync.schema import FieldType

_T = FieldType
DELIMITERS = (",", ";", "\t", "|")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


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


@dataclass(frozen=True)
class Parsed:
    """A validated file: the typed values of every declared column, row by row, with line numbers."""

    columns: list[str]
    rows: list[list[Any]]
    lines: list[int]


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
    return v is pd.NaT


def _column_letter(index: int) -> str:
    letters = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters


# -- typing ---------------------------------------------------------------------------------------


def typed_rows(table: Table, options: HrFilesOptions, key: Sequence[str], tz: ZoneInfo, source: str,
               file: str) -> Parsed:
    """Every declared column of every row, typed; a FileRejected at the first problem."""
    unit = "row" if table.xlsx else "line"
    for i, heading in enumerate(table.header):
        if "\x00" in heading:
            raise _nul(source, file, unit, table.header_at, f"#{i + 1}", table.xlsx, i)
    names = list(options.columns)
    positions: list[int] = []
    for name, spec in options.columns.items():
        heading = spec.header or name
        if heading not in table.header:
            close = [h for h in table.header if h.casefold() == heading.casefold()]
            also = f" (the file has {close[0]!r})" if close else ""
            shown = ", ".join(repr(h) for h in table.header[:30] if h)
            raise FileRejected(source, file, f"{unit} {table.header_at}, column {heading!r}",
                               f"the declared column is missing{also}; the header holds {shown}",
                               "fix the export, or the source's `columns` (`header:` maps a heading to a "
                               "field)")
        if table.header.count(heading) > 1:
            raise FileRejected(source, file, f"{unit} {table.header_at}, column {heading!r}",
                               "the heading appears twice", "rename one of the columns in the export")
        positions.append(table.header.index(heading))
    converters = [_converter(spec, options, tz) for spec in options.columns.values()]
    width = len(table.header)
    key_at = [names.index(k) for k in key if k in names]
    seen: dict[tuple[Any, ...], int] = {}
    out_rows: list[list[Any]] = []
    lines: list[int] = []
    for line, cells in table.rows:
        if not table.xlsx and len(cells) != width:
            raise FileRejected(source, file, f"{unit} {line}",
                               f"{len(cells)} fields where the header has {width} (a cut-off or misquoted "
                               "line)")
        for i, cell in enumerate(cells):
            if isinstance(cell, str) and "\x00" in cell:
                heading = table.header[i] if i < width and table.header[i] else f"#{i + 1}"
                raise _nul(source, file, unit, line, heading, table.xlsx, i)
        values: list[Any] = []
        for name, spec, at, conv in zip(names, options.columns.values(), positions, converters, strict=True):
            raw = cells[at] if at < len(cells) else None
            try:
                values.append(conv(raw))
            except (ValueError, TypeError, ArithmeticError) as exc:
                why = str(exc) if isinstance(exc, _Bad) else f"not a {_kind(spec)}"
                cell = f" (cell {_column_letter(at)}{line})" if table.xlsx else ""
                raise FileRejected(source, file, f"{unit} {line}, column {spec.header or name!r}{cell}",
                                   why, "fix the value in the export, or the column's declared type") \
                    from None
        if key_at:
            pk = tuple(values[k] for k in key_at)
            if any(v is None for v in pk):
                raise FileRejected(source, file, f"{unit} {line}",
                                   f"the primary key ({', '.join(key)}) is empty")
            if pk in seen:
                raise FileRejected(source, file, f"{unit} {line}",
                                   f"the primary key ({', '.join(key)}) repeats {unit} {seen[pk]}",
                                   "an export holds each record once: fix the export")
            seen[pk] = line
        out_rows.append(values)
        lines.append(line)
    return Parsed(names, out_rows, lines)


def _nul(source: str, file: str, unit: str, line: int, heading: str, xlsx: bool, index: int) -> FileRejected:
    cell = f" (cell {_column_letter(index)}{line})" if xlsx else ""
    return FileRejected(source, file, f"{unit} {line}, column {heading!r}{cell}",
                        "a NUL byte (the export is damaged, or not a text file)")


class _Bad(ValueError):
    """A value that does not fit its column; the message describes the problem, never the value."""


def _kind(spec: ColumnSpec) -> str:
    t = spec.field_type
    if t is _T.DECIMAL:
        return "decimal number" if spec.scale is None else f"decimal number with at most {spec.scale} places"
    if t is _T.DATE:
        return f"date ({spec.format or 'YYYY-MM-DD'})"
    if t is _T.DATETIME:
        return f"date and time ({spec.format or 'ISO 8601'})"
    return {_T.INTEGER: "whole number", _T.FLOAT: "number", _T.BOOLEAN: "true/false value",
            _T.STRING: "text"}[t]


def _converter(spec: ColumnSpec, options: HrFilesOptions, tz: ZoneInfo) -> Callable[[Any], Any]:
    kind, scale, fmt = spec.field_type, spec.scale, spec.format
    number = _number_pattern(options)

    def text_of(raw: Any) -> str | None:
        text = str(raw).strip()
        return text or None

    def conv(raw: Any) -> Any:
        if raw is None:
            return None
        if isinstance(raw, str):
            stripped = text_of(raw)
            if stripped is None:
                return None
            return _from_text(stripped)
        return _from_cell(raw)

    def _from_text(text: str) -> Any:
        if kind is _T.STRING:
            return text
        if kind is _T.INTEGER:
            plain = _plain_number(text, number, options)
            if plain is None or not _INTEGER.match(plain):
                raise _Bad(f"not a {_kind(spec)}")
            return int(plain)
        if kind in (_T.DECIMAL, _T.FLOAT):
            plain = _plain_number(text, number, options)
            if plain is None:
                raise _Bad(f"not a {_kind(spec)}")
            return _decimal(Decimal(plain), scale) if kind is _T.DECIMAL else float(plain)
        if kind is _T.DATE:
            if fmt:
                return datetime.strptime(text, fmt).date()
            if not _ISO_DATE.match(text):
                raise _Bad(f"not a {_kind(spec)}")
            return date.fromisoformat(text)
        if kind is _T.DATETIME:
            if fmt:
                return _utc(datetime.strptime(text, fmt), tz)
            if not _ISO_DATETIME.match(text):
                raise _Bad(f"not a {_kind(spec)}")
            return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")), tz)
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise _Bad(f"not a {_kind(spec)}")

    def _from_cell(raw: Any) -> Any:  # typed XLSX cells
        if isinstance(raw, bool):
            if kind is _T.BOOLEAN:
                return raw
            if kind is _T.STRING:
                return "true" if raw else "false"
            raise _Bad(f"not a {_kind(spec)}")
        if isinstance(raw, datetime):
            naive = raw.replace(tzinfo=None) if raw.tzinfo is None else as_naive_utc(raw)
            if kind is _T.DATE:
                if naive.time() != datetime.min.time():
                    raise _Bad(f"a date with a time of day, not a {_kind(spec)}")
                return naive.date()
            if kind is _T.DATETIME:
                return _utc(naive, tz) if raw.tzinfo is None else naive
            if kind is _T.STRING:
                return naive.date().isoformat() if naive.time() == datetime.min.time() else naive.isoformat()
            raise _Bad(f"a date, not a {_kind(spec)}")
        if isinstance(raw, date):
            if kind is _T.DATE:
                return raw
            if kind is _T.DATETIME:
                return _utc(datetime(raw.year, raw.month, raw.day), tz)
            if kind is _T.STRING:
                return raw.isoformat()
            raise _Bad(f"a date, not a {_kind(spec)}")
        if isinstance(raw, int | float):
            if isinstance(raw, float) and (raw != raw or raw in (float("inf"), float("-inf"))):
                raise _Bad(f"not a finite {_kind(spec)}")
            # Excel keeps numbers as doubles and shows 15 significant digits: so do we.
            exact = Decimal(raw) if isinstance(raw, int) else Decimal(format(raw, ".15g"))
            if kind is _T.STRING:
                return str(int(exact)) if exact == exact.to_integral_value() else str(exact)
            if kind is _T.INTEGER:
                if exact != exact.to_integral_value():
                    raise _Bad(f"not a {_kind(spec)}")
                return int(exact)
            if kind is _T.DECIMAL:
                return _decimal(exact, scale)
            if kind is _T.FLOAT:
                return float(raw)
            if kind is _T.BOOLEAN and exact in (0, 1):
                return bool(exact)
            raise _Bad(f"a number, not a {_kind(spec)}")
        return _from_text(str(raw).strip())

    return conv


def _decimal(value: Decimal, scale: int | None) -> Decimal:
    if not value.is_finite():
        raise _Bad("not a finite number")
    if scale is None:
        return value
    quantum = Decimal(1).scaleb(-scale)
    try:
        rounded = value.quantize(quantum)
    except InvalidOperation:
        raise _Bad("a number too large for the column") from None
    if rounded != value:
        raise _Bad(f"has more than {scale} decimal places (declared decimal({scale}))")
    return rounded


def _number_pattern(options: HrFilesOptions) -> re.Pattern[str]:
    dec, thou = re.escape(options.decimal_separator), re.escape(options.thousands_separator)
    grouped = rf"\d{{1,3}}(?:{thou}\d{{3}})+" if options.thousands_separator else r"(?!)"
    return re.compile(rf"^[+-]?(?:{grouped}|\d+)(?:{dec}\d+)?$")


def _plain_number(text: str, pattern: re.Pattern[str], options: HrFilesOptions) -> str | None:
    """``-1.234,50`` (with the declared separators) as ``-1234.50``; None if it is not a number."""
    compact = text.replace("\u00a0", " ") if options.thousands_separator == " " else text
    if not pattern.match(compact):
        return None
    if options.thousands_separator:
        compact = compact.replace(options.thousands_separator, "")
    return compact.replace(options.decimal_separator, ".")


def _utc(value: datetime, tz: ZoneInfo) -> datetime:
    """Naive values are in the stream's timezone (the company's); all come out as naive UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return as_naive_utc(value)
