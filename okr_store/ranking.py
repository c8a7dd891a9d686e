"""Each value's first contributions in drill order, written when the value is recorded.

A drill's default page (contribution descending, then record id) is otherwise a top-N sort over every
record behind the value: ~300 ms at 800k records on PostgreSQL. Values never change, so the record ids
at their first positions (up to :data:`TOP`) are stored once, right after a run records them
(:func:`record_ranks`), and a drill reads a page of them back through the primary key
(:func:`ranked_part`). The contributions themselves are not stored: they are evaluated again from those
record versions with the value's own definition, so a stored page and a live one cannot disagree.
Whatever the stored positions do not cover (later pages, other sorts, filters, values recorded before
this table existed) is answered by the live query.

Cost at compute time: a KR whose records contribute a plain field or a constant (sum, avg, min, max,
count, and a ratio on one stream whose numerator is a measure of a field or a count) takes its first
positions from its stream's *shared order* by that field: the stream's first :data:`PREFIX` records in
that order (a walk of the order's index, :mod:`okr_store.order_index`, which a sync builds for the fields
its KRs rank by; without one, a top-N heap that, on PostgreSQL, only sees the records at or above a
threshold guessed from a 1 % page sample; for counts, the primary key's order). KRs that differ only in
pinned dimension values and period (:func:`metrics.grouped.cells`) share that prefix by *cells*: one scan
of it per metric shape keeps each cell's first :data:`TOP` records, and each KR numbers the records of
the cells it covers (a join on its cell codes), all in one INSERT … SELECT per shared order, with no
per-KR scan and no round trip through Python. Other KRs of a shared order scan the prefix once each. A KR
counting few of the :data:`PREFIX` records gets fewer positions (exact still, as the order is the same)
and its later pages are live. Other single-stream values (period averages, days_between) take one
top-:data:`TOP` query each; values of a measure that is not ``rankable`` (``count_distinct``: whether a
record counts as distinct depends on the records before it) and ratios over two streams get none, as two
streams have no common order. A value whose records did not change since its KR's previous value (same
definition, record count and conditions, no record version begun or ended between the two syncs: a run on
an unchanged stream) copies that value's positions instead.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors

from metrics.definition import KrDefinition
from metrics.evaluate import ContributionPart, StreamView, contribution_parts, part_condition
from metrics.grouped import Cover, cells
from metrics.spec import SimpleMetric
from okr_store import models as m
from okr_store.order_index import ensure_order_index
from okr_store.records import FROM, RID, TO, visible
from okr_store.store import Store

TOP = 500  # positions stored per value: ten pages of 50
PREFIX = 20_000  # records of a stream's shared order that the KRs take their first positions from


@dataclass(frozen=True)
class Ranked:
    """A recorded value whose first positions are to be stored."""

    value_id: int
    definition: KrDefinition
    records: int
    # the stream versions the value stands on: with them, a value whose records did not change since
    # the KR's previous value takes that value's positions (:func:`_reuse`)
    snapshot: Mapping[str, int | None] | None = None


def rankable(d: KrDefinition) -> bool:
    """Whether values of ``d`` can have stored positions: one stream, and (a simple metric) a measure whose
    contributions each depend on their own record alone."""
    if d.metric is not None:
        return d.metric.measure.aggregation.rankable
    assert d.numerator is not None and d.denominator is not None
    return d.numerator.stream == d.denominator.stream


def _shared_key(d: KrDefinition) -> tuple[str, str | None] | None:
    """(stream, field, or None for a constant) when the KR's first positions can come from its stream's
    shared order by that field."""
    metric = d.metric if d.metric is not None else d.numerator
    if metric is None or metric.window == "period_average" or getattr(metric, "days_between", None):
        return None
    if metric.measure.aggregation.counts_records:
        return metric.stream, None
    if metric.field is not None:
        return metric.stream, metric.field
    return None


def order_fields(defs: Iterable[KrDefinition], stream: str) -> set[str]:
    """The fields of ``stream`` by whose shared order values of ``defs`` take their first positions."""
    keys = {_shared_key(d) for d in defs if rankable(d)}
    return {key[1] for key in keys if key is not None and key[0] == stream and key[1] is not None}


def _order(t: sa.FromClause, field: str | None) -> list[Any]:
    return [t.c[field].desc(), t.c[RID]] if field is not None else [t.c[RID]]


def _positions(value_id: int, rank: Any, rid: Any) -> list[Any]:
    return [sa.literal(value_id, sa.BigInteger).label("value_id"), rank.label("position"),
            rid.label("record_id")]


def _leading(d: KrDefinition, view: StreamView, field: str | None, as_of: datetime) -> sa.ColumnElement[bool]:
    """A KR's leading records within the shared order, in the same order: those it counts; for a ratio,
    its numerator records that contribute more than 0 (they rank before every other record of it)."""
    if d.metric is not None:
        return part_condition(d.metric, d, view, as_of)
    assert d.numerator is not None
    cond = part_condition(d.numerator, d, view, as_of)
    return cond if field is None else sa.and_(cond, view.table.c[field] > 0)


def _columns(cond: sa.ColumnElement[bool], t: sa.FromClause) -> set[str]:
    """The names of the columns of ``t`` that ``cond`` reads."""
    return {e.name for e in visitors.iterate(cond) if isinstance(e, sa.Column) and e.table is t}


def _prefix(
    view: StreamView, field: str | None, group: Sequence[Ranked], as_of: datetime,
    sample: sa.FromClause | None,
) -> sa.CTE:
    """The stream's first :data:`PREFIX` records in the shared order, numbered (``_g``), with the columns
    the KRs' conditions read. With ``sample`` (PostgreSQL: a page sample of the records table), only the
    records at or above a threshold reach the top-N heap: the value ranked ``PREFIX`` × 1.5 / 100 in a
    1 % sample. Those are still a prefix of the order (ties included), so the positions stay exact; a
    sample that guesses too high only leaves fewer records to take positions from."""
    t = view.table
    # Only the columns the KRs' conditions read go through the top-N heap: it copies every row it sees.
    used = {RID, *([field] if field else [])}
    for r in group:
        used |= _columns(_leading(r.definition, view, field, as_of), t)
    cut = sa.select(*(c for c in t.c if c.name in used))
    if field is not None:
        cut = cut.where(t.c[field].is_not(None))
        if sample is not None:
            col = sample.c[field]
            guess = (sa.select(col).where(col.is_not(None)).order_by(col.desc())
                     .offset(PREFIX * 3 // 200 - 1).limit(1).scalar_subquery())
            cut = cut.where(sa.func.coalesce(t.c[field] >= guess, sa.true()))  # no guess: no threshold
    first = cut.order_by(*_order(t, field)).limit(PREFIX).subquery("first")
    numbered = sa.func.row_number().over(order_by=_order(first, field)).label("_g")
    return sa.select(first, numbered).cte("prefix")


def _branches(prefix: sa.CTE, view: StreamView, field: str | None, group: Sequence[Ranked],
              as_of: datetime) -> sa.Insert:
    """One INSERT numbering each KR's leading records within the prefix: a scan of it per KR."""
    within = StreamView(view.stream, prefix, view.schema)
    branches = []
    for r in group:
        rank = sa.func.row_number().over(order_by=prefix.c._g)
        cond = _leading(r.definition, within, field, as_of)
        ranked = sa.select(*_positions(r.value_id, rank, prefix.c[RID])).where(cond).subquery()
        branches.append(sa.select(ranked).where(ranked.c.position <= TOP))
    return m.kr_value_top.insert().from_select(["value_id", "position", "record_id"], sa.union_all(*branches))


