"""Binding a KR (issue 16): the preview (value now and the top contributing records) and the history
back-fill (the value as of every past run, :mod:`okr_store.history`), on PostgreSQL, each against a
plain SQL baseline measured in the same run.

* **Setup** (untimed): a PostgreSQL store with one stream of ``rows`` orders (region, state, order
  date, amount) committed by a first run, then ``points − 1`` more runs (one hour apart) each
  committing a sync that changes ``changes`` orders' amounts: ``points`` runs in all, a quarter of
  hourly syncs at the default 1,000. The first :data:`REAL_RUNS` commit through the store's sync
  path, the others are written in bulk as those commits write them (:func:`_bulk`).
* **Preview** (okrsync): :func:`metrics.evaluate.evaluate` of a KR pinned to ``region = EMEA`` on the
  current snapshot, then :func:`okr_store.lineage.top_records` (10); and what ``okrsync kr preview``
  reads, the value now with the whole history (:func:`okr_store.history.series_and_now`) then the top
  10. **Baseline**: the same sum and the same top 10 as two hand-written SQL statements.
* **Back-fill** (okrsync): :func:`okr_store.history.past_points` and :func:`okr_store.history.series`
  for a sum, an average and a max. **Baselines**: one plain SQL query per point (timed on
  :data:`SAMPLE` points spread over the history, scaled to all), one plain statement (the value at
  one point), and up to :data:`JOIN_UP_TO` records × points the join of every version to every point
  as one hand-written statement.
* **Checks**: the preview equals the plain statements; the back-filled values and record counts
  equal the plain per-point query at the sampled points (and the plain join at every point when it
  runs).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from bench.core import Results, Row, median_of

PHASE = "bind a KR"
MEASURES = ("sum", "avg", "max")  # back-filled and checked; the preview reads the sum
SAMPLE = 12  # points checked against (and timed for) one plain query per point
JOIN_UP_TO = 20_000_000  # records × points up to which the plain join (every version × every point) runs
Q4 = "2026-Q4"


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


def _frame(rows: int, seed: int = 16) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = np.arange(1, rows + 1)
    days = rng.integers(0, 120, rows)
    return pd.DataFrame(
        {
            "_rid": ids.astype(str),
            "id": ids,
            "region": rng.choice(np.array(["EMEA", "AMER", "APAC"]), rows),
            "state": rng.choice(np.array(["draft", "confirmed", "done"]), rows),
            "order_date": [date(2026, 9, 1) + timedelta(days=int(d)) for d in days],
            "amount": [Decimal(int(c)) / 100 for c in rng.integers(100, 500_000, rows)],
        }
    )


REAL_RUNS = 3  # runs committed through the store's own sync path; the rest are written in bulk


def _schema() -> Any:
    from okrsync.schema import Field, FieldType, StreamSchema

    return StreamSchema(
        (
            Field("id", FieldType.INTEGER),
            Field("region", FieldType.STRING),
            Field("state", FieldType.STRING),
            Field("order_date", FieldType.DATE),
            Field("amount", FieldType.DECIMAL, scale=2),
        )
    )


def _changes(frame: Any, i: int, changes: int) -> Any:
    """The orders run ``i`` changes: ``changes`` of them (none twice), amount raised by ``i``."""
    import numpy as np

    rows = np.random.default_rng(i).choice(len(frame), size=min(changes, len(frame)), replace=False)
    picked = frame.iloc[np.sort(rows)].copy()
    picked["amount"] = [a + Decimal(i) for a in picked["amount"]]
    return picked


def build(url: str, rows: int, points: int, changes: int) -> tuple[Any, datetime]:
    """The store: ``points`` hourly runs, each committing one sync of the orders stream. The first
    :data:`REAL_RUNS` go through the store's own sync path (begin_sync, stage, commit); the others are
    written in bulk (:func:`_bulk`) as those commits write them — a commit through the real path costs
    a scan of the 1M live versions (≈ 0.5 s here), ≈ 10 minutes for a quarter of hourly runs."""
    from okr_store.store import Store

    store = Store(url)
    frame = _frame(rows)
    start = datetime(2026, 11, 1)
    for i in range(min(points, REAL_RUNS)):
        run_id = store.start_run(start + timedelta(hours=i), None)
        writer = store.begin_sync(run_id, "orders", "erp", ("id",), _schema(), reconcile=False)
        if i == 0:
            for lo in range(0, rows, 100_000):
                writer.stage(frame.iloc[lo : lo + 100_000])
        else:
            writer.stage(_changes(frame, i, changes))
        writer.commit(None)
        store.finish_run(run_id, "succeeded")
    if points > REAL_RUNS:
        _bulk(store, frame, start, range(REAL_RUNS, points), changes)
    return store, start + timedelta(hours=points - 1)


def _bulk(store: Any, frame: Any, start: datetime, runs: range, changes: int) -> None:
    """Runs ``runs`` as their syncs would commit them, in a few statements: a run and a committed sync
    row each, every changed order's new version (``_from`` its sync, ``_to`` the sync that changes it
    next, its row hash as staging computes it), the versions they replace closed, the stream's last
    sync advanced, the table analyzed. :func:`run` checks the result against plain SQL."""
    import pandas as pd

    from okr_store import models as m
    from okr_store.arrow_text import row_hashes
    from okr_store.records import FROM, HASH, TO, utcnow
    from okr_store.staging import write_staged

    tables = store.streams.tables("orders")
    rec = tables.records
    fields = tuple(f.name for f in tables.schema.fields)
    batches = []
    with store.engine.begin() as conn:
        for i in runs:
            as_of, now = start + timedelta(hours=i), utcnow()
            run_id = f"bench-{i:06d}"
            conn.execute(m.run.insert().values(id=run_id, started_at=now, finished_at=now, as_of=as_of,
                                               status="succeeded"))
            picked = _changes(frame, i, changes)
            sync = conn.execute(
                m.sync_run.insert().values(run_id=run_id, stream="orders", started_at=now, finished_at=now,
                                           status="committed", rows_read=len(picked), keys_read=0,
                                           inserted=0, updated=len(picked), deleted=0)
                .returning(m.sync_run.c.id)
            ).scalar_one()
            batches.append(picked.assign(**{FROM: sync}))
        versions = pd.concat(batches, ignore_index=True).sort_values(["_rid", FROM], kind="stable")
        versions[TO] = versions.groupby("_rid", sort=False)[FROM].shift(-1).astype("Int64")
        versions[HASH] = row_hashes(versions, fields)
        first = int(versions[FROM].min())
        write_staged(conn, rec, versions[["_rid", FROM, TO, HASH, *fields]], replace=False)
        name = conn.dialect.identifier_preparer.format_table(rec)
        conn.execute(sa.text(  # the versions live before the bulk runs, closed by their first change
            f"UPDATE {name} r SET {TO} = f.s FROM (SELECT _rid, min({FROM}) AS s FROM {name} "  # noqa: S608 - our table
            f"WHERE {FROM} >= :first GROUP BY _rid) f WHERE r._rid = f._rid AND r.{TO} IS NULL "
            f"AND r.{FROM} < :first"), {"first": first})
        conn.execute(m.stream_state.update().where(m.stream_state.c.name == "orders")
                     .values(last_sync_id=int(versions[FROM].max())))
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"ANALYZE {name}")


def _definition(measure: str = "sum") -> Any:
    from metrics.definition import build_definition
    from metrics.periods import parse_period
    from metrics.spec import SimpleMetric

    m = SimpleMetric.model_validate(
        {
            "name": "revenue",
            "stream": "orders",
            "measure": measure,
            "field": "amount",
            "time_field": "order_date",
            "dimensions": ["region"],
            "filter": {"field": "state", "op": "in", "value": ["confirmed", "done"]},
        }
    )
    return build_definition(f"KR-BENCH-{measure}", m, {"revenue": m}, {"region": "EMEA"}, parse_period(Q4))


def _preview(store: Any, d: Any, now: datetime) -> tuple[Decimal | None, list[str]]:
    from metrics.evaluate import StreamView, evaluate
    from okr_store import lineage

    snapshot = store.snapshot(d.streams)
    sub, tables = store.view("orders", snapshot["orders"])
    with store.engine.connect() as conn:
        e = evaluate(conn, {"orders": StreamView("orders", sub, tables.schema)}, [d], now)[d.kr_id]
    return e.value, [r.record_id for r in lineage.top_records(store, d, snapshot, now, 10)]


def _full_preview(store: Any, d: Any, now: datetime) -> tuple[Decimal | None, list[str], int]:
    """What ``okrsync kr preview`` reads: the value now and the history at every past run in one pass
    (:func:`okr_store.history.series_and_now`), then the top 10 records."""
    from okr_store import history, lineage

    snapshot = store.snapshot(d.streams)
    with store.engine.connect() as conn:
        past = history.past_points(conn, d.streams)
    values, e = history.series_and_now(store, d, past, history.Point("", now, snapshot))
    return e.value, [r.record_id for r in lineage.top_records(store, d, snapshot, now, 10)], len(values)


WHERE = (
    "r.region = 'EMEA' AND r.state IN ('confirmed', 'done') AND r.order_date >= DATE '2026-10-01' "
    "AND r.order_date <= {last} AND r.amount IS NOT NULL"
)


def _plain_preview(store: Any, now: datetime) -> tuple[Decimal | None, list[str]]:
    table = store.streams.tables("orders").records.name
    snap = store.snapshot(["orders"])["orders"]
    seen = f"r._from <= {int(snap)} AND (r._to IS NULL OR r._to > {int(snap)})"
    where = WHERE.format(last=f"DATE '{min(now.date(), date(2026, 12, 31)).isoformat()}'")
    with store.engine.connect() as conn:
        total = conn.execute(
            sa.text(f"SELECT sum(r.amount) FROM {table} r WHERE {seen} AND {where}")  # noqa: S608 - our table name, ints and dates
        ).scalar()
        top = (
            conn.execute(
                sa.text(
                    f"SELECT r._rid FROM {table} r WHERE {seen} AND {where} "  # noqa: S608 - our table name, ints and dates
                    "ORDER BY r.amount DESC, r._rid LIMIT 10"
                )
            )
            .scalars()
            .all()
        )
    return total, list(top)


def _plain_join(store: Any, points: list[Any]) -> list[Decimal | None]:
    table = store.streams.tables("orders").records.name
    rows = ", ".join(
        f"({i}, {int(p.snapshot['orders'])}, DATE '{min(p.as_of.date(), date(2026, 12, 31))}')"
        for i, p in enumerate(points)
    )
    where = WHERE.format(last="p.last")
    q = (
        f"WITH p(i, sync, last) AS (VALUES {rows}) SELECT p.i, sum(CASE WHEN {where} THEN r.amount END) "  # noqa: S608 - our table name, ints and dates
        f"FROM {table} r JOIN p ON r._from <= p.sync AND (r._to IS NULL OR r._to > p.sync) GROUP BY p.i"
    )
    out: list[Decimal | None] = [None] * len(points)
    with store.engine.connect() as conn:
        for i, v in conn.execute(sa.text(q)):
            out[i] = v
    return out


def _plain_loop(store: Any, points: list[Any]) -> list[tuple[Decimal | None, int, Decimal | None]]:
    """Sum, count and max of the KR's records at each point: one plain statement per point."""
    table = store.streams.tables("orders").records.name
    out = []
    with store.engine.connect() as conn:
        for p in points:
            s = int(p.snapshot["orders"])
            where = WHERE.format(last=f"DATE '{min(p.as_of.date(), date(2026, 12, 31))}'")
            row = conn.execute(
                sa.text(
                    f"SELECT sum(r.amount), count(*), max(r.amount) FROM {table} r WHERE r._from <= {s} AND "  # noqa: S608 - our table name, ints and dates
                    f"(r._to IS NULL OR r._to > {s}) AND {where}"
                )
            ).one()
            out.append((row[0], int(row[1]), row[2]))
    return out


