"""Filters and time windows to SQLAlchemy Core conditions.

Every value from the project file reaches the database as a bound parameter typed by its column, so the
column's type (for example a DECIMAL stored as scaled integers) processes it; no value ever becomes SQL
text, and columns are never cast.

Semantics (the same on SQLite and PostgreSQL stores unless noted):

* comparisons follow SQL three-valued logic: a NULL field matches no comparison, so ``!=`` and
  ``not_in`` do **not** match NULLs (and neither does ``not`` around a comparison); use ``is_null`` to
  include them;
* ``between`` is inclusive at both ends;
* ``contains``/``starts_with`` match their text literally (``%``, ``_`` and the escape character are
  escaped) and ignore the case of ASCII letters (PostgreSQL also folds other letters);
* ``<``/``>`` on text order by the store's collation (binary on SQLite).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from metrics.periods import Period, naive_utc
from metrics.spec import (
    COMPARISONS,
    LIST_OPS,
    And,
    AsOfDay,
    Condition,
    Filter,
    Not,
    Or,
    TrailingWindow,
    Window,
)
from okrsync.errors import ConfigError, MetricError
from okrsync.schema import Field, FieldType, StreamSchema

# The LIKE escape character. Not a backslash: MySQL and some PostgreSQL settings treat a backslash inside
# the rendered ``ESCAPE '\'`` literal as an escape of its own.
LIKE_ESCAPE = "/"

_ORDERED_OPS = ("<", "<=", ">", ">=", "between")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_INT64 = 2**63


def _where_field(where: str, name: str, field: Field) -> str:
    return f"{where}: filter on {name!r} ({field.type.value} field)"


def _to_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a number or numeric text, else None."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, str):
            number = Decimal(value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _coerce(value: object, name: str, field: Field, where: str) -> Any:
    """``value`` as the Python type of ``field``; ConfigError when it cannot be one."""
    kind = field.type
    article = "an" if kind.value[0] in "aeiou" else "a"
    problem = f"{_where_field(where, name, field)}: {value!r} is not {article} {kind.value} value"
    if kind == FieldType.STRING:
        # A number for a text field is almost always a quoting slip ("zip: 01234" read as 1234).
        if isinstance(value, str):
            return value
        raise ConfigError(problem, hint=f"quote it in the project file: '{value}'")
    if kind == FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        raise ConfigError(problem, hint="write true or false (unquoted)")
    if kind.numeric:
        number = _to_decimal(value)
        if number is None:
            raise ConfigError(problem, hint="write a finite number such as 42 or 19.99")
        if kind == FieldType.INTEGER:
            if number != number.to_integral_value() or abs(number) >= _INT64:
                raise ConfigError(f"{problem}: integer fields hold whole numbers within 64 bits")
            return int(number)
        if kind == FieldType.FLOAT:
            # The column holds binary floats: compare float to float, as the stored values were made.
            as_float = float(number)
            if as_float in (float("inf"), float("-inf")):
                raise ConfigError(f"{problem}: it is too large for a float field")
            return as_float
        if field.scale is not None and number != number.quantize(Decimal(1).scaleb(-field.scale)):
            # The column keeps `scale` places; a finer value would be rounded by the column type and
            # compare differently from what was written.
            raise ConfigError(
                f"{problem}: the field keeps {field.scale} decimal places",
                hint=f"write the value with at most {field.scale} decimal places",
            )
        return number
    if kind == FieldType.DATE:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ConfigError(problem, hint="write an ISO date such as 2026-10-01")
    # DATETIME: naive values are UTC (as the store keeps them); aware ones are converted.
    if isinstance(value, datetime):
        return naive_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return naive_utc(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise ConfigError(problem, hint="write an ISO datetime such as 2026-10-01T08:00:00+02:00 (naive = UTC)")


def _like_pattern(text: str, *, prefix: bool) -> str:
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"{escaped}%" if prefix else f"%{escaped}%"


def _bound(col: sa.ColumnElement[Any], value: object) -> sa.BindParameter[Any]:
    # Typed by the column so its bind processing (e.g. scaled-integer DECIMAL) applies to the value.
    return sa.bindparam(None, value, type_=col.type)


@dataclass(frozen=True)
class AsOf:
    """The time a key result is computed for, as relative filter values see it: the naive-UTC
    ``instant`` and its ``day`` in the period's timezone."""

    instant: datetime
    day: date

    @classmethod
    def of(cls, as_of: datetime, period: Period) -> AsOf:
        return cls(naive_utc(as_of), period.local_date(as_of))