def _leading_metric(d: KrDefinition) -> SimpleMetric:
    metric = d.metric if d.metric is not None else d.numerator
    assert metric is not None
    return metric


_ANY = 1 << 30  # a code range that holds every code (codes are -1 … the number of values or bounds)


def _same(cond: sa.ColumnElement[bool]) -> Any:
    """A key equal for conditions that pick the same records (shapes of different measures over the same
    filter: sum and avg of a field), else the condition itself."""
    try:
        return str(cond.compile(compile_kwargs={"literal_binds": True}))
    except (sa.exc.CompileError, NotImplementedError):  # a value with no literal form
        return cond


def _ranges(cover: Cover, width: int) -> list[tuple[int, int]]:
    """The codes a cover accepts in each of the ``width`` code columns, as inclusive ranges."""
    out = [(-_ANY, _ANY)] * width
    constraints = [(col, code, code) for col, code in cover.pins]
    if cover.span is not None:
        constraints.append(cover.span)
    for col, low, high in constraints:
        out[col] = (max(out[col][0], low), min(out[col][1], high))
    return out


def _by_cells(
    prefix: sa.CTE, view: StreamView, field: str | None, group: Sequence[Ranked], as_of: datetime
) -> tuple[sa.Insert | None, list[Ranked]]:
    """One INSERT of the positions of the KRs that grouped cells can answer
    (:func:`metrics.grouped.cells`), and the other KRs. One scan of the prefix per metric shape keeps
    each cell's first :data:`TOP` records of that shape; a KR's first positions are the first
    :data:`TOP` of the cells it covers (a join on the codes each KR accepts), numbered: a record among
    a KR's first :data:`TOP` is among the first :data:`TOP` of its own cell."""
    within = StreamView(view.stream, prefix, view.schema)
    found = cells(within, as_of, [(_leading_metric(r.definition), r.definition) for r in group])
    if found is None:
        return None, list(group)
    # (the records of a metric shape, ratio numerator: contributes > 0) → kind of leading records
    kinds: dict[tuple[Any, bool], int] = {}
    first: dict[int, int] = {}  # kind → a metric shape with those records
    wanted: list[Any] = []
    rest: list[Ranked] = []
    width = len(found.codes)
    for r, cover in zip(group, found.covers, strict=True):
        if cover is None:
            rest.append(r)
            continue
        key = (_same(found.shapes[cover.shape]), r.definition.metric is None and field is not None)
        kind = kinds.setdefault(key, len(kinds))
        first.setdefault(kind, cover.shape)
        bounds = [sa.literal(b).label(f"{e}{i}") for i, rng in enumerate(_ranges(cover, width))
                  for e, b in zip("lh", rng, strict=True)]
        wanted.append(sa.select(sa.literal(r.value_id, sa.BigInteger).label("value_id"),
                                sa.literal(kind).label("kind"), *bounds))
    if not wanted:
        return None, rest
    codes = [c.label(f"c{i}") for i, c in enumerate(found.codes)]
    branches = []
    for (_, positive), kind in kinds.items():
        cond = found.shapes[first[kind]]
        if positive and field is not None:
            cond = sa.and_(cond, prefix.c[field] > 0)
        sub = sa.select(prefix.c[RID], prefix.c._g, *codes).where(cond).subquery()
        keys = [sub.c[f"c{i}"] for i in range(width)]
        rank = sa.func.row_number().over(partition_by=keys, order_by=sub.c._g).label("n")
        numbered = sa.select(sa.literal(kind).label("kind"), sub, rank).subquery()
        branches.append(sa.select(numbered).where(numbered.c.n <= TOP))
    cand = sa.union_all(*branches).subquery("cand")
    krs = sa.union_all(*wanted).subquery("krs")
    on = [cand.c.kind == krs.c.kind]
    on += [cand.c[f"c{i}"].between(krs.c[f"l{i}"], krs.c[f"h{i}"]) for i in range(width)]
    position = sa.func.row_number().over(partition_by=krs.c.value_id, order_by=cand.c._g).label("position")
    ranked = (sa.select(krs.c.value_id, position, cand.c[RID].label("record_id"))
              .join_from(cand, krs, sa.and_(*on)).subquery())
    insert = m.kr_value_top.insert().from_select(
        ["value_id", "position", "record_id"], sa.select(ranked).where(ranked.c.position <= TOP))
    return insert, rest


