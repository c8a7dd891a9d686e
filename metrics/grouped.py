"""Key results that differ only in pinned dimension values and period, evaluated from one grouped query.

A KR's records are those its metric's filter picks, with its pinned dimensions (``region = 'EMEA'``)
and inside its period's window (``order_date`` in 2025-Q3). The filter is the same for every KR of a
metric; the other two only pick *cells*: each record has a code per pinned dimension (which of the
values pinned on that stream it equals: 1, 2, …, or 0 for none and for NULL) and a bucket per time field
(between which of the window bounds in use it lies; -1 for NULL). So one SELECT per stream, ``GROUP BY``
those codes and buckets, with one aggregate per metric shape (filter, measure, field), not per KR, gives
every cell at once, and each KR's value is its measure's :meth:`~metrics.measures.Aggregation.rollup`
of the cells it covers, exactly what the per-KR aggregate gives (an exact sum, a min of mins). Ratios
read their numerator's and denominator's cells, so KRs of different ratios share terms; a ratio on one
stream also reads, per cell, the records in either part (its record count).

The codes compare with the same predicates a KR's own condition uses (:func:`metrics.compile.condition_for`
on ``field = value``) and the buckets with the same bounds as :func:`~metrics.compile.window_condition`
(:func:`~metrics.compile.window_span`), so a record lands in the cells of exactly the KRs whose
condition it meets.

Only decomposable measures over exact values take this path (count; sum, avg, min, max of an integer or
decimal field or of ``days_between``), with windows that are a range of the time field
(``period_to_date``, ``as_of_end``) or do not depend on the period's bounds (``all``, trailing). The
rest (count_distinct, median, float fields, until_field windows) keep one aggregate per KR
(:func:`metrics.evaluate.evaluate`), as does a stream whose cells could outnumber :data:`MAX_CELLS`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metrics.compile import (
    AsOf,
    AsOfPoints,
    coerce_value,
    condition_for,
    days_between,
    window_condition,
    window_span,
)
from metrics.definition import KrDefinition
from metrics.measures import RID, Aggregation, Records
from metrics.periods import Period
from metrics.spec import Condition, SimpleMetric
from okrsync.errors import OkrsyncError
from okrsync.schema import FieldType

if TYPE_CHECKING:
    from metrics.evaluate import StreamView

MAX_CELLS = 100_000  # beyond this many possible cells a stream keeps its per-KR aggregates
_EXACT = (FieldType.INTEGER, FieldType.DECIMAL)  # values whose sums are exact in any order


@dataclass
class Tally:
    """What a KR's value is made of: per part (``value``, or ``numerator`` and ``denominator``) the
    measure's aggregate and the count of contributing records; for a ratio on one stream, the records
    in either part."""

    parts: dict[str, tuple[Any, int]] = field(default_factory=dict)
    union: int | None = None


@dataclass(frozen=True)
class Cover:
    """The cells one simple metric of one KR covers: its metric shape's terms, the code each pinned
    dimension must have (by group column) and the range of buckets of its time field (inclusive)."""

    shape: int
    pins: tuple[tuple[int, int], ...]
    span: tuple[int, int, int] | None

    def covers(self, cell: Sequence[Any]) -> bool:
        for col, code in self.pins:
            if cell[col] != code:
                return False
        if self.span is None:
            return True
        col, first, last = self.span
        return first <= cell[col] <= last


@dataclass(frozen=True)
class _Want:
    """One simple metric of one KR before the bounds of its stream are all known."""

    shape: int
    pins: dict[str, int]
    span: tuple[str, date | datetime | None, date | datetime | None] | None  # field, [low, high)


def groupable(metric: SimpleMetric, view: StreamView) -> bool:
    """Whether a simple metric's values can come from grouped cells (see the module docstring)."""
    a = metric.measure.aggregation
    if not a.decomposable or metric.until_field is not None or metric.window == "period_average":
        return False
    if metric.days_between is not None:
        return True
    if metric.field is None:
        return a.counts_records
    f = view.schema.get(metric.field)
    return a.counts_records or (f is not None and f.type in _EXACT)