class AsOfPoints:
    """Many as-of times at once (a KR's history in one query, :mod:`okr_store.history`): every bound a
    condition takes from the as-of time becomes a column of a *points* table joined to the records,
    one row per as-of time. Conditions built with it name those columns (``_okr_at_<kind>_<days>``);
    :meth:`row` gives one point's values, computed by the same code as a single as-of time's bounds,
    so each point selects exactly the records that evaluating at that time alone selects."""

    PREFIX = "_okr_at_"

    def __init__(self, period: Period) -> None:
        self.period = period
        self.needed: dict[str, tuple[str, int, Any]] = {}  # column name → (kind, days, SQL type)

    def bound(self, col: sa.ColumnElement[Any], kind: str, days: int = 0) -> sa.ColumnElement[Any]:
        name = f"{self.PREFIX}{kind}_{days}"
        self.needed.setdefault(name, (kind, days, col.type))
        return sa.column(name, col.type)

    def row(self, as_of: datetime) -> dict[str, Any]:
        """The bounds of the point at ``as_of``, by column name."""
        return {name: _as_of_value(kind, days, as_of, self.period)
                for name, (kind, days, _) in self.needed.items()}


def _as_of_value(kind: str, days: int, as_of: datetime, period: Period) -> date | datetime:
    """What a condition compares with at ``as_of``: the instant or local ``day`` (minus ``days``), or the
    window's end capped at the period's (``upper`` an instant, ``last`` a day)."""
    as_of = naive_utc(as_of)
    if kind == "instant":
        return as_of - timedelta(days=days)
    if kind == "upper":
        return min(as_of, period.end_utc())
    if kind == "day":
        return period.local_date(as_of) - timedelta(days=days)
    if kind == "last":
        return min(period.local_date(as_of), period.end - timedelta(days=1))
    raise ValueError(kind)


def _at(
    col: sa.ColumnElement[Any], as_of: datetime | AsOfPoints, period: Period, kind: str, days: int = 0
) -> sa.ColumnElement[Any]:
    """The as-of bound ``kind`` for ``col``: a parameter for one as-of time, a points column for many."""
    if isinstance(as_of, AsOfPoints):
        return as_of.bound(col, kind, days)
    return _bound(col, _as_of_value(kind, days, as_of, period))


def _relative(v: AsOfDay, field: Field, as_of: AsOf | AsOfPoints | None, label: str,
              col: sa.ColumnElement[Any] | None = None) -> Any:
    """The date or instant a ``{days_before_as_of: N}`` value stands for at ``as_of`` (for many as-of
    times, the points column holding it)."""
    if isinstance(as_of, AsOfPoints) and col is not None and field.type in (FieldType.DATE,
                                                                             FieldType.DATETIME):
        kind = "day" if field.type == FieldType.DATE else "instant"
        return as_of.bound(col, kind, v.days_before_as_of)
    if as_of is None or isinstance(as_of, AsOfPoints):
        raise ConfigError(f"{label}: {{days_before_as_of: {v.days_before_as_of}}} needs the time a key "
                          "result is computed for, and this filter has none",
                          hint="use a fixed ISO date here; relative values belong in metric filters")
    if field.type == FieldType.DATE:
        return as_of.day - timedelta(days=v.days_before_as_of)
    if field.type == FieldType.DATETIME:
        return as_of.instant - timedelta(days=v.days_before_as_of)
    raise ConfigError(f"{label}: {{days_before_as_of: N}} compares with a date or datetime field",
                      hint="filter this field with a fixed value")


