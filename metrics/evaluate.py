"""Evaluate key results set-based, in one pass per stream, and explain each value record by record.

The store hands over, for each stream, a selectable of the records visible at a snapshot
(:class:`StreamView`). KRs that differ only in pinned dimension values and period share one grouped
query per stream (:mod:`metrics.grouped`): one aggregate per metric, ``GROUP BY`` the pinned values and
period buckets in use, each KR rolled up from its cells. A KR that cannot be grouped (count_distinct,
median, float sums, until_field windows) becomes a few aggregate *terms* of its own
(``SUM(CASE WHEN <kr condition> THEN amount END)``, ``COUNT(CASE WHEN … THEN 1 END)``), and all such
terms on a stream run as one SELECT: 100 KRs on a 10M-row stream cost one scan, not 100 (a ``median``
term, which must order its records, reads them once more in a subquery of that SELECT).
Each term, each value and each record's contribution is its measure's (:mod:`metrics.measures`).
The same conditions produce the per-record contributions behind a value (:func:`contribution_parts`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metrics.compile import (
    AsOf,
    AsOfPoints,
    condition_for,
    days_between,
    open_at_start,
    still_active,
    window_condition,
)
from metrics.definition import KrDefinition
from metrics.grouped import Tally, evaluate_grouped
from metrics.measures import PLACES, RID, Records
from metrics.spec import Condition, SimpleMetric
from okrsync.errors import MetricError
from okrsync.schema import StreamSchema

At = datetime | AsOfPoints  # one as-of time, or many at once (a history: okr_store.history)


@dataclass(frozen=True)
class StreamView:
    """The records of one stream visible at a snapshot: ``table`` has ``_rid`` and the fields."""

    stream: str
    table: sa.FromClause
    schema: StreamSchema


@dataclass(frozen=True)
class Evaluation:
    value: Decimal | None
    reason: str | None
    records: int
    parts: dict[str, Decimal | None]


def part_condition(
    metric: SimpleMetric, d: KrDefinition, view: StreamView, as_of: At
) -> sa.ColumnElement[bool]:
    """Which records count for one simple metric of a KR: filter, pinned dimensions, window."""
    where = f"metric {metric.name!r} (key result {d.kr_id!r})"
    at = as_of if isinstance(as_of, AsOfPoints) else AsOf.of(as_of, d.period.period())
    conds = [condition_for(metric.filter, view.table, view.schema, where=where, as_of=at)]
    for dim, value in sorted(d.dimensions.items()):
        if dim in metric.dimensions:
            conds.append(
                condition_for(Condition(field=dim, op="=", value=value), view.table, view.schema, where=where)
            )
    if metric.time_field is not None:
        ftype = view.schema.get(metric.time_field)
        if ftype is None:
            raise MetricError(
                f"{where}: time field {metric.time_field!r} is not in stream {view.stream!r}",
                hint="run `okrsync validate --check-sources`",
            )
        conds.append(
            window_condition(
                view.table.c[metric.time_field], ftype.type, metric.window, d.period.period(), as_of
            )
        )
    if metric.until_field is not None:
        start, end = _open_conditions(metric, d, view, as_of, where)
        # period_average counts what was open at the start or at the end (weighted by average_weight)
        conds[-1] = sa.or_(start, end) if metric.window == "period_average" else sa.and_(conds[-1], end)
    if metric.field is not None:
        conds.append(view.table.c[metric.field].is_not(None))
    if metric.days_between is not None:
        measured(metric, view, where)  # both fields are dates, or a ConfigError says which is not
        conds += [view.table.c[name].is_not(None) for name in metric.days_between]
    return sa.and_(*conds)


def measured(metric: SimpleMetric, view: StreamView, where: str = "metric") -> Any:
    """The per-record value a metric aggregates: its ``field``, or the days of its ``days_between``."""
    if metric.days_between is not None:
        return days_between(metric.days_between, view.table, view.schema,
                            where=f"metric {metric.name!r}" if where == "metric" else where)
    return view.table.c[metric.field]  # type: ignore[index]


def _open_conditions(
    metric: SimpleMetric, d: KrDefinition, view: StreamView, as_of: At, where: str
) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
    """(open on the eve of the period, open at the window's end) for a metric with an until_field."""
    assert metric.until_field is not None and metric.time_field is not None
    utype, ttype = view.schema.get(metric.until_field), view.schema.get(metric.time_field)
    if utype is None or ttype is None:
        raise MetricError(f"{where}: until_field {metric.until_field!r} is not in stream {view.stream!r}",
                          hint="run `okrsync validate --check-sources`")
    t, period = view.table, d.period.period()
    end = sa.and_(window_condition(t.c[metric.time_field], ttype.type, "as_of_end", period, as_of),
                  still_active(t.c[metric.until_field], utype.type, period, as_of, where=where))
    start = open_at_start(t.c[metric.time_field], ttype.type, t.c[metric.until_field], utype.type, period)
    return start, end


def average_weight(metric: SimpleMetric, d: KrDefinition, view: StreamView, as_of: At) -> Any:
    """For window period_average: each record counts ½ for being open at the period's start and ½ for
    being open at its end, so the count is the mean of the two headcounts (None for other windows)."""
    if metric.window != "period_average":
        return None
    start, end = _open_conditions(metric, d, view, as_of, f"metric {metric.name!r}")
    half = sa.literal(Decimal("0.5"), sa.Numeric(3, 1))
    return sa.case((start, half), else_=0) + sa.case((end, half), else_=0)


def records_of(metric: SimpleMetric, d: KrDefinition, view: StreamView, as_of: At) -> Records:
    """What one simple metric of a KR reads from its stream's view, for its measure to aggregate."""
    value = measured(metric, view) if metric.field is not None or metric.days_between is not None else None
    return Records(view.table.c[RID], part_condition(metric, d, view, as_of), value,
                   average_weight(metric, d, view, as_of))


def evaluate(
    conn: sa.Connection,
    views: Mapping[str, StreamView],
    defs: Sequence[KrDefinition],
    as_of: datetime,
    *,
    grouped: bool = True,
) -> dict[str, Evaluation]:
    """Compute every KR in ``defs`` at ``as_of``: per stream, one grouped query for the KRs that differ only
    in pinned dimension values and period (:mod:`metrics.grouped`), and one query of per-KR aggregates for
    the others (``grouped=False``: every KR that way, as before grouping; the values are the same)."""
    tallies: dict[str, Tally] = {}
    rest: Sequence[KrDefinition] = defs
    if grouped:
        tallies, rest = evaluate_grouped(conn, views, defs, as_of)
    tallies.update(_per_kr(conn, views, rest, as_of))
    return {d.kr_id: _combine(d, tallies[d.kr_id]) for d in defs}


def _per_kr(
    conn: sa.Connection, views: Mapping[str, StreamView], defs: Sequence[KrDefinition], as_of: datetime
) -> dict[str, Tally]:
    """Every KR's own aggregate terms, all terms of a stream in one SELECT: one scan per stream."""
    terms, slots, union_slots = aggregate_terms(views, defs, as_of)
    rows: dict[str, Sequence[Any]] = {}
    for stream, cols in terms.items():
        labelled = [c.label(f"t{i}") for i, c in enumerate(cols)]
        rows[stream] = conn.execute(sa.select(*labelled).select_from(views[stream].table)).one()
    return {d.kr_id: _tally(d, rows, slots, union_slots) for d in defs}


Slots = dict[tuple[str, str], tuple[str, int]]


def aggregate_terms(
    views: Mapping[str, StreamView], defs: Sequence[KrDefinition], as_of: At
) -> tuple[dict[str, list[Any]], Slots, dict[str, tuple[str, int]]]:
    """Per stream, the aggregate terms of every KR in ``defs`` (and where each KR's terms are)."""
    terms: dict[str, list[Any]] = defaultdict(list)
    slots: dict[tuple[str, str], tuple[str, int]] = {}  # (kr, part) → (stream, index of agg term)
    union_slots: dict[str, tuple[str, int]] = {}  # ratio on one stream: records in either part
    for d in defs:
        conds = {}
        for part, metric in d.parts.items():
            records = records_of(metric, d, views[metric.stream], as_of)
            conds[part] = (metric.stream, records.condition)
            n = sa.func.count(sa.case((records.condition, 1)))  # the records contributing
            slots[(d.kr_id, part)] = (metric.stream, len(terms[metric.stream]))
            terms[metric.stream] += [metric.measure.aggregation.aggregate(records), n]
        if len(conds) == 2 and len({s for s, _ in conds.values()}) == 1:
            stream = next(iter(conds.values()))[0]
            union_slots[d.kr_id] = (stream, len(terms[stream]))
            terms[stream].append(sa.func.count(sa.case((sa.or_(*(c for _, c in conds.values())), 1))))
    return terms, slots, union_slots


def _tally(
    d: KrDefinition,
    rows: Mapping[str, Sequence[Any]],
    slots: Mapping[tuple[str, str], tuple[str, int]],
    union_slots: Mapping[str, tuple[str, int]],
) -> Tally:
    t = Tally()
    for part in d.parts:
        stream, i = slots[(d.kr_id, part)]
        t.parts[part] = rows[stream][i], int(rows[stream][i + 1] or 0)
    if d.kr_id in union_slots:
        stream, i = union_slots[d.kr_id]
        t.union = int(rows[stream][i] or 0)
    return t


def combine(
    d: KrDefinition,
    rows: Mapping[str, Sequence[Any]],
    slots: Mapping[tuple[str, str], tuple[str, int]],
    union_slots: Mapping[str, tuple[str, int]],
) -> Evaluation:
    """One KR's value from the rows of :func:`aggregate_terms`' SELECTs (okr_store.history runs them
    at many as-of points at once)."""
    return _combine(d, _tally(d, rows, slots, union_slots))


def evaluation_of(d: KrDefinition, tally: Tally) -> Evaluation:
    """One KR's value from its tally (okr_store.history rolls tallies up from cells at many points)."""
    return _combine(d, tally)


def _combine(d: KrDefinition, tally: Tally) -> Evaluation:
    values: dict[str, Decimal | None] = {}
    reasons: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    for part, metric in d.parts.items():
        agg, n = tally.parts[part]
        values[part], reasons[part] = metric.measure.aggregation.value(agg, n, metric.name)
        counts[part] = n
    if d.metric is not None:
        return Evaluation(values["value"], reasons["value"], counts["value"], values)
    records = tally.union if tally.union is not None else counts["numerator"] + counts["denominator"]
    num, den = values["numerator"], values["denominator"]
    if den is None or den == 0:
        name = d.denominator.name  # type: ignore[union-attr]
        why = reasons["denominator"] or f"denominator {name!r} is 0 in this period: the ratio is undefined"
        return Evaluation(None, why, records, values)
    if num is None:
        return Evaluation(None, reasons["numerator"], records, values)
    return Evaluation((num / den).quantize(PLACES), None, records, values)


@dataclass(frozen=True)
class ContributionPart:
    """Records behind (one part of) a KR value: a select of ``_rid``, ``contribution``,
    ``denominator_contribution`` and ``role``, over one stream's visible records."""

    stream: str
    select: sa.Select[Any]
    view: StreamView


def contribution_parts(
    views: Mapping[str, StreamView], d: KrDefinition, as_of: datetime
) -> list[ContributionPart]:
    """The per-record contributions of a KR value, as one select per stream involved."""
    if d.metric is not None:
        m = d.metric
        view = views[m.stream]
        sel = m.measure.aggregation.contributions(records_of(m, d, view, as_of))
        return [ContributionPart(m.stream, sel, view)]
    num, den = d.numerator, d.denominator
    assert num is not None and den is not None
    if num.stream == den.stream:
        view = views[num.stream]
        rn, rd = records_of(num, d, view, as_of), records_of(den, d, view, as_of)
        cn, cd = rn.condition, rd.condition
        vn, vd = num.measure.aggregation.contribution(rn), den.measure.aggregation.contribution(rd)
        sel = sa.select(
            view.table.c[RID],
            sa.case((cn, vn), else_=0).label("contribution"),
            sa.case((cd, vd), else_=0).label("denominator_contribution"),
            sa.case((sa.and_(cn, cd), "both"), (cn, "numerator"), else_="denominator").label("role"),
        ).where(sa.or_(cn, cd))
        return [ContributionPart(num.stream, sel, view)]
    parts = []
    for metric, role in ((num, "numerator"), (den, "denominator")):
        view = views[metric.stream]
        records = records_of(metric, d, view, as_of)
        c = metric.measure.aggregation.contribution(records)
        sel = sa.select(
            view.table.c[RID],
            (c if role == "numerator" else sa.literal(0)).label("contribution"),
            (c if role == "denominator" else sa.literal(0)).label("denominator_contribution"),
            sa.literal(role).label("role"),
        ).where(records.condition)
        parts.append(ContributionPart(metric.stream, sel, view))
    return parts
