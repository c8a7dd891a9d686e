"""A key result's whole history at once: its value as of every past run, from the versioned records.

Every run computed its KRs as of its as-of time against a *snapshot* (each stream's last committed
sync). Record versions carry the syncs they were current in (``_from``/``_to``), so the records any
past run saw are still here. :func:`past_points` finds, for a KR's streams, each past run's as-of time
and snapshot; :func:`series` evaluates the KR at all of them in **one query per stream**, not one
per point:

* KRs that grouped cells answer (:func:`metrics.grouped.plan_points`: decomposable measures over
  exact values, windows that are a span of the time field) read their cells once, each also grouped
  by its versions' ``_from``/``_to``; a sweep in sync order keeps, per cell, a running total (counts,
  sums: :attr:`~metrics.measures.Aggregation.subtractive`) or the values present (min, max), so each
  point's tally is rolled up from the cells live at its sync — what a run there grouped. Work grows
  with records + changed versions + points, not their product.
* Others join the record versions to a table of the points (their snapshot and the as-of bounds of
  each point, :class:`metrics.compile.AsOfPoints`) and aggregate per point; sums and counts read the
  versions visible at every point once per distinct as-of bounds.

A point exists where the run would have recorded a value: runs that succeeded (or partly), whose
sync of each of the KR's streams did not fail in that run (a failed stream held its KRs) and after the
stream first synced. Values a ``max_jump_percent`` check would have held are included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import localcontext
from typing import Any

import sqlalchemy as sa

from metrics.compile import AsOfPoints
from metrics.definition import KrDefinition
from metrics.evaluate import Evaluation, StreamView, aggregate_terms, combine, evaluate, evaluation_of
from metrics.grouped import PointsPlan, plan_points
from metrics.measures import Aggregation
from okr_store import models as m
from okr_store.records import FROM, TO
from okr_store.store import Store

POINT, SYNC = "_okr_point", "_okr_sync"
# Measures whose term is not a plain aggregate (a median orders its records in a subquery): their
# history is evaluated point by point.
PER_POINT = ("median",)
# Measures whose terms (SUM, COUNT) add up over disjoint sets of record versions.
ADDITIVE = ("sum", "count")


@dataclass(frozen=True)
class Point:
    """A past run as a KR on ``snapshot``'s streams would have been computed in it."""

    run_id: str
    as_of: datetime
    snapshot: dict[str, int]  # stream → the sync id its records were read at


def past_points(conn: sa.Connection, streams: Sequence[str], *, since: datetime | None = None) -> list[Point]:
    """Each past run that would have recorded a value for a KR reading ``streams``, in history order
    (as-of, then start), with its snapshot; only those as of ``since`` or later when given."""
    r, sr = m.run.c, m.sync_run.c
    runs = conn.execute(sa.select(r.id, r.as_of, r.started_at, r.status).order_by(r.started_at, r.id)).all()
    syncs = conn.execute(
        sa.select(sr.id, sr.run_id, sr.stream, sr.status).where(sr.stream.in_(list(streams))).order_by(sr.id)
    ).all()
    by_run: dict[str, list[Any]] = {}
    for s in syncs:
        by_run.setdefault(s.run_id, []).append(s)
    latest: dict[str, int] = {}  # stream → last committed sync, in run order
    out = []
    for run in runs:
        failed = set()
        for s in by_run.get(run.id, ()):
            if s.status == "committed":
                latest[s.stream] = max(latest.get(s.stream, 0), s.id)
            else:
                failed.add(s.stream)
        if run.status not in ("succeeded", "partial") or failed & set(streams):
            continue
        if all(st in latest for st in streams) and (since is None or run.as_of >= since):
            out.append(Point(run.id, run.as_of, {st: latest[st] for st in streams}))
    out.sort(key=lambda p: p.as_of)  # stable: runs as of the same time stay in start order
    return out


def series_and_now(
    store: Store, d: KrDefinition, points: Sequence[Point], now: Point
) -> tuple[list[Evaluation], Evaluation]:
    """:func:`series` at ``points``, and the KR at ``now`` (the current snapshot): in the same pass
    when the KR's history comes from grouped cells (the cells a run groups, so the value a run would
    record), else evaluated on its own as a run does."""
    tables = _tables(store, d)
    plan = None if tables is None else _plan(store, d, [*points, now])
    if tables is not None and plan is not None:
        *past, current = _swept(store, d, plan, tables, [*points, now])
        return past, current
    return series(store, d, points), _one(store, d, now)


def _tables(store: Store, d: KrDefinition) -> dict[str, Any] | None:
    found = {s: store.streams.tables(s) for s in d.streams}
    return None if any(t is None for t in found.values()) else found