def _condition(
    c: Condition, table: sa.FromClause, schema: StreamSchema, where: str,
    as_of: AsOf | AsOfPoints | None = None,
) -> sa.ColumnElement[bool]:
    field = schema.get(c.field)
    if field is None:
        raise ConfigError(
            f"{where}: filter field {c.field!r} is not a field of the stream",
            hint=f"available fields: {', '.join(schema.names) or '(none)'}",
        )
    if c.field not in table.c:
        raise MetricError(
            f"{where}: field {c.field!r} is in the stream schema but not in its stored table",
            hint="run a sync of the stream so the store picks up the field",
        )
    col: sa.ColumnElement[Any] = table.c[c.field]
    label = _where_field(where, c.field, field)
    if c.op in _ORDERED_OPS and field.type == FieldType.BOOLEAN:
        raise ConfigError(f"{label}: op {c.op!r} does not apply to booleans", hint="use = or !=")
    if c.op in ("contains", "starts_with") and field.type != FieldType.STRING:
        raise ConfigError(f"{label}: op {c.op!r} applies to text fields only", hint="use =, in or between")

    if c.op == "is_null":
        return col.is_(None)
    if c.op == "not_null":
        return col.is_not(None)
    if c.op in LIST_OPS or c.op == "between":
        if not isinstance(c.value, tuple) or not c.value:
            raise ConfigError(f"{label}: op {c.op!r} needs a list of values")
        values = [_coerce(v, c.field, field, where) for v in c.value]
        if c.op == "in":
            return col.in_(values)
        if c.op == "not_in":
            return col.not_in(values)
        if len(values) != 2:
            raise ConfigError(f"{label}: op 'between' needs [low, high]")
        low, high = values
        if low > high:
            raise ConfigError(f"{label}: between [{c.value[0]!r}, {c.value[1]!r}] has low > high")
        return col.between(low, high)
    if c.value is None or isinstance(c.value, tuple):
        raise ConfigError(f"{label}: op {c.op!r} needs a single value")
    value = (_relative(c.value, field, as_of, label, col) if isinstance(c.value, AsOfDay)
             else _coerce(c.value, c.field, field, where))
    if c.op in ("contains", "starts_with"):
        pattern = _like_pattern(str(value), prefix=c.op == "starts_with")
        return col.ilike(_bound(col, pattern), escape=LIKE_ESCAPE)
    if c.op not in COMPARISONS:
        raise ConfigError(f"{label}: unknown op {c.op!r}")
    bound = value if isinstance(value, sa.ColumnElement) else _bound(col, value)
    comparisons = {
        "=": col == bound,
        "!=": col != bound,
        "<": col < bound,
        "<=": col <= bound,
        ">": col > bound,
        ">=": col >= bound,
    }
    return comparisons[c.op]


def condition_for(
    f: Filter | None, table: sa.FromClause, schema: StreamSchema, *, where: str,
    as_of: AsOf | AsOfPoints | None = None,
) -> sa.ColumnElement[bool]:
    """The WHERE condition for filter ``f`` over ``table`` (``None`` → always true).

    ``schema`` gives each field's type; values are coerced to it (ISO text for dates and datetimes,
    numbers or numeric text for numbers, booleans for booleans, text for text). ``where`` names the
    filter's owner in errors (e.g. ``"metric 'revenue'"``); ``as_of`` gives ``{days_before_as_of: N}``
    values their date. Raises ConfigError for an unknown field,
    an operator that does not fit the field's type, or a value that cannot be of the field's type.
    See the module docstring for NULL, ``between`` and text-matching semantics.
    """
    if f is None:
        return sa.true()
    if isinstance(f, Condition):
        return _condition(f, table, schema, where, as_of)
    if isinstance(f, And):
        return sa.and_(*(condition_for(x, table, schema, where=where, as_of=as_of) for x in f.and_))
    if isinstance(f, Or):
        return sa.or_(*(condition_for(x, table, schema, where=where, as_of=as_of) for x in f.or_))
    if isinstance(f, Not):
        return sa.not_(condition_for(f.not_, table, schema, where=where, as_of=as_of))
    raise ConfigError(f"{where}: unsupported filter node {type(f).__name__}")


def window_condition(
    time_col: sa.ColumnElement[Any],
    time_type: FieldType,
    window: Window,
    period: Period,
    as_of: datetime | AsOfPoints,
    *,
    where: str = "metric",
) -> sa.ColumnElement[bool]:
    """The condition placing ``time_col`` inside ``window`` of ``period`` as seen at ``as_of``.

    ``as_of`` is a naive UTC instant (aware values are converted). ``where`` names the metric in errors;
    a window on a field that is neither a date nor a datetime is a ConfigError.

    * ``period_to_date``: from the period start to ``min(as_of, period end)``;
    * ``as_of_end``: everything before ``min(as_of, period end)``;
    * ``{trailing_days: N}``: the N days before ``as_of``;
    * ``all``: no restriction.

    DATETIME columns (naive UTC) compare with instants: ``period.start_utc() <= t < min(as_of,
    period.end_utc())`` and, trailing, ``as_of − N days <= t < as_of``.

    DATE columns compare with local dates in the period's timezone. A day that has begun by ``as_of``
    counts in full: ``d`` is "before as_of" when ``d <= local date of as_of``. So ``period_to_date`` is
    ``start <= d < end and d <= L``, ``as_of_end`` is ``d < end and d <= L`` and trailing is
    ``L − N < d <= L``, where ``L`` is the local date of ``as_of``.
    """
    if window == "all":
        return sa.true()
    if not time_type.temporal:
        raise ConfigError(
            f"{where}: the time field is a {time_type.value} field; a window needs a date or datetime field",
            hint="set time_field to a date/datetime field, or use window: all",
        )
    if time_type == FieldType.DATETIME:
        if isinstance(window, TrailingWindow):
            start = _at(time_col, as_of, period, "instant", window.trailing_days)
            return sa.and_(time_col >= start, time_col < _at(time_col, as_of, period, "instant"))
        upper = _at(time_col, as_of, period, "upper")  # min(as_of, period end)
        if window in ("as_of_end", "period_average"):  # period_average: see open_at_start
            return time_col < upper
        if window == "period_to_date":
            return sa.and_(time_col >= _bound(time_col, period.start_utc()), time_col < upper)
    else:
        if isinstance(window, TrailingWindow):
            first = _at(time_col, as_of, period, "day", window.trailing_days)
            return sa.and_(time_col > first, time_col <= _at(time_col, as_of, period, "day"))
        # `d < end and d <= today` in one bound: the last day of the period or the as-of day.
        last = _at(time_col, as_of, period, "last")
        if window in ("as_of_end", "period_average"):
            return time_col <= last
        if window == "period_to_date":
            return sa.and_(time_col >= _bound(time_col, period.start), time_col <= last)
    raise ConfigError(f"{where}: unknown window {window!r}")


def window_span(
    time_type: FieldType, window: Window, period: Period, as_of: datetime
) -> tuple[date | datetime | None, date | datetime | None] | None:
    """:func:`window_condition` as a half-open range ``[low, high)`` of the time field (None: unbounded
    on that side), for the windows that are one: ``period_to_date`` and ``as_of_end``; None for the
    others. DATE fields: ``d <= last`` is ``d < last + 1 day``. An empty window has ``high <= low``."""
    if not time_type.temporal or window not in ("period_to_date", "as_of_end"):
        return None
    as_of = naive_utc(as_of)
    low: date | datetime
    high: date | datetime
    if time_type == FieldType.DATETIME:
        low, high = period.start_utc(), min(as_of, period.end_utc())
    else:
        low = period.start
        high = min(period.local_date(as_of), period.end - timedelta(days=1)) + timedelta(days=1)
    return (low if window == "period_to_date" else None), high