def _shape_key(metric: SimpleMetric, period: Period) -> tuple[Any, ...]:
    """What the shared part of a metric's condition and its aggregate depend on: all of the metric but
    its name, dimensions and descriptions, and the period's timezone (relative filter values and trailing
    windows on dates read the as-of day there)."""
    bare = metric.model_copy(update={"name": "", "dimensions": (), "description": None, "unit": None,
                                     "checks": ()})
    return bare, period.timezone


class _StreamPlan:
    """The grouped query of one stream: its metric shapes, pinned values, window bounds and unions."""

    def __init__(self, view: StreamView, as_of: datetime) -> None:
        self.view, self.as_of = view, as_of
        self.shapes: dict[tuple[Any, ...], int] = {}
        self.shape_of: list[tuple[SimpleMetric, Records]] = []  # each shape's metric and its records
        self.pins: dict[str, dict[Any, tuple[int, sa.ColumnElement[bool]]]] = defaultdict(dict)
        self.bounds: dict[str, set[Any]] = defaultdict(set)
        self.unions: dict[tuple[int, int], int] = {}
        self.wants: list[_Want] = []

    def want(self, metric: SimpleMetric, d: KrDefinition) -> _Want:
        """Plan one simple metric of one KR; errors (a bad pinned value, a missing field) propagate."""
        view, period = self.view, d.period.period()
        where = f"metric {metric.name!r} (key result {d.kr_id!r})"
        if metric.time_field is not None and (view.schema.get(metric.time_field) is None
                                              or metric.time_field not in view.table.c):
            raise OkrsyncError(f"{where}: time field {metric.time_field!r} is not in the stream")
        key = _shape_key(metric, period)
        if key not in self.shapes:
            records = self._base(metric, period, where)  # a bad filter or field fails here, in planning
            self.shapes[key] = len(self.shape_of)
            self.shape_of.append((metric, records))
        pins: dict[str, int] = {}
        for dim, value in sorted(d.dimensions.items()):
            if dim not in metric.dimensions:
                continue
            f = view.schema.get(dim)
            pinned = Condition(field=dim, op="=", value=value)
            cond = condition_for(pinned, view.table, view.schema, where=where)
            assert f is not None  # condition_for raised otherwise
            values = self.pins[dim]
            typed = coerce_value(value, dim, f, where)
            if typed not in values:
                values[typed] = (len(values) + 1, cond)
            pins[dim] = values[typed][0]
        span = None
        if metric.time_field is not None:
            ftype = view.schema.get(metric.time_field)
            assert ftype is not None  # checked above
            bounds = window_span(ftype.type, metric.window, period, self.as_of)
            if bounds is not None:
                low, high = bounds
                empty = _empty(low, high)
                if not empty:
                    self.bounds[metric.time_field].update(b for b in bounds if b is not None)
                span = (metric.time_field, low, high) if not empty else (metric.time_field, high, high)
        w = _Want(self.shapes[key], pins, span)
        self.wants.append(w)
        return w

    def union(self, a: _Want, b: _Want) -> None:
        self.unions.setdefault((a.shape, b.shape), len(self.unions))

    def cells(self) -> int:
        n = 1
        for values in self.pins.values():
            n *= len(values) + 1
        for bounds in self.bounds.values():
            n *= len(bounds) + 2
        return n

    def columns(self) -> tuple[list[str], list[str]]:
        return sorted(self.pins), sorted(self.bounds)

    def cover(self, w: _Want) -> Cover:
        dims, times = self.columns()
        pins = tuple((dims.index(dim), code) for dim, code in sorted(w.pins.items()))
        span = None
        if w.span is not None:
            name, low, high = w.span
            bounds = sorted(self.bounds.get(name, ()))
            col = len(dims) + times.index(name) if name in self.bounds else -1
            if col < 0 or _empty(low, high):
                span = (0, 1, 0)  # empty: no bucket
            else:
                first = 0 if low is None else bounds.index(low) + 1
                last = len(bounds) if high is None else bounds.index(high)
                span = (col, first, last)
        return Cover(w.shape, pins, span)

    def _base(self, metric: SimpleMetric, period: Period, where: str) -> Records:
        """The records a metric shape counts, before pins and period windows pick cells."""
        view, t = self.view, self.view.table
        conds = [condition_for(metric.filter, t, view.schema, where=where, as_of=AsOf.of(self.as_of, period))]
        if metric.time_field is not None:
            ftype = view.schema.get(metric.time_field)
            assert ftype is not None
            if window_span(ftype.type, metric.window, period, self.as_of) is None:
                conds.append(window_condition(t.c[metric.time_field], ftype.type, metric.window, period,
                                              self.as_of))
        value: Any = None
        if metric.days_between is not None:
            value = days_between(metric.days_between, t, view.schema, where=where)
            conds += [t.c[name].is_not(None) for name in metric.days_between]
        if metric.field is not None:
            value = t.c[metric.field]
            conds.append(value.is_not(None))
        return Records(t.c[RID], sa.and_(*conds), value)

    def codes(self) -> list[Any]:
        """Each record's cell: a code per pinned dimension, then a bucket per time field."""
        t = self.view.table
        dims, times = self.columns()
        groups: list[Any] = []
        for dim in dims:
            whens = [(cond, code) for code, cond in sorted(self.pins[dim].values(), key=lambda v: v[0])]
            groups.append(sa.case(*whens, else_=0).label(f"g{len(groups)}"))
        for name in times:
            col = t.c[name]
            whens = [(col.is_(None), -1)]
            whens += [(col < sa.bindparam(None, b, type_=col.type), i)
                      for i, b in enumerate(sorted(self.bounds[name]))]
            groups.append(sa.case(*whens, else_=len(self.bounds[name])).label(f"g{len(groups)}"))
        return groups

    def select(self, extra: Sequence[sa.ColumnElement[Any]] = ()) -> sa.Select[Any]:
        """One row per non-empty cell: the codes, the buckets, then per shape (aggregate, records) and
        per union the records in either part (then ``extra`` columns, grouped by too)."""
        t = self.view.table
        groups = self.codes()
        terms: list[Any] = []
        for metric, records in self.shape_of:
            n = sa.func.count(sa.case((records.condition, 1)))
            terms += [metric.measure.aggregation.aggregate(records), n]
        for a, b in self.unions:
            either = sa.or_(self.shape_of[a][1].condition, self.shape_of[b][1].condition)
            terms.append(sa.func.count(sa.case((either, 1))))
        labelled = [c.label(f"t{i}") for i, c in enumerate(terms)]
        sel = sa.select(*groups, *labelled, *extra).select_from(t).where(*self._restrict())
        # by position: the same CASE written twice would carry bind parameters of its own each time
        at = [*range(len(groups)), *(len(groups) + len(labelled) + i for i in range(len(extra)))]
        return sel.group_by(*(sa.literal_column(str(i + 1)) for i in at))

    def term_rollups(self) -> list[Aggregation | None]:
        """Per term of :meth:`select`, its measure (a shape's aggregate), or None for a record count."""
        out: list[Aggregation | None] = []
        for metric, _ in self.shape_of:
            out += [metric.measure.aggregation, None]
        return out + [None] * len(self.unions)

    def _restrict(self) -> list[sa.ColumnElement[bool]]:
        """Only the records some KR can count: with one or two metric shapes, those either counts; a
        dimension every KR pins to one of its values; a time field every KR restricts to the span of
        their windows."""
        out: list[sa.ColumnElement[bool]] = []
        if len(self.shape_of) <= 2:  # a record no shape counts adds nothing to any cell: not grouped
            out.append(sa.or_(*(records.condition for _, records in self.shape_of)))
        for dim, values in sorted(self.pins.items()):
            if all(dim in w.pins for w in self.wants):
                out.append(sa.or_(*(cond for _, cond in values.values())))
        for name in sorted(self.bounds):
            spans = [w.span for w in self.wants]
            if not all(s is not None and s[0] == name for s in spans):
                continue
            live = [(s[1], s[2]) for s in spans if s is not None and not _empty(s[1], s[2])]
            col = self.view.table.c[name]
            lows, highs = [lo for lo, _ in live if lo is not None], [hi for _, hi in live if hi is not None]
            if live and len(lows) == len(live):
                out.append(col >= sa.bindparam(None, min(lows), type_=col.type))  # type: ignore[type-var]
            if live and len(highs) == len(live):
                out.append(col < sa.bindparam(None, max(highs), type_=col.type))  # type: ignore[type-var]
        return out


