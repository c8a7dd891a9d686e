"""Source values as okrsync keeps them: points in time as naive UTC, money as exact ``Decimal``, booleans.

Every connector converts through here, so "naive UTC" and "exact" mean one thing everywhere:

* :func:`naive_utc` — aware values are converted to UTC; naive ones are taken in the stream's zone (UTC
  unless said otherwise); dates are midnight; ISO 8601 text with ``Z``, ``+0000`` or ``+00:00`` is parsed.
* :func:`exact_decimal` — a float becomes the ``Decimal`` of its shortest repr (``0.1``, never
  ``0.1000000000000000055…``), bytes are read as ASCII text (Tryton's NUMERIC on SQLite); the scale is
  applied half-even, or with ``strict`` a value that would lose places is refused. NaN and infinities are
  refused: money is never "not a number".
* :func:`boolean` — ``true/false``, ``t/f``, ``yes/no``, ``y/n``, ``1/0`` in any case; numbers 0 and 1
  (any non-zero number with ``any_number``, as SQL's TINYINT(1) means it).

Values that do not convert raise :class:`Unconvertible` (a ``ValueError``) whose message describes the
problem and never holds the value: source values may be personal data.

:func:`typed_frame` builds a frame with the dtype the store expects for each field type, and
:func:`records_frame` does the whole job for an API's JSON records, naming the record and field that fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from okrsync.errors import SourceError
from okrsync.schema import Field, FieldType

if TYPE_CHECKING:  # imported where frames are built: loading a project, `status` and `drill` need no pandas
    import pandas as pd

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
_WIDE = Context(prec=80)  # room for NUMERIC(38, x) and more before the scale is applied


class Unconvertible(ValueError):
    """A value that does not fit its type; the message says why, never what the value was."""


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 text (``2026-06-15T12:00:00.000+0000``, ``…Z``, ``2026-06-15 12:00``) as a datetime,
    aware when the text has an offset."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise Unconvertible("not a timestamp (ISO 8601)") from None


def naive_utc(value: Any, zone: tzinfo = UTC) -> datetime:
    """A point in time (datetime, pandas or numpy timestamp, date, ISO text) as naive UTC; naive values
    are in ``zone``. Dates are midnight in ``zone``."""
    if isinstance(value, str):
        value = parse_timestamp(value)
    elif type(value).__module__.partition(".")[0] in ("pandas", "numpy"):  # Timestamp, datetime64
        import pandas as pd

        value = pd.Timestamp(value).to_pydatetime()
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return aware.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, date):
        return naive_utc(datetime(value.year, value.month, value.day), zone)
    raise Unconvertible(f"not a point in time: {type(value).__name__}")


def exact_decimal(value: Any, scale: int | None = None, *, strict: bool = False) -> Decimal:
    """``value`` as an exact Decimal with ``scale`` places (half-even; with ``strict``, refused if places
    would be lost). See the module notes for floats and bytes."""
    try:
        if isinstance(value, float):
            d = Decimal(repr(value))
        elif isinstance(value, bytes | bytearray | memoryview):
            d = Decimal(bytes(value).decode("ascii").strip())
        elif isinstance(value, Decimal | int):
            d = Decimal(value)
        else:
            d = Decimal(str(value).strip())
    except (InvalidOperation, UnicodeDecodeError, ValueError):
        raise Unconvertible("not a number") from None
    if not d.is_finite():
        raise Unconvertible("not a finite number")
    if scale is None:
        return d
    quantum = Decimal(1).scaleb(-scale)
    try:
        rounded = d.quantize(quantum, ROUND_HALF_EVEN, _WIDE)
    except InvalidOperation:
        raise Unconvertible("a number too large for the column") from None
    if strict and rounded != d:
        raise Unconvertible(f"has more than {scale} decimal places")
    return rounded


def boolean(value: Any, *, any_number: bool = False) -> bool:
    """``value`` as a bool (see the module notes for the words and numbers taken)."""
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and "bool" in type(value).__name__):
        return bool(value)
    if isinstance(value, int | float | Decimal):
        if value in (0, 1) or (any_number and value == value):
            return bool(value)
        raise Unconvertible("a number other than 0 or 1, not a true/false value")
    text = (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise Unconvertible("not a true/false value")


# -- frames -----------------------------------------------------------------------------------------

_T = FieldType
DTYPES: dict[FieldType, Any] = {_T.INTEGER: "Int64", _T.DECIMAL: object, _T.FLOAT: "float64",
                                 _T.STRING: "str", _T.DATE: object, _T.DATETIME: "datetime64[us]",
                                 _T.BOOLEAN: "boolean"}


def typed_frame(fields: Sequence[Field], columns: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A frame with one column per field (values already converted), of the dtype the store expects."""
    import pandas as pd

    return pd.DataFrame(
        {f.name: pd.Series(list(col), dtype=DTYPES[f.type]) for f, col in zip(fields, columns, strict=True)},
        columns=[f.name for f in fields],
    )


def id_frame(ids: Sequence[int]) -> pd.DataFrame:
    """Record ids (employees, jobs, applications) as the one-column frame ``keys`` and ``deleted`` yield."""
    import pandas as pd

    return pd.DataFrame({"id": pd.Series(list(ids), dtype="Int64")})


def converter(f: Field) -> Callable[[Any], Any]:
    """How a JSON-like value becomes a value of ``f``'s type."""
    scale = f.scale
    convs: dict[FieldType, Callable[[Any], Any]] = {
        _T.INTEGER: lambda v: int(exact_decimal(v, 0, strict=True)),
        _T.DECIMAL: lambda v: exact_decimal(v, scale),
        _T.FLOAT: float,
        _T.BOOLEAN: boolean,
        _T.DATE: lambda v: v if type(v) is date else naive_utc(v).date(),
        _T.DATETIME: naive_utc,
        _T.STRING: str,
    }
    return convs[f.type]


def records_frame(records: Sequence[Mapping[str, Any]], fields: Sequence[Field], *, where: str,
                  key: str) -> pd.DataFrame:
    """API records (``{"id": 7, "updated_at": "…Z", …}``) as a typed frame; a missing key is null. A value
    that does not convert is a SourceError naming the record (by ``key``) and the field, not the value."""
    columns = []
    for f in fields:
        conv, out = converter(f), []
        for r in records:
            v = r.get(f.name)
            try:
                out.append(None if v is None else conv(v))
            except (ValueError, TypeError, ArithmeticError):
                raise SourceError(f"{where}: record {r.get(key)!r:.40}: field {f.name!r} does not hold a "
                                  f"{f.type.value}", hint="fix the record at the source, or leave the field "
                                  "out of the stream's `fields`") from None
        columns.append(out)
    return typed_frame(fields, columns)