def coerce_value(value: object, name: str, field: Field, where: str) -> Any:
    """``value`` as the Python type of ``field``, as a filter binds it (ConfigError when it cannot be)."""
    return _coerce(value, name, field, where)


def open_at_start(
    time_col: sa.ColumnElement[Any], time_type: FieldType, until_col: sa.ColumnElement[Any],
    until_type: FieldType, period: Period,
) -> sa.ColumnElement[bool]:
    """Open on the eve of the period: started before it, and not ended before it began.

    DATE fields: ``time <= eve`` and ``until`` null or ``> eve``, ``eve`` being the day before the
    period (as :func:`still_active` judges its last day); DATETIME: ``time < start <= until``."""
    if time_type == FieldType.DATETIME:
        started = time_col < _bound(time_col, period.start_utc())
    else:
        started = time_col <= _bound(time_col, period.start - timedelta(days=1))
    if until_type == FieldType.DATETIME:
        going = until_col >= _bound(until_col, period.start_utc())
    else:
        going = until_col > _bound(until_col, period.start - timedelta(days=1))
    return sa.and_(started, sa.or_(until_col.is_(None), going))


def still_active(
    until_col: sa.ColumnElement[Any], until_type: FieldType, period: Period, as_of: datetime | AsOfPoints, *,
    where: str = "metric",
) -> sa.ColumnElement[bool]:
    """``until`` has not passed at the end of an ``as_of_end`` window: null, or after that end.

    The end is ``min(as_of, period end)``. A DATE ``until`` (a termination date: the last day
    employed) counts as passed from that day on: active means ``until > last``, ``last`` being the
    window's last local day, so a headcount at a date excludes people whose last day it is."""
    if not until_type.temporal:
        raise ConfigError(f"{where}: until_field is a {until_type.value} field; it needs a date or datetime",
                          hint="set until_field to the date a record stops counting (termination_date)")
    if until_type == FieldType.DATETIME:
        return sa.or_(until_col.is_(None), until_col > _at(until_col, as_of, period, "upper"))
    return sa.or_(until_col.is_(None), until_col > _at(until_col, as_of, period, "last"))


class _DaysBetween(sa.sql.functions.FunctionElement[int]):
    """``to − from`` in whole days for two DATE columns, written in each store's dialect."""

    type = sa.Integer()
    name = "days_between"
    inherit_cache = True


@compiles(_DaysBetween)
def _days_between_default(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"({end} - {start})"  # PostgreSQL: date − date is an integer of days


@compiles(_DaysBetween, "sqlite")
def _days_between_sqlite(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"  # dates are ISO text


@compiles(_DaysBetween, "mysql")
@compiles(_DaysBetween, "mariadb")
def _days_between_mysql(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"DATEDIFF({end}, {start})"


def days_between_problem(pair: tuple[str, str], schema: StreamSchema) -> str | None:
    """Why ``days_between: [from, to]`` cannot be computed on ``schema`` (None: it can)."""
    for key, name in zip(("from", "to"), pair, strict=True):
        field = schema.get(name)
        if field is None:
            return f"days_between: the {key} field {name!r} is not a field of the stream"
        if field.type != FieldType.DATE:
            return (f"days_between: the {key} field {name!r} is a {field.type.value} field; days_between "
                    "counts the days between two date fields")
    return None


def days_between(
    pair: tuple[str, str], table: sa.FromClause, schema: StreamSchema, *, where: str
) -> sa.ColumnElement[int]:
    """The whole days from the first date field of ``pair`` to the second, per record (negative when the
    second is earlier; null when either is). ConfigError for a field that is missing or not a date."""
    problem = days_between_problem(pair, schema)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}",
                          hint="give two date fields: days_between: [appliedDate, hiredDate]")
    start, end = pair
    if start not in table.c or end not in table.c:
        raise MetricError(f"{where}: days_between: a field is in the stream schema but not in its stored "
                          "table",
                          hint="run a sync of the stream so the store picks up the field")
    return _DaysBetween(table.c[start], table.c[end])