def _empty(low: Any, high: Any) -> bool:
    """Whether the window ``[low, high)`` holds no instant (None: unbounded)."""
    return low is not None and high is not None and high <= low


def _rollup(metric: SimpleMetric, cells: Iterable[Sequence[Any]], term: int) -> tuple[Any, int]:
    chosen = list(cells)
    agg = metric.measure.aggregation.rollup(c[term] for c in chosen)
    return agg, sum(int(c[term + 1] or 0) for c in chosen)


def evaluate_grouped(
    conn: sa.Connection, views: Mapping[str, StreamView], defs: Sequence[KrDefinition], as_of: datetime
) -> tuple[dict[str, Tally], list[KrDefinition]]:
    """The tallies of the KRs that grouped cells can answer, and the KRs left for per-KR aggregates."""
    plans: dict[str, _StreamPlan] = {}
    planned: list[tuple[KrDefinition, dict[str, _Want]]] = []
    rest: list[KrDefinition] = []
    for d in defs:
        if not all(groupable(m, views[m.stream]) for m in d.parts.values()):
            rest.append(d)
            continue
        try:
            wants = {part: plans.setdefault(m.stream, _StreamPlan(views[m.stream], as_of)).want(m, d)
                     for part, m in d.parts.items()}
        except (OkrsyncError, ValueError, KeyError, OverflowError):
            rest.append(d)  # the per-KR path raises the same error with its own words
            continue
        if d.metric is None and d.numerator.stream == d.denominator.stream:  # type: ignore[union-attr]
            plans[d.numerator.stream].union(wants["numerator"], wants["denominator"])  # type: ignore[union-attr]
        planned.append((d, wants))
    too_big = {s for s, p in plans.items() if p.cells() > MAX_CELLS}
    rows: dict[str, list[Sequence[Any]]] = {}
    for stream, plan in plans.items():
        if stream not in too_big and plan.wants:
            rows[stream] = [tuple(r) for r in conn.execute(plan.select())]
    tallies: dict[str, Tally] = {}
    for d, wants in planned:
        if any(m.stream in too_big for m in d.parts.values()):
            rest.append(d)
            continue
        tallies[d.kr_id] = _tally(d, wants, plans, rows)
    return tallies, rest


