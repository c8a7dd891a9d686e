"""Every record behind a value as CSV or JSON, written page by page as it is read from the store.

``okrsync drill --format csv|json`` lists every record unless ``--limit`` says otherwise: the store is
read a page at a time (:func:`okr_store.lineage.drill_pages`) and each page is written before the next
is read, so memory stays flat whatever the number of records. The JSON has the shape of
:func:`okrsync.render.drill_json` (the header, then ``records``).

Every CSV cell goes through :func:`cell`: source text that a spreadsheet would run as a formula
(``=HYPERLINK(…)``, ``@SUM(…)``) is written with a leading single quote, so it opens as text. The JSON
keeps every value exactly as the source holds it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from okr_store.lineage import Drill, DrillRecord
from okrsync.render import drill_json, plain

Links = dict[tuple[str, str], str | None]
Page = tuple[list[DrillRecord], Links]
# What starts a formula in Excel, LibreOffice and Google Sheets (OWASP, "CSV Injection"): = + - @, and a
# tab or carriage return, after which some of them still read the rest as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# Cells the csv module writes as their str(), which is already what plain() makes of them (None: empty).
_AS_IS = frozenset({type(None), int, float, bool, Decimal})
# plain()'s text of a date and a time, by exact type (a subclass goes through cell()).
_TIMES: dict[type, Callable[[Any], str]] = {
    date: date.isoformat, datetime: lambda t: t.isoformat() + "Z" if t.tzinfo is None else t.isoformat()}


def cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet opens as data, never runs: text starting like a formula
    gets a leading ``'`` (OWASP's advice: ``=1+1`` is written ``'=1+1``). Only text is changed: numbers
    (a contribution of -5, a Decimal field) stay numbers, dates and times are ISO text, null is empty."""
    if type(value) in _AS_IS:  # the common cells first: an export calls this for every field of every row
        return value
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_START) else value
    return plain(value)


def as_seen(head: Drill, pages: Iterable[list[DrillRecord]], see: Callable[[Drill], Drill],
            links: Callable[[Drill], Links]) -> Iterator[Page]:
    """Each page as the role sees it (``see``: okrsync.access.drill_as) with its records' links."""
    for records in pages:
        d = see(replace(head, records=records))
        yield d.records, links(d)


def csv_columns(head: Drill) -> list[str]:
    """The CSV header: the record's columns, then every field of the value's streams, sorted."""
    names = sorted({n for fields in head.columns.values() for n in fields})
    return ["source", "stream", "record_id", "contribution", "denominator_contribution", "role", *names]


def csv_chunks(head: Drill, pages: Iterable[Page]) -> Iterator[str]:
    """The CSV text: the header line, then one chunk per page."""
    columns = csv_columns(head)
    names = columns[6:]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([cell(c) for c in columns])
    for records, _ in pages:
        rows = ([r.source, r.stream, r.record_id, r.contribution, r.denominator_contribution, r.role,
                 *map(r.fields.get, names)] for r in records)
        # cell() spelt inline for the common cells (a call per cell was most of an export's time)
        w.writerows([x if type(x) in _AS_IS
                     else ("'" + x if x.startswith(FORMULA_START) else x) if type(x) is str
                     else (_TIMES.get(type(x)) or cell)(x) for x in row]
                    for row in rows)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def write_csv(out: TextIO, head: Drill, pages: Iterable[Page]) -> None:
    """Write the CSV of every page, each page as soon as it is read."""
    for chunk in csv_chunks(head, pages):
        out.write(chunk)


def write_json(out: TextIO, head: Drill, pages: Iterable[Page]) -> None:
    """Write the JSON object of :func:`okrsync.render.drill_json`, its records one page at a time.

    Each record is one line, encoded by one encoder (json's C one) whose ``default`` turns decimals and
    times into text as :func:`okrsync.render.plain` does, so the fields need no pass of their own; a page
    is written at once."""
    body = drill_json(head, {})
    body.pop("records")
    text = json.dumps(body, default=plain, indent=2, ensure_ascii=False)
    out.write(text[:-2] + ',\n  "records": [')
    encode = json.JSONEncoder(default=plain, ensure_ascii=False).encode
    first = True
    for records, links in pages:
        if not records:
            continue
        lines = [encode({"source": r.source, "stream": r.stream, "record_id": r.record_id,
                         "contribution": r.contribution,
                         "denominator_contribution": r.denominator_contribution, "role": r.role,
                         "url": links.get((r.stream, r.record_id)), "fields": r.fields})
                 for r in records]
        out.write(("\n    " if first else ",\n    ") + ",\n    ".join(lines))
        first = False
    out.write("]\n}\n" if first else "\n  ]\n}\n")

