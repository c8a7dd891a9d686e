"""Salesforce field types onto okrsync's, and records (REST JSON or Bulk 2.0 CSV) into typed frames.

* currency, double and percent fields are DECIMAL with the field's describe ``scale``: JSON numbers
  become ``Decimal`` from their shortest text (``repr``), CSV text directly, then rounded half-even to
  the scale; never float arithmetic (:func:`connectors.kit.values.exact_decimal`).
* datetimes arrive as UTC with an offset (``2026-06-15T12:00:00.000+0000`` or ``…Z``) and are kept as
  naive UTC (:func:`connectors.kit.values.naive_utc`); dates are dates (no timezone, as ``CloseDate``
  is in Salesforce).
* Relationship fields (``Account.Name``) are flattened into a column of that name; a missing parent
  (``AccountId`` null) gives null.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from connectors.kit.values import DTYPES, boolean, exact_decimal, naive_utc
from okrsync.schema import Field, FieldType

if TYPE_CHECKING:  # imported where a read builds its frame: loading a project needs no pandas
    import pandas as pd

_T = FieldType
_TYPES = {
    "boolean": _T.BOOLEAN,
    "int": _T.INTEGER,
    "long": _T.INTEGER,
    "currency": _T.DECIMAL,
    "double": _T.DECIMAL,
    "percent": _T.DECIMAL,
    "date": _T.DATE,
    "datetime": _T.DATETIME,
}
_UNSUPPORTED = {"address", "location", "base64", "complexvalue"}  # compound or binary


@dataclass(frozen=True)
class SfField:
    """A queryable column: its path (``Amount`` or ``Account.Name``), okrsync field and describe facts."""

    path: str
    field: Field
    sf_type: str
    calculated: bool = False


def field_of(path: str, describe: Mapping[str, Any]) -> SfField | None:
    """The okrsync field for one describe entry (None for compound/binary fields)."""
    sf_type = str(describe.get("type", "string"))
    if sf_type in _UNSUPPORTED:
        return None
    kind = _TYPES.get(sf_type, _T.STRING)
    if kind is _T.DECIMAL and sf_type != "currency" and describe.get("scale") is None:
        kind = _T.FLOAT
    scale = int(describe.get("scale") or 0) if kind is _T.DECIMAL else None
    return SfField(path, Field(path, kind, scale), sf_type, bool(describe.get("calculated")))


parse_datetime = naive_utc  # ``2026-06-15T12:00:00.000+0000`` → naive UTC (okrsync.cli_sandbox reads it)


def converter(f: SfField) -> Callable[[Any], Any]:
    t = f.field.type
    scale = f.field.scale or 0
    convs: dict[FieldType, Callable[[Any], Any]] = {
        _T.DECIMAL: lambda v: exact_decimal(v, scale),
        _T.BOOLEAN: boolean,
        _T.INTEGER: lambda v: int(Decimal(str(v))),
        _T.FLOAT: float,
        _T.DATE: lambda v: date.fromisoformat(str(v)[:10]),
        _T.DATETIME: lambda v: naive_utc(str(v)),
        _T.STRING: str,
    }
    return convs[t]


class BadValue(ValueError):
    def __init__(self, record_id: Any, field: str, value: Any, kind: FieldType) -> None:
        super().__init__(f"record {record_id}: field {field!r} holds {value!r:.60}, not a {kind.value}")
        self.record_id, self.field = record_id, field


def _dig(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def json_rows(records: Iterable[Mapping[str, Any]], paths: Sequence[str]) -> list[list[Any]]:
    """REST query records (nested relationship objects) as rows of raw values, in ``paths`` order."""
    return [[_dig(r, p) if "." in p else r.get(p) for p in paths] for r in records]


def csv_rows(text: str, paths: Sequence[str]) -> list[list[Any]]:
    """A Bulk 2.0 CSV page as rows of raw values in ``paths`` order ('' is null, as Bulk writes it)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    index = {h.lower(): i for i, h in enumerate(header)}
    try:
        positions = [index[p.lower()] for p in paths]
    except KeyError as exc:
        raise ValueError(f"the Bulk result has no column {exc.args[0]!r} (columns: {', '.join(header)})") \
            from None
    # A row cut short (a damaged download) is left out: the caller's row count check notices.
    width = len(header)
    return [[row[i] if row[i] != "" else None for i in positions] for row in reader if len(row) == width]


def frame(rows: list[list[Any]], fields: Sequence[SfField], id_index: int) -> pd.DataFrame:
    """Typed columns (see the module notes); :class:`BadValue` names the first bad record and field."""
    import pandas as pd

    data: dict[str, list[Any]] = {}
    for i, f in enumerate(fields):
        conv = converter(f)
        out: list[Any] = []
        for row in rows:
            v = row[i]
            if v is None:
                out.append(None)
                continue
            try:
                out.append(conv(v))
            except (ValueError, TypeError, InvalidOperation):
                raise BadValue(row[id_index], f.path, v, f.field.type) from None
        data[f.path] = out
    return pd.DataFrame({f.path: pd.Series(data[f.path], dtype=DTYPES[f.field.type]) for f in fields},
                        columns=[f.path for f in fields])