def _plan(store: Store, d: KrDefinition, points: Sequence[Point]) -> PointsPlan | None:
    tables = _tables(store, d)
    assert tables is not None
    if any(p.measure.value in PER_POINT for p in d.parts.values()):
        return None
    views = {s: StreamView(s, t.records, t.schema) for s, t in tables.items()}
    return plan_points(views, d, [p.as_of for p in points])


def series(store: Store, d: KrDefinition, points: Sequence[Point]) -> list[Evaluation]:
    """The KR's value at every point, in the points' order: one aggregate query per stream."""
    if not points:
        return []
    found = {s: store.streams.tables(s) for s in d.streams}
    if any(t is None for t in found.values()):
        missing = next(s for s, t in found.items() if t is None)
        raise ValueError(f"stream {missing!r} has never synced")
    tables = {s: t for s, t in found.items() if t is not None}
    if any(p.measure.value in PER_POINT for p in d.parts.values()):
        return [_one(store, d, p) for p in points]
    plan = _plan(store, d, points)
    if plan is not None:
        return _swept(store, d, plan, tables, points)
    views = {s: StreamView(s, t.records, t.schema) for s, t in tables.items()}
    at = AsOfPoints(d.period.period())
    terms, slots, union_slots = aggregate_terms(views, [d], at)
    additive = all(p.measure.value in ADDITIVE for p in d.parts.values())
    rows: list[dict[str, Any]] = [{} for _ in points]
    with store.engine.connect() as conn:
        for stream, cols in terms.items():
            rec = tables[stream].records
            labelled = [c.label(f"t{i}") for i, c in enumerate(cols)]
            syncs = [p.snapshot[stream] for p in points]
            lo, hi = min(syncs), max(syncs)
            # Visible at every point: what a version adds depends only on the points' as-of bounds.
            stable = sa.and_(rec.c[FROM] <= lo, sa.or_(rec.c[TO].is_(None), rec.c[TO] > hi))
            pts = _points_table(at, [(i, p.snapshot[stream], at.row(p.as_of)) for i, p in enumerate(points)])
            seen = sa.and_(rec.c[FROM] <= pts.c[SYNC], sa.or_(rec.c[TO].is_(None), rec.c[TO] > pts.c[SYNC]))
            q = sa.select(pts.c[POINT], *labelled).select_from(rec.join(pts, seen))
            if not additive:
                for row in conn.execute(q.group_by(pts.c[POINT])):
                    rows[row[0]][stream] = tuple(row[1:])
                continue
            # Sums and counts add up: the versions visible at every point once per distinct as-of
            # bounds (a day, for date windows), plus the few versions that changed, once per point.
            kinds: dict[tuple[Any, ...], int] = {}
            of_point = [kinds.setdefault(tuple(at.row(p.as_of).values()), len(kinds)) for p in points]
            bounds = _points_table(at, [(k, 0, dict(zip(at.needed, key, strict=True)))
                                        for key, k in kinds.items()])
            fixed: dict[int, tuple[Any, ...]] = {}
            sq = sa.select(bounds.c[POINT], *labelled).select_from(rec.join(bounds, sa.true()))
            for row in conn.execute(sq.where(stable).group_by(bounds.c[POINT])):
                fixed[row[0]] = tuple(row[1:])
            moving: dict[int, tuple[Any, ...]] = {}
            for row in conn.execute(q.where(sa.not_(stable)).group_by(pts.c[POINT])):
                moving[row[0]] = tuple(row[1:])
            for i in range(len(points)):
                parts = [t for t in (fixed.get(of_point[i]), moving.get(i)) if t is not None]
                if parts:
                    rows[i][stream] = tuple(_add(*column) for column in zip(*parts, strict=True))
    out = []
    for i, p in enumerate(points):
        if len(rows[i]) < len(terms):  # no record was visible at this point: evaluate it alone
            out.append(_one(store, d, p))
        else:
            out.append(combine(d, rows[i], slots, union_slots))
    return out


def _one(store: Store, d: KrDefinition, p: Point) -> Evaluation:
    """The KR at one point, as a run computes it."""
    views = {}
    for stream, sync in p.snapshot.items():
        found = store.view(stream, sync)
        assert found is not None
        views[stream] = StreamView(stream, found[0], found[1].schema)
    with store.engine.connect() as conn:
        return evaluate(conn, views, [d], p.as_of)[d.kr_id]


def _points_table(at: AsOfPoints, rows: list[tuple[int, int, dict[str, Any]]]) -> Any:
    """``WITH okr_points(_okr_point, _okr_sync, <as-of bounds>…) AS (VALUES …)`` (SQLite and
    PostgreSQL): one row per point (or per distinct bounds), each with its sync and its bounds."""
    names = list(at.needed.items())
    return (
        sa.values(
            sa.column(POINT, sa.Integer()),
            sa.column(SYNC, sa.BigInteger()),
            *(sa.column(name, typ) for name, (_, _, typ) in names),
            name="okr_points",
        )
        .data([(i, sync, *(b[name] for name, _ in names)) for i, sync, b in rows])
        .cte("okr_points")
    )