def _shared(
    conn: sa.Connection, view: StreamView, field: str | None, group: Sequence[Ranked], as_of: datetime,
    sample: sa.FromClause | None,
) -> None:
    """The first positions of the KRs of one shared order, all taken from the stream's first
    :data:`PREFIX` records in that order: by cells where they can, else one branch per KR."""
    prefix = _prefix(view, field, group, as_of, sample)
    insert, rest = _by_cells(prefix, view, field, group, as_of)
    if insert is not None:
        conn.execute(insert)
    if rest:
        conn.execute(_branches(prefix, view, field, rest, as_of))


def _single(part: ContributionPart, value_id: int) -> sa.Insert:
    """The first positions of one value from its own top-:data:`TOP` query."""
    sub = part.select.subquery()
    top = (
        sa.select(sub.c[RID], sub.c.contribution)
        .order_by(sub.c.contribution.desc(), sub.c[RID])
        .limit(TOP)
        .subquery()
    )
    rank = sa.func.row_number().over(order_by=[top.c.contribution.desc(), top.c[RID]])
    return m.kr_value_top.insert().from_select(
        ["value_id", "position", "record_id"], sa.select(*_positions(value_id, rank, top.c[RID]))
    )


def _condition_text(d: KrDefinition, views: Mapping[str, StreamView], as_of: datetime) -> str | None:
    """The SQL of which records count for each part of ``d`` at ``as_of``, values inlined (None: a value
    with no literal form)."""
    try:
        return "\n".join(str(part_condition(metric, d, views[metric.stream], as_of).compile(
            compile_kwargs={"literal_binds": True})) for metric in d.parts.values())
    except (sa.exc.CompileError, NotImplementedError):
        return None


def _unchanged(conn: sa.Connection, store: Store, stream: str, before: int | None, now: int | None) -> bool:
    """Whether the records of ``stream`` visible at sync ``before`` are those visible at ``now``: no
    version began or ended in between (two range lookups on the version indexes)."""
    if before == now:
        return True
    tables = store.streams.tables(stream)
    if before is None or now is None or now < before or tables is None:
        return False
    t = tables.records
    moved = sa.or_(sa.and_(t.c[FROM] > before, t.c[FROM] <= now), sa.and_(t.c[TO] > before, t.c[TO] <= now))
    return conn.execute(sa.select(t.c[RID]).where(moved).limit(1)).first() is None


def _reuse(
    conn: sa.Connection, store: Store, views: Mapping[str, StreamView], values: Sequence[Ranked],
    as_of: datetime,
) -> list[Ranked]:
    """Give each value whose KR's previous value stands on the same records, with the same definition,
    record count and conditions (a run on an unchanged stream), that value's positions (one INSERT …
    SELECT of them); returns the values left to rank."""
    known = {r.definition.kr_id: r for r in values if r.snapshot is not None}
    if not known:
        return list(values)
    v = m.kr_value.c
    newest = min(r.value_id for r in values)
    last = (sa.select(sa.func.max(v.id).label("id")).where(v.kr_id.in_(list(known)), v.id < newest)
            .group_by(v.kr_id).subquery())
    stored = sa.exists().where(m.kr_value_top.c.value_id == v.id)  # a value whose ranking failed: rank
    before = conn.execute(sa.select(v.id, v.kr_id, v.definition_hash, v.records, v.snapshot, v.as_of)
                          .join(last, last.c.id == v.id).where(stored)).all()
    pairs: list[tuple[int, int]] = []
    for old in before:
        r = known[old.kr_id]
        d = r.definition
        assert r.snapshot is not None
        then = json.loads(old.snapshot or "{}")
        if (old.definition_hash != d.hash or old.records != r.records
                or not all(_unchanged(conn, store, s, then.get(s), r.snapshot.get(s)) for s in d.streams)):
            continue
        at = old.as_of if as_of.tzinfo is None else old.as_of.replace(tzinfo=UTC)  # stored naive UTC
        text = _condition_text(d, views, as_of)
        if text is not None and text == _condition_text(d, views, at):
            pairs.append((old.id, r.value_id))
    if not pairs:
        return list(values)
    top = m.kr_value_top.c
    pairing = sa.union_all(*(sa.select(sa.literal(o, sa.BigInteger).label("old"),
                                       sa.literal(n, sa.BigInteger).label("new"))
                             for o, n in pairs)).subquery()
    conn.execute(m.kr_value_top.insert().from_select(
        ["value_id", "position", "record_id"],
        sa.select(pairing.c.new, top.position, top.record_id).join(pairing, pairing.c.old == top.value_id)))
    copied = {n for _, n in pairs}
    return [r for r in values if r.value_id not in copied]


def record_ranks(
    store: Store, views: Mapping[str, StreamView], values: Sequence[Ranked], as_of: datetime
) -> None:
    """Store the first positions of freshly recorded values (computed on ``views``, at ``as_of``)."""
    values = [r for r in values
              if r.records > 0 and rankable(r.definition) and all(s in views for s in r.definition.streams)]
    if not values:
        return
    # before the ranking transaction: on SQLite a second connection cannot write while it reads
    indexed: set[tuple[str, str | None]] = set()
    for stream in {s for r in values for s in r.definition.streams}:
        indexed |= {(stream, f) for f in order_fields((r.definition for r in values), stream)
                    if _indexed(store, stream, f)}
    with store.engine.begin() as conn:
        values = _reuse(conn, store, views, values, as_of)
        if values:
            _rank(conn, store, views, values, as_of, indexed)


def _indexed(store: Store, stream: str, field: str) -> bool:
    tables = store.streams.tables(stream)
    return tables is not None and ensure_order_index(store.engine, tables.records, field)


def _rank(
    conn: sa.Connection, store: Store, views: Mapping[str, StreamView], values: Sequence[Ranked],
    as_of: datetime, indexed: set[tuple[str, str | None]],
) -> None:
    groups: dict[tuple[str, str | None], list[Ranked]] = defaultdict(list)
    single: list[Ranked] = []
    for r in values:
        d = r.definition
        key = _shared_key(d)
        if key is None:
            single.append(r)
        else:
            groups[key].append(r)
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))  # the shared top-N heap stays in memory
        # these statements are planned as costly (a scan of the stream) but run once: compiling
        # their expressions (JIT) took longer than running them
        conn.execute(sa.text("SET LOCAL jit = off"))
    for (stream, field), group in groups.items():
        # with the order's index the prefix is a walk of its first entries: no threshold to guess
        tables = store.streams.tables(stream) if pg and (stream, field) not in indexed else None
        sample = None if tables is None else tables.records.tablesample(sa.func.system(1))
        _shared(conn, views[stream], field, group, as_of, sample)
    for r in single:
        (part,) = contribution_parts(views, r.definition, as_of)
        conn.execute(_single(part, r.value_id))


def ranked_part(
    conn: sa.Connection,
    store: Store,
    d: KrDefinition,
    value_id: int,
    snapshot: Mapping[str, int | None],
    as_of: datetime,
    *,
    records: int,
    limit: int,
    offset: int,
) -> ContributionPart | None:
    """The contributions at positions ``offset + 1 … offset + limit`` of a value, from its stored
    positions; None when they do not cover that page (the caller asks the live query)."""
    if not rankable(d) or offset >= TOP:
        return None
    top = m.kr_value_top.c
    in_page = sa.and_(top.value_id == value_id, top.position > offset, top.position <= offset + limit)
    stored = conn.execute(sa.select(sa.func.count()).where(in_page)).scalar_one()
    if stored == 0 or stored != min(limit, records - offset):
        return None
    (stream,) = set(d.streams)
    tables = store.streams.tables(stream)
    if tables is None:
        return None
    rec = tables.records
    page = (
        sa.select(rec)
        .join(m.kr_value_top, top.record_id == rec.c[RID])
        .where(in_page, visible(rec, snapshot.get(stream)))
        .subquery("ranked")
    )
    (part,) = contribution_parts({stream: StreamView(stream, page, tables.schema)}, d, as_of)
    return part