def _tally(
    d: KrDefinition, wants: Mapping[str, _Want], plans: Mapping[str, _StreamPlan],
    rows: Mapping[str, Sequence[Sequence[Any]]], known: dict[int, Cover] | None = None,
) -> Tally:
    tally = Tally()
    covers = {}
    for part, metric in d.parts.items():
        plan = plans[metric.stream]
        w = wants[part]
        if known is None:
            cover = covers[part] = plan.cover(w)
        else:
            cover = covers[part] = known.get(id(w)) or known.setdefault(id(w), plan.cover(w))
        dims, times = plan.columns()
        term = len(dims) + len(times) + 2 * cover.shape
        tally.parts[part] = _rollup(metric, (c for c in rows[metric.stream] if cover.covers(c)), term)
    if d.metric is None and d.numerator.stream == d.denominator.stream:  # type: ignore[union-attr]
        stream = d.numerator.stream  # type: ignore[union-attr]
        plan, n, m = plans[stream], covers["numerator"], covers["denominator"]
        width = len(plan.columns()[0]) + len(plan.columns()[1])
        both = width + 2 * len(plan.shape_of) + plan.unions[(n.shape, m.shape)]
        total = 0
        for c in rows[stream]:
            in_n, in_d = n.covers(c), m.covers(c)
            if in_n and in_d:
                total += int(c[both] or 0)
            elif in_n or in_d:
                total += int(c[width + 2 * (n.shape if in_n else m.shape) + 1] or 0)
        tally.union = total
    return tally


@dataclass(frozen=True)
class PointsPlan:
    """One KR at many as-of times from the same cells (:mod:`okr_store.history`): per stream its plan
    (whose window bounds are those of every point), and per point the cells each part covers."""

    plans: dict[str, _StreamPlan]
    wants: list[dict[str, _Want]]  # points with the same window spans share theirs
    covers: dict[int, Cover] = field(default_factory=dict)  # by id() of a want above

    def tally(self, d: KrDefinition, point: int, rows: Mapping[str, Sequence[Sequence[Any]]]) -> Tally:
        """The KR's tally at ``point`` from the cells visible there (rows as :meth:`_StreamPlan.select`
        gives them, without extra columns)."""
        return _tally(d, self.wants[point], self.plans, rows, self.covers)