def _add(*values: Any) -> Any:
    """A term summed over disjoint sets of versions (an empty SUM is NULL)."""
    found = [v for v in values if v is not None]
    return sum(found[1:], found[0]) if found else None


def _swept(store: Store, d: KrDefinition, plan: PointsPlan, tables: dict[str, Any],
           points: Sequence[Point]) -> list[Evaluation]:
    """The KR at every point from one grouped query per stream over all record versions: the cells of
    :func:`metrics.grouped.plan_points`, each also grouped by the versions' ``_from``/``_to``. A sweep
    in sync order adds a cell's aggregates to its cell key when its versions appear and takes them out
    when they are replaced, so at each point the live cells are those a run at that point grouped;
    each point's tally is rolled up from them as a run's is."""
    at: list[dict[str, list[tuple[Any, ...]]]] = [{} for _ in points]
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # the cells' aggregate in memory: at 1M records and 1,000 runs, 0.35 s instead of 0.55 s
            # sorting on disk with the default 4MB (BENCHMARKS.md)
            conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        for stream, sp in plan.plans.items():
            rec = tables[stream].records
            width = len(sp.columns()[0]) + len(sp.columns()[1])
            rollups = sp.term_rollups()
            events: list[tuple[int, int, tuple[Any, ...], tuple[Any, ...]]] = []
            for row in conn.execute(sp.select([rec.c[FROM], rec.c[TO]])).all():  # fetchall: not row by row
                key, terms = tuple(row[:width]), tuple(row[width:-2])
                events.append((int(row[-2]), 1, key, terms))
                if row[-1] is not None:
                    events.append((int(row[-1]), 0, key, terms))  # replaced: out before any later add
            events.sort(key=lambda e: (e[0], e[1]))
            syncs = [p.snapshot[stream] for p in points]
            for i, live in _sweep(events, syncs, rollups):
                at[i][stream] = live
    return [evaluation_of(d, plan.tally(d, i, at[i])) for i in range(len(points))]


def _sweep(
    events: list[tuple[int, int, tuple[Any, ...], tuple[Any, ...]]], syncs: list[int],
    rollups: list[Aggregation | None],
) -> list[tuple[int, list[tuple[Any, ...]]]]:
    """Per point (index into ``syncs``, in sync order), the live cells at its sync: cell key and
    terms, as one row of the grouped select."""
    live: dict[tuple[Any, ...], _Cell] = {}
    out = []
    e = 0
    with localcontext() as ctx:
        ctx.prec = 1000  # running sums exact, as metrics.measures.exact_sum
        for i in sorted(range(len(syncs)), key=syncs.__getitem__):
            while e < len(events) and events[e][0] <= syncs[i]:
                _, add, key, terms = events[e]
                cell = live.get(key)
                if cell is None:
                    cell = live[key] = _Cell(rollups)
                cell.change(terms, add == 1)
                if not cell.cells:
                    del live[key]
                e += 1
            out.append((i, [(*key, *cell.terms()) for key, cell in live.items()]))
    return out


class _Cell:
    """The live cells of one cell key: per term a running total (a count, or a sum of a subtractive
    measure) or, for a min or max, how often each value occurs among the live cells."""

    def __init__(self, rollups: list[Aggregation | None]) -> None:
        self.rollups = rollups
        self.cells = 0
        self.totals: list[Any] = [None] * len(rollups)
        self.present = [0] * len(rollups)  # live cells with a non-NULL aggregate, per term
        self.values: list[dict[Any, int] | None] = [
            None if r is None or r.subtractive else {} for r in rollups
        ]
        self.rolled: list[Any] | None = None  # terms() until the next change

    def change(self, terms: tuple[Any, ...], add: bool) -> None:
        """Add (or take out) one cell's terms (under :func:`_sweep`'s exact decimal context)."""
        self.cells += 1 if add else -1
        self.rolled = None
        for j, v in enumerate(terms):
            if v is None:
                continue
            self.present[j] += 1 if add else -1
            seen = self.values[j]
            if seen is not None:
                seen[v] = seen.get(v, 0) + (1 if add else -1)
                if not seen[v]:
                    del seen[v]
            elif self.totals[j] is None:
                self.totals[j] = v if add else -v
            else:
                self.totals[j] = self.totals[j] + v if add else self.totals[j] - v

    def terms(self) -> list[Any]:
        if self.rolled is not None:
            return self.rolled
        out: list[Any] = []
        for j, r in enumerate(self.rollups):
            seen = self.values[j]
            if not self.present[j]:
                out.append(None)
            elif seen is not None:
                assert r is not None
                out.append(r.rollup(seen))
            else:
                out.append(self.totals[j])
        self.rolled = out
        return out
