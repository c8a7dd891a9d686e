"""Typing the declared columns of an export read by :mod:`connectors.hr.parse`: every value of every row,
checked against its column's declared type and the primary key, or the whole file rejected.

A rejection names the file, the line (CSV) or row and cell (XLSX) and the column, never the value: HR
exports are personal data (RELIABILITY rows 21 and 33).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.hr.options import ColumnSpec, HrFilesOptions
from connectors.hr.parse import FileRejected, Table
from connectors.kit.values import Unconvertible, boolean, exact_decimal, naive_utc
from okrsync.schema import FieldType

_T = FieldType
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")


@dataclass(frozen=True)
class Parsed:
    """A validated file: the typed values of every declared column, row by row, with line numbers."""

    columns: list[str]
    rows: list[list[Any]]
    lines: list[int]


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
                return naive_utc(datetime.strptime(text, fmt), tz)
            if not _ISO_DATETIME.match(text):
                raise _Bad(f"not a {_kind(spec)}")
            return naive_utc(text, tz)
        try:
            return boolean(text)
        except Unconvertible:
            raise _Bad(f"not a {_kind(spec)}") from None

    def _from_cell(raw: Any) -> Any:  # typed XLSX cells
        if isinstance(raw, bool):
            if kind is _T.BOOLEAN:
                return raw
            if kind is _T.STRING:
                return "true" if raw else "false"
            raise _Bad(f"not a {_kind(spec)}")
        if isinstance(raw, datetime):
            naive = raw.replace(tzinfo=None) if raw.tzinfo is None else naive_utc(raw)
            if kind is _T.DATE:
                if naive.time() != datetime.min.time():
                    raise _Bad(f"a date with a time of day, not a {_kind(spec)}")
                return naive.date()
            if kind is _T.DATETIME:
                return naive_utc(naive, tz) if raw.tzinfo is None else naive
            if kind is _T.STRING:
                return naive.date().isoformat() if naive.time() == datetime.min.time() else naive.isoformat()
            raise _Bad(f"a date, not a {_kind(spec)}")
        if isinstance(raw, date):
            if kind is _T.DATE:
                return raw
            if kind is _T.DATETIME:
                return naive_utc(datetime(raw.year, raw.month, raw.day), tz)
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
    try:
        return exact_decimal(value, scale, strict=True)
    except Unconvertible as exc:
        declared = f" (declared decimal({scale}))" if "places" in str(exc) else ""
        raise _Bad(f"{exc}{declared}") from None


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


def _column_letter(index: int) -> str:
    letters = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters
