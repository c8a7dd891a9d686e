"""Measures: how a metric turns its records into one number, and what each record contributes to it.

Each measure of the project file (``measure: sum``) is one class here. It holds everything okrsync
needs to know about it: its SQL aggregate and the value it makes of that aggregate, what each record
contributes to the value (for drill-down and "why it moved") and the role it plays there, and the rules
the project file and the store go by: whether it needs a ``field`` and a numeric one, whether it works
on sensitive fields (stored sealed), whether it may aggregate ``days_between`` or take the
``period_average`` window, and whether a value's first drill positions can be stored ahead. The rest of
okrsync asks the measure (``metric.measure.aggregation``); it never compares measure names.

:func:`aggregation` is the one switch over :class:`Measure`, and it is exhaustive: mypy names it when a
new member has no class, and a class that leaves a rule undeclared fails when it is defined.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Any, ClassVar, assert_never

import sqlalchemy as sa

from okrsync.errors import MetricError

RID = "_rid"  # the record id column of every stream view, and of every contributions select
# Averages and ratios are kept to 12 decimal places: exact enough for any KR, and stable as text.
PLACES = Decimal("1e-12")


class Measure(StrEnum):
    """The measures a simple metric may declare (``ratio`` is a metric of its own: two metrics)."""

    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    MEDIAN = "median"

    @property
    def aggregation(self) -> Aggregation:
        """What this measure does: its aggregate, its contributions and its rules."""
        return aggregation(self)


@dataclass(frozen=True)
class Records:
    """The records one simple metric of a KR reads, as expressions over its stream's view."""

    rid: sa.ColumnElement[Any]  # the record id (named ``_rid``)
    condition: sa.ColumnElement[bool]  # which records count: filter, pinned dimensions, window
    value: sa.ColumnElement[Any] | None  # what each record measures (its field or its days); None: none
    weight: sa.ColumnElement[Any] | None = None  # window period_average: ½ or 1 per record counted

    def measured(self) -> sa.ColumnElement[Any]:
        assert self.value is not None, "the metric's field or days_between, which the spec requires"
        return self.value


def to_decimal(v: Any) -> Decimal | None:
    """An aggregate as read from the store, as a Decimal (None stays None)."""
    if v is None:
        return None
    if isinstance(v, Decimal):
        return v
    if isinstance(v, float):
        return Decimal(repr(v))
    if hasattr(v, "isoformat"):
        raise MetricError(
            f"min/max of a date field gives a date ({v.isoformat()}), not a number",
            hint="aggregate a numeric field",
        )
    return Decimal(v)


def exact_sum(parts: Iterable[Any]) -> Any:
    """The sum of the non-null parts, exact (a Decimal sum is not rounded to the default 28 digits, as
    the store's NUMERIC sum is not); None when every part is None, as SQL's SUM of no values."""
    total: Any = None
    with localcontext() as ctx:
        ctx.prec = 1000  # wider than any NUMERIC sum the store returns
        for p in parts:
            if p is not None:
                total = p if total is None else total + p
    return total


def _none_in(name: str) -> tuple[None, str]:
    return None, f"no records for metric {name!r} in this period"


class Aggregation(ABC):
    """One measure's behaviour. Subclasses declare every rule below; none has a default."""

    RULES: ClassVar[tuple[str, ...]] = ("measure", "role", "needs_field", "needs_numeric", "on_sealed_values",
                                        "takes_days", "takes_period_average", "counts_records", "rankable",
                                        "decomposable", "subtractive")
    measure: ClassVar[Measure]
    role: ClassVar[str]  # a contributing record's role in a drill
    needs_field: ClassVar[bool]  # it aggregates a `field` (or `days_between`), which the metric must give
    needs_numeric: ClassVar[bool]  # that field must be numeric (checked against the source's schema)
    on_sealed_values: ClassVar[bool]  # it works on sensitive fields, which the store holds sealed
    takes_days: ClassVar[bool]  # it may aggregate `days_between: [from, to]` instead of a field
    takes_period_average: ClassVar[bool]  # it may take window period_average (records weigh ½ or 1)
    counts_records: ClassVar[bool]  # each record contributes 1, not its value
    # A record's contribution and role depend on that record alone, so a value's first drill positions
    # can be stored when it is recorded (okr_store.ranking) and a page of them evaluated on its own.
    rankable: ClassVar[bool]
    # Its aggregate over a set of records follows exactly from its aggregates over the parts of that set
    # (:meth:`rollup`), so KRs that differ only in pinned dimension values and period can share one
    # grouped query (metrics.grouped) instead of an aggregate each.
    decomposable: ClassVar[bool]
    # Decomposable, and a part's aggregate can be taken back out of a rollup: the rollup is a sum, so
    # a running total over record versions coming and going (okr_store.history) stays exact.
    subtractive: ClassVar[bool]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        missing = [r for r in cls.RULES if not hasattr(cls, r)]
        if missing:
            raise TypeError(f"measure class {cls.__name__} does not declare {', '.join(missing)}")

    @abstractmethod
    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        """The SQL aggregate over the stream's records (all of them: ``records.condition`` picks)."""

    @abstractmethod
    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        """The metric's value from the aggregate and the count of contributing records, or None and
        why there is none."""

    def rollup(self, aggs: Iterable[Any]) -> Any:
        """The aggregate over a set of records from its aggregates over disjoint parts of it (None for
        none): what :meth:`aggregate` over the whole set gives. Only for ``decomposable`` measures."""
        raise NotImplementedError(f"measure {self.measure.value!r} is not decomposable")

    def contribution(self, records: Records) -> sa.ColumnElement[Any]:
        """What one record contributes on its own (a ratio's parts, and this measure's drill)."""
        if records.weight is not None:
            return records.weight
        return sa.literal(1) if self.counts_records else records.measured()

    def contributions(self, records: Records) -> sa.Select[Any]:
        """The records behind a value of a metric with this measure: ``_rid``, ``contribution``,
        ``denominator_contribution`` (NULL) and ``role``."""
        return sa.select(
            records.rid.label(RID),
            self.contribution(records).label("contribution"),
            sa.cast(sa.null(), sa.Numeric).label("denominator_contribution"),
            sa.literal(self.role).label("role"),
        ).where(records.condition)


class Count(Aggregation):
    """The number of records; with window period_average, each weighs ½ or 1."""

    measure = Measure.COUNT
    role = "counted"
    needs_field = False
    needs_numeric = False
    on_sealed_values = True
    takes_days = False
    takes_period_average = True
    counts_records = True
    rankable = True
    decomposable = True
    subtractive = True

    def rollup(self, aggs: Iterable[Any]) -> Any:
        return exact_sum(aggs)

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        if records.weight is None:
            return sa.func.count(sa.case((records.condition, 1)))
        return sa.func.coalesce(sa.func.sum(sa.case((records.condition, records.weight))), 0)

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        return Decimal(agg or 0), None


class CountDistinct(Aggregation):
    """The number of distinct values of the field. In a drill, the first record (by id) of each value
    counts 1 and the others repeat it (role ``duplicate``)."""

    measure = Measure.COUNT_DISTINCT
    role = "distinct"
    needs_field = True
    needs_numeric = False
    on_sealed_values = True  # the same value always seals to the same text
    takes_days = False
    takes_period_average = False
    counts_records = True
    rankable = False  # whether a record is the first of its value depends on the records before it
    decomposable = False  # a value may occur in several parts
    subtractive = False

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        return sa.func.count(sa.distinct(sa.case((records.condition, records.measured()))))

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        return Decimal(agg or 0), None

    def contributions(self, records: Records) -> sa.Select[Any]:
        rn = sa.func.row_number().over(partition_by=records.measured(), order_by=records.rid)
        inner = sa.select(records.rid.label(RID), rn.label("rn")).where(records.condition).subquery()
        first = inner.c.rn == 1
        return sa.select(
            inner.c[RID],
            sa.case((first, 1), else_=0).label("contribution"),
            sa.cast(sa.null(), sa.Numeric).label("denominator_contribution"),
            sa.case((first, self.role), else_="duplicate").label("role"),
        )


class Sum(Aggregation):
    """The sum of the field (0 without records); contributions add up to the value exactly."""

    measure = Measure.SUM
    role = "summed"
    needs_field = True
    needs_numeric = True
    on_sealed_values = False
    takes_days = True
    takes_period_average = False
    counts_records = False
    rankable = True
    decomposable = True
    subtractive = True

    def rollup(self, aggs: Iterable[Any]) -> Any:
        return exact_sum(aggs)

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((records.condition, records.measured())))

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        return (to_decimal(agg) if agg is not None else Decimal(0)), None


class Avg(Aggregation):
    """The mean of the field: the sum, divided by the count exactly in Python (12 places)."""

    measure = Measure.AVG
    role = "averaged"
    needs_field = True
    needs_numeric = True
    on_sealed_values = False
    takes_days = True
    takes_period_average = False
    counts_records = False
    rankable = True
    decomposable = True
    subtractive = True  # its sum; the count comes with every part

    def rollup(self, aggs: Iterable[Any]) -> Any:
        return exact_sum(aggs)  # the sum; the count comes with every part

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((records.condition, records.measured())))

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        if n == 0:
            return _none_in(name)
        total = to_decimal(agg)
        assert total is not None
        return (total / n).quantize(PLACES), None


