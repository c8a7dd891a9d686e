"""SQL column types and values: database types as okrsync fields, driver values as typed columns.

The SQL connector (:mod:`connectors.sql`) describes columns with :class:`Col` (from SQLAlchemy
reflection, from DB-API type codes or from sampled values) and turns each batch's raw driver values
into pandas columns of the field's type: Decimal at the field's scale, date, naive UTC datetime,
nullable bool and int. Values that do not convert raise one of :data:`BAD_VALUE`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from connectors.kit.values import DTYPES, boolean, exact_decimal, naive_utc
from okrsync.schema import Field as SchemaField
from okrsync.schema import FieldType

if TYPE_CHECKING:  # imported where values are read: loading a project file needs neither
    import pandas as pd

UNSCALED_DECIMAL_SCALE = 6
_T = FieldType
_PG_TYPES = {16: _T.BOOLEAN, 20: _T.INTEGER, 21: _T.INTEGER, 23: _T.INTEGER, 26: _T.INTEGER, 700: _T.FLOAT,
             701: _T.FLOAT, 1700: _T.DECIMAL, 1082: _T.DATE, 1114: _T.DATETIME, 1184: _T.DATETIME}
_MYSQL_TYPES = {0: _T.DECIMAL, 246: _T.DECIMAL, 1: _T.INTEGER, 2: _T.INTEGER, 3: _T.INTEGER, 8: _T.INTEGER,
                9: _T.INTEGER, 13: _T.INTEGER, 4: _T.FLOAT, 5: _T.FLOAT, 10: _T.DATE, 14: _T.DATE,
                7: _T.DATETIME, 12: _T.DATETIME}
_UTC_TYPE = {"postgresql": 1184, "mysql": 7}  # timestamptz; TIMESTAMP (UTC in our sessions)
BAD_VALUE = (ValueError, TypeError, ArithmeticError, UnicodeError, KeyError)


@dataclass(frozen=True)
class Col:
    field: SchemaField
    nullable: bool = True
    utc: bool = False  # naive values are UTC (MySQL TIMESTAMP) or values are aware (timestamptz)
    binary: bool = False  # BLOB/bytea (a rendered document, an image): kept as its SHA-256, not the bytes


# -- database types as fields ---------------------------------------------------------------------


def sa_col(name: str, t: sa.types.TypeEngine[Any], nullable: bool, backend: str) -> Col | None:
    """A reflected SQLAlchemy column type as a field; None when the type is unknown (SQLite)."""
    from sqlalchemy.dialects import mysql  # here, not at import: loading a project never reflects a column

    scale, utc = None, False
    if isinstance(t, sa.types.NullType):
        return None
    if isinstance(t, sa.Boolean) or (isinstance(t, mysql.TINYINT) and t.display_width == 1):
        kind = _T.BOOLEAN
    elif isinstance(t, sa.Integer):
        kind = _T.INTEGER
    elif isinstance(t, sa.Float):  # before Numeric, its base class
        kind = _T.FLOAT
    elif isinstance(t, sa.Numeric):
        kind, scale = _T.DECIMAL, UNSCALED_DECIMAL_SCALE if t.scale is None else t.scale
    elif isinstance(t, sa.DateTime):
        kind = _T.DATETIME
        utc = isinstance(t, mysql.TIMESTAMP) or (backend == "postgresql" and bool(t.timezone))
    elif isinstance(t, sa.types._Binary):
        return Col(SchemaField(name, _T.STRING), nullable, binary=True)
    else:
        kind = _T.DATE if isinstance(t, sa.Date) else _T.STRING
    return Col(SchemaField(name, kind, scale), nullable, utc)


def dbapi_col(backend: str, name: str, code: Any, size: Any, scale: Any) -> Col:
    """A result column from its DB-API type code, display size and scale (PostgreSQL, MySQL)."""
    types = _PG_TYPES if backend == "postgresql" else _MYSQL_TYPES
    mysql_bool = backend == "mysql" and code == 1 and size == 1  # TINYINT(1)
    kind = _T.BOOLEAN if mysql_bool else types.get(code, _T.STRING)
    scale = (UNSCALED_DECIMAL_SCALE if scale is None else scale) if kind is _T.DECIMAL else None
    return Col(SchemaField(name, kind, scale), utc=code == _UTC_TYPE[backend])


def sampled_col(name: str, first: Any) -> Col:
    """An untyped column typed from its first non-NULL sampled value: INTEGER, FLOAT or STRING."""
    kind = {int: _T.INTEGER, float: _T.FLOAT}.get(type(first), _T.STRING)
    return Col(SchemaField(name, kind))


# -- values ---------------------------------------------------------------------------------------


def native(v: Any, kind: FieldType) -> Any:
    """A watermark value (in memory, pandas or back from JSON) as its field's Python type."""
    if kind.temporal:
        instant = naive_utc(v)
        return instant if kind is _T.DATETIME else instant.date()
    conv: Callable[[Any], Any] = {_T.INTEGER: int, _T.FLOAT: float, _T.BOOLEAN: bool}.get(kind, str)
    return Decimal(str(v)) if kind is _T.DECIMAL else conv(v)


def series(values: Sequence[Any], col: Col, tz: ZoneInfo) -> pd.Series:
    """Raw driver values as an Arrow-backed column of the field's type (:func:`arrow_backed`): money
    as ``decimal128(38, scale)``, points in time as naive UTC ``timestamp[us]``."""
    if col.field.type is _T.DECIMAL and not col.binary:
        fast = decimal_column(values, col.field.scale or 0)
        if fast is not None:
            return fast
    return arrow_backed(python_series(values, col, tz), col.field.type)


def decimal_column(values: Sequence[Any], scale: int) -> pd.Series | None:
    """Driver Decimals already at the column's scale (PostgreSQL and MySQL NUMERIC) as a
    ``decimal128(38, scale)`` column, converted by Arrow; None when some value needs the exact
    per-value conversion (another scale, floats, text, more than 38 digits) or is a negative zero
    (``-0.00`` hashes apart from ``0.00``, and Arrow has no negative zero). Values of fewer places
    are held at the column's scale, as the per-value conversion quantizes them."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not all(type(v) is Decimal for v in values if v is not None):
        return None
    dtype = pa.decimal128(38, scale)
    try:
        arr = pa.array(values, dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    zeros = pc.indices_nonzero(pc.fill_null(pc.equal(arr, pa.scalar(Decimal(0), dtype)), False))
    if any(values[i].is_signed() for i in zeros.to_pylist()):
        return None
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), dtype=pd.ArrowDtype(dtype))


def arrow_backed(s: pd.Series, kind: FieldType) -> pd.Series:
    """A column of the field's pandas type (see :data:`~connectors.kit.values.DTYPES`) as an
    Arrow-backed one: integers int64, decimals ``decimal128(38, scale)`` at the values' scale, dates
    date32, naive UTC timestamps ``timestamp[us]``, booleans, floats, strings. Decimal columns Arrow
    cannot hold exactly (more than 38 digits, mixed scales, a negative zero) stay Python objects."""
    import pandas as pd
    import pyarrow as pa

    if kind is _T.DECIMAL:
        scales = {-v.as_tuple().exponent for v in s if v is not None}
        if len(scales) > 1:
            return s
        fast = decimal_column(s.tolist(), scales.pop() if scales else 0)
        return s if fast is None else fast.set_axis(s.index)
    types = {_T.INTEGER: pa.int64(), _T.FLOAT: pa.float64(), _T.STRING: pa.string(), _T.DATE: pa.date32(),
             _T.DATETIME: pa.timestamp("us"), _T.BOOLEAN: pa.bool_()}
    target = pd.ArrowDtype(types[kind])
    if kind is _T.STRING or kind is _T.DATE:
        arr = pa.array(s.tolist(), types[kind], from_pandas=True)  # NaN (pandas' missing str) is NULL
        return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=s.index, dtype=target)
    return s.astype(target)


def python_series(values: Sequence[Any], col: Col, tz: ZoneInfo) -> pd.Series:
    """Raw driver values as a column of the field's pandas type (Python objects for decimals and
    dates); vectorised when the driver's types allow."""
    import numpy as np
    import pandas as pd

    kind, dtype = col.field.type, DTYPES[col.field.type]
    present = [v for v in values if v is not None]
    if kind is _T.DATETIME and all(type(v) is datetime for v in present):
        if present and all(v.tzinfo is not None for v in present):
            return pd.Series(pd.to_datetime(values, utc=True).tz_localize(None), dtype=dtype)
        if all(v.tzinfo is None for v in present):
            naive = pd.Series(values, dtype=dtype)
            if col.utc or tz.key == "UTC":
                return naive
            # first occurrence (DST) for ambiguous times and +1h for skipped ones, as zoneinfo's fold=0
            dst = np.ones(len(naive), bool)
            local = naive.dt.tz_localize(tz, ambiguous=dst, nonexistent=timedelta(hours=1))
            return local.dt.tz_convert("UTC").dt.tz_localize(None).astype(dtype)
    elif all(type(v) is _PYTHON.get(kind) for v in present):
        return pd.Series(values, dtype=dtype)
    convert = converter(col, tz)
    return pd.Series([None if v is None else convert(v) for v in values], dtype=dtype)


def converter(col: Col, tz: ZoneInfo) -> Callable[[Any], Any]:
    if col.binary:
        return _digest
    if col.field.type is _T.DECIMAL:  # SQLite may hand back floats (their shortest repr is the value)
        # or bytes (Tryton registers a converter storing NUMERIC as text blobs: b'1142.40')
        return partial(exact_decimal, scale=col.field.scale or 0)
    if col.field.type is _T.DATETIME:
        return partial(naive_utc, zone=ZoneInfo("UTC") if col.utc else tz)
    return _CONVERT[col.field.type]


def _digest(v: Any) -> str:
    """A binary value as ``sha256:<hex>``: changes are still seen, the bytes stay out of the store."""
    data = bytes(v) if isinstance(v, bytes | memoryview | bytearray) else str(v).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _int(v: Any) -> int:
    if isinstance(v, float | Decimal) and v != int(v):
        raise ValueError(v)
    return int(v)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else json.dumps(v, default=str) if isinstance(v, dict | list) \
        else str(v)


def _date(v: Any) -> date:
    return date.fromisoformat(v[:10]) if isinstance(v, str) else v.date() if isinstance(v, datetime) else v


def first_bad(values: Sequence[Any], convert: Callable[[Any], Any]) -> tuple[int, Any] | None:
    for i, v in enumerate(values):
        try:
            None if v is None else convert(v)
        except BAD_VALUE:
            return i, v
    return None


_PYTHON: dict[FieldType, type] = {_T.INTEGER: int, _T.FLOAT: float, _T.STRING: str, _T.DATE: date,
                                  _T.BOOLEAN: bool}
_CONVERT: dict[FieldType, Callable[[Any], Any]] = {_T.INTEGER: _int, _T.FLOAT: float, _T.STRING: _text,
                                                   _T.BOOLEAN: partial(boolean, any_number=True),
                                                   _T.DATE: _date}