def plan_points(
    views: Mapping[str, StreamView], d: KrDefinition, as_ofs: Sequence[datetime]
) -> PointsPlan | None:
    """Cells answering ``d`` at every time of ``as_ofs``, or None when they cannot: a part is not
    groupable, or what it counts (its filter, a trailing window) depends on the as-of time beyond the
    window's bounds, or the cells would be too many."""
    for m in d.parts.values():
        if not groupable(m, views[m.stream]) or not _fixed(m, views[m.stream], d):
            return None
    plans: dict[str, _StreamPlan] = {}
    wants: list[dict[str, _Want]] = []
    seen: dict[tuple[Any, ...], dict[str, _Want]] = {}  # the points with the same window spans
    period = d.period.period()
    try:
        for as_of in as_ofs:
            key = tuple(_span(m, views[m.stream], period, as_of) for m in d.parts.values())
            if key in seen:
                wants.append(seen[key])
                continue
            w = {}
            for part, m in d.parts.items():
                plan = plans.setdefault(m.stream, _StreamPlan(views[m.stream], as_of))
                plan.as_of = as_of  # the window's bounds at this point; the shape's condition is fixed
                w[part] = plan.want(m, d)
            if d.metric is None and d.numerator.stream == d.denominator.stream:  # type: ignore[union-attr]
                plans[d.numerator.stream].union(w["numerator"], w["denominator"])  # type: ignore[union-attr]
            wants.append(seen.setdefault(key, w))
    except (OkrsyncError, ValueError, KeyError, OverflowError):
        return None  # the per-point path raises the same error with its own words
    if any(p.cells() > MAX_CELLS for p in plans.values()):
        return None
    return PointsPlan(plans, wants)


def _span(metric: SimpleMetric, view: StreamView, period: Period, as_of: datetime) -> Any:
    """What of ``as_of`` a metric's cells depend on: its window's span (for a fixed shape)."""
    f = None if metric.time_field is None else view.schema.get(metric.time_field)
    return None if f is None else window_span(f.type, metric.window, period, as_of)


def _fixed(metric: SimpleMetric, view: StreamView, d: KrDefinition) -> bool:
    """Whether the records a metric counts, but for its window's span, are the same at any as-of time:
    no relative filter value, and a window that is a span of the time field or none."""
    if metric.time_field is not None and metric.window not in ("all", "period_to_date", "as_of_end"):
        return False
    at = AsOfPoints(d.period.period())
    try:
        condition_for(metric.filter, view.table, view.schema, where=f"metric {metric.name!r}", as_of=at)
    except OkrsyncError:
        return False
    return not at.needed


@dataclass(frozen=True)
class Cells:
    """The cells of one stream's records for some simple metrics of KRs, for
    :mod:`okr_store.ranking` to find each KR's records by cell: each record's cell (``codes``, SQL),
    each metric shape's condition (``shapes``, SQL) and, per metric, the shape and cells it covers
    (``covers``; None for a metric that cells cannot answer)."""

    codes: list[Any]
    shapes: list[sa.ColumnElement[bool]]
    covers: list[Cover | None]


def cells(
    view: StreamView, as_of: datetime, items: Sequence[tuple[SimpleMetric, KrDefinition]]
) -> Cells | None:
    """The cells of ``view`` for one simple metric of each KR in ``items`` (None: too many cells)."""
    plan = _StreamPlan(view, as_of)
    wants: list[_Want | None] = []
    for metric, d in items:
        want = None
        if groupable(metric, view):
            try:
                want = plan.want(metric, d)
            except (OkrsyncError, ValueError, KeyError, OverflowError):
                pass  # its own condition raises the same error where it is used
        wants.append(want)
    if plan.cells() > MAX_CELLS:
        return None
    return Cells(plan.codes(), [records.condition for _, records in plan.shape_of],
                 [None if w is None else plan.cover(w) for w in wants])