class Min(Aggregation):
    """The smallest value of the field; every record is a candidate."""

    measure = Measure.MIN
    role = "candidate"
    needs_field = True
    needs_numeric = False
    on_sealed_values = False
    takes_days = True
    takes_period_average = False
    counts_records = False
    rankable = True
    decomposable = True
    subtractive = False  # the smallest cannot be taken back out

    def rollup(self, aggs: Iterable[Any]) -> Any:
        present = [a for a in aggs if a is not None]
        return min(present) if present else None

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        return sa.func.min(sa.case((records.condition, records.measured())))

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        return _none_in(name) if n == 0 else (to_decimal(agg), None)


class Max(Aggregation):
    """The largest value of the field; every record is a candidate."""

    measure = Measure.MAX
    role = "candidate"
    needs_field = True
    needs_numeric = False
    on_sealed_values = False
    takes_days = True
    takes_period_average = False
    counts_records = False
    rankable = True
    decomposable = True
    subtractive = False  # the largest cannot be taken back out

    def rollup(self, aggs: Iterable[Any]) -> Any:
        present = [a for a in aggs if a is not None]
        return max(present) if present else None

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        return sa.func.max(sa.case((records.condition, records.measured())))

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        return _none_in(name) if n == 0 else (to_decimal(agg), None)


class Median(Aggregation):
    """The middle value of the field: of the n records ordered by value, the value at position (n + 1) / 2,
    or the mean of the two middle values when n is even (exact, as a half of a sum always is). In a
    drill each record contributes its value; ordered by value, then record id, the one or two at the
    middle have role ``median``, the others ``below`` or ``above``."""

    measure = Measure.MEDIAN
    role = "median"
    needs_field = True
    needs_numeric = True
    on_sealed_values = False  # sealed values have no order
    takes_days = True
    takes_period_average = False
    counts_records = False
    rankable = False  # whether a record is at the middle depends on all the others
    decomposable = False  # the middle of the whole is no function of the middles of its parts
    subtractive = False

    @staticmethod
    def _ordered(records: Records) -> sa.Subquery:
        """The records counted, with their value, position by value (then id) and how many there are."""
        v = records.measured()
        return sa.select(
            records.rid.label(RID),
            v.label("v"),
            sa.func.row_number().over(order_by=[v, records.rid]).label("position"),
            sa.func.count().over().label("n"),
        ).where(records.condition).subquery()

    @staticmethod
    def _middle(o: sa.Subquery) -> sa.ColumnElement[bool]:
        """Position (n + 1) / 2 when n is odd, n / 2 and n / 2 + 1 when it is even."""
        return (2 * o.c.position).between(o.c.n, o.c.n + 2)

    def aggregate(self, records: Records) -> sa.ColumnElement[Any]:
        # The sum of the one or two middle values. A median is no one-pass aggregate: this term orders the
        # records it counts in a subquery of its own (one more read of the stream, in the same statement).
        o = self._ordered(records)
        return sa.select(sa.func.sum(o.c.v)).where(self._middle(o)).scalar_subquery()

    def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
        if n == 0:
            return _none_in(name)
        middle = to_decimal(agg)
        assert middle is not None
        return (middle if n % 2 else middle / 2), None

    def contributions(self, records: Records) -> sa.Select[Any]:
        o = self._ordered(records)
        return sa.select(
            o.c[RID],
            o.c.v.label("contribution"),
            sa.cast(sa.null(), sa.Numeric).label("denominator_contribution"),
            sa.case((self._middle(o), self.role), (2 * o.c.position < o.c.n, "below"), else_="above")
            .label("role"),
        )


COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX = Count(), CountDistinct(), Sum(), Avg(), Min(), Max()
MEDIAN = Median()


def aggregation(measure: Measure) -> Aggregation:
    """The behaviour of ``measure``. Exhaustive: mypy names this switch when a member has no case."""
    match measure:
        case Measure.COUNT:
            return COUNT
        case Measure.COUNT_DISTINCT:
            return COUNT_DISTINCT
        case Measure.SUM:
            return SUM
        case Measure.AVG:
            return AVG
        case Measure.MIN:
            return MIN
        case Measure.MAX:
            return MAX
        case Measure.MEDIAN:
            return MEDIAN
        case _:
            assert_never(measure)


def measures_where(rule: Callable[[Aggregation], bool]) -> tuple[str, ...]:
    """The names of the measures for which ``rule`` holds, in declaration order (for messages)."""
    return tuple(m.value for m in Measure if rule(m.aggregation))