def _expected(measure: str, plain: tuple[Decimal | None, int, Decimal | None]) -> Decimal | None:
    """The KR's value from a point's plain sum, count and max."""
    from metrics.measures import PLACES

    total, n, top = plain
    if measure == "sum":
        return total if total is not None else Decimal(0)
    if measure == "avg":
        return None if not n or total is None else (total / n).quantize(PLACES)
    return top if n else None


def _sample(n: int, k: int) -> list[int]:
    """``k`` point indices spread evenly over ``n`` (the first and the last included)."""
    if n <= k:
        return list(range(n))
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})


def run(res: Results, url: str, *, rows: int, points: int, changes: int = 100, repeats: int = 3) -> None:
    """Measure preview and back-fill into ``res`` (``url``: an empty PostgreSQL database)."""
    from okr_store import history

    say(f"bind a KR: {rows:,} orders, {points:,} hourly runs ({changes} orders changed by each) …")
    started = time.perf_counter()
    store, now = build(url, rows, points, changes)
    say(f"  store built in {time.perf_counter() - started:.0f} s")
    d = _definition()
    try:
        (value, top), preview_s, _ = median_of(repeats, lambda: _preview(store, d, now))
        (pvalue, ptop), plain_s, _ = median_of(repeats, lambda: _plain_preview(store, now))
        res.check(
            "preview value and top records equal plain SQL",
            value == pvalue and top == ptop,
            f"{value} vs {pvalue}; top {top[:3]}… vs {ptop[:3]}…",
        )
        (fvalue, ftop, n), full_s, _ = median_of(repeats, lambda: _full_preview(store, d, now))
        res.check(
            "full preview (value now, history, top records) equals plain SQL now",
            fvalue == pvalue and ftop == ptop and n == points,
            f"{fvalue} vs {pvalue}; {n:,} history points",
        )
        res.add(
            Row(
                PHASE,
                f"preview with history: value now + top 10 + {points:,} past points ({rows:,} records)",
                full_s,
                "s",
                "2 hand-written SQL statements (sum; top 10)",
                plain_s,
                note="target < 1 s",
            )
        )
        res.add(
            Row(
                PHASE,
                f"preview: value now + top 10 records ({rows:,} records)",
                preview_s,
                "s",
                "2 hand-written SQL statements (sum; top 10)",
                plain_s,
                note="target < 1 s",
            )
        )

        with store.engine.connect() as conn:
            pts = history.past_points(conn, d.streams)
        picked = _sample(len(pts), SAMPLE)
        plain, loop_s, _ = median_of(1, lambda: _plain_loop(store, [pts[i] for i in picked]))
        per_point = loop_s / len(picked)
        joined = None
        if rows * points <= JOIN_UP_TO:
            joined, join_s, _ = median_of(repeats, lambda: _plain_join(store, pts))
        for measure in MEASURES:
            dm = d if measure == "sum" else _definition(measure)

            def backfill(dm: Any = dm) -> list[Any]:
                with store.engine.connect() as conn:
                    found = history.past_points(conn, dm.streams)
                return history.series(store, dm, found)

            got, fill_s, _ = median_of(repeats, backfill)
            values = [e.value for e in got]
            want = [(_expected(measure, plain[j]), plain[j][1]) for j in range(len(picked))]
            res.check(
                f"back-filled {measure} equals plain SQL at {len(picked)} sampled points"
                + (" and the plain join at every point" if joined is not None and measure == "sum" else ""),
                len(got) == points
                and [(got[i].value, got[i].records) for i in picked] == want
                and (joined is None or measure != "sum" or values == [v if v is not None else Decimal(0)
                                                                      for v in joined]),
                f"{len(got):,} points; at point {picked[-1]}: {got[picked[-1]].value} vs {want[-1][0]}",
            )
            what = f"back-fill ({measure}): {points:,} as-of points ({rows:,} records)"
            if joined is not None and measure == "sum":
                res.add(Row(PHASE, what, fill_s, "s", "the same join as 1 hand-written SQL statement",
                            join_s, note="target < 5 s"))
            res.add(Row(PHASE, what, fill_s, "s", "1 plain SQL statement (the value at one point)",
                        per_point, note="how many plain evaluations the whole history costs"))
            res.add(
                Row(
                    PHASE,
                    what,
                    fill_s,
                    "s",
                    f"plain SQL, one query per point ({len(picked)} timed, × {points:,} / {len(picked)})",
                    per_point * points,
                    note="target < 5 s",
                )
            )
    finally:
        store.close()
