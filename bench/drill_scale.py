"""The drill's first page and its export as the records behind a value grow (issue #15): the first page
stays flat (< 50 ms at 10M contributing records) and ``drill --format json|csv`` streams every record in
≤ 2× a plain SELECT of the same rows, with flat memory.

* **Setup**: one PostgreSQL database holds the source table and the store. ``order_lines`` gets 1,000
  generated lines (bench/data.py), okrsync syncs them (``pipeline.sync_stream``), then the store's
  record table of the stream is grown by bulk SQL to each size in turn: the same generated columns for
  lines 1,001 … N, written as okrsync writes a record version (``_rid`` the key's text, ``_from`` the
  sync's id, ``_hash``), then ``VACUUM ANALYZE``. At each size okrsync computes the drill KR (every line
  of the year: every record contributes) and records its value with its stored first positions, as a run
  does (``compute.compute_values``).
* **First page**: ``lineage.drill(limit=50, sums=False)`` through a store opened for it (the web app's
  and ``okrsync drill``'s first request, with ``--no-sums``), median of the repeats; against the plain
  ``SELECT … ORDER BY amount DESC, _rid LIMIT 50`` over the same visible records. Each statement the
  first page issues is run again under ``EXPLAIN (ANALYZE, BUFFERS)``: none may scan the record table.
* **Export** (at the first size, at most 100,000 records): every record through
  ``lineage.drill_pages`` and okrsync.drill_export (JSON, then CSV, as ``okrsync drill --format json|csv``
  writes them, with the role's view and record links) into a sink that counts characters; against the
  plain SELECT of the same rows (a server-side cursor, every field) written as JSON lines and CSV rows.
  Peak RSS growth of each.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from bench import data
from bench.core import MB, Results, Row, peak_rss, timed
from bench.data import AS_OF, SOURCE, STREAM, Server
from flows import compute, pipeline
from okr_store import lineage, queries
from okr_store.store import Store
from okrsync.project import Project, load_project

PHASE = "drill at scale"
SEED = 1_000  # lines synced by okrsync itself; the rest are written into its record table by SQL
EXPORT_MAX = 100_000  # records exported (json and csv), against the plain SELECT, at the first size
FIELDS = data.COLUMNS

# bench/data.py's generated lines %(first)s … %(last)s, as record versions.
_GROW = """
INSERT INTO {table} (_rid, _from, _to, _hash, id, order_id, region, product, quantity, unit_price, amount,
                     state, order_date, write_date)
SELECT i::text, %(sync)s, NULL, substr(md5(i::text), 1, 16), i, o,""" + data.LINE_VALUES


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


class Sink:
    """A text file that keeps only the count of what was written (the export's output, not its memory)."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


def _grow(conninfo: str, table: str, sync_id: int, first: int, last: int) -> float:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        _, seconds = timed(lambda: conn.execute(sql.SQL(_GROW).format(table=sql.Identifier(table)),
                                                {"sync": sync_id, "first": first, "last": last,
                                                 "year": data.YEAR}))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    return seconds


def _statements(store: Store, fn: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The statements ``fn`` issues on ``store``'s engine."""
    seen: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        fn()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)
    return seen


def _plans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of each SELECT, as text."""
    out = []
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).all()
                out.append("\n".join(r[0] for r in rows))
    return out


def _top(conninfo: str, table: str, n: int) -> list[Any]:
    """The plain SQL answer: the ``n`` largest amounts of the visible records, ties by record id."""
    q = sql.SQL("SELECT amount FROM {} WHERE _to IS NULL ORDER BY amount DESC, _rid LIMIT %s")
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute(q.format(sql.Identifier(table)), (n,))]


def _plain_rows(conninfo: str, table: str) -> Iterator[tuple[Any, ...]]:
    """Every visible record's fields through a server-side cursor, 2,000 rows at a time."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in FIELDS)
    q = sql.SQL("SELECT _rid, {} FROM {} WHERE _to IS NULL").format(cols, sql.Identifier(table))
    with psycopg.connect(conninfo) as conn, conn.cursor(name="plain") as cur:
        cur.itersize = 2000
        cur.execute(q)
        yield from cur


def _plain_json(conninfo: str, table: str, out: Sink) -> int:
    n = 0
    for row in _plain_rows(conninfo, table):
        out.write(json.dumps(dict(zip(("record_id", *FIELDS), row, strict=True)), default=str) + "\n")
        n += 1
    return n


def _plain_csv(conninfo: str, table: str, out: Sink) -> int:
    w = csv.writer(out)
    w.writerow(("record_id", *FIELDS))
    n = 0
    for row in _plain_rows(conninfo, table):
        w.writerow(row)
        n += 1
    return n


def _export(project: Project, store: Store, v: queries.StoredValue, fmt: str, out: Sink) -> int:
    """What ``okrsync drill KR --format json|csv`` does once the project and store are open."""
    from okrsync import access, drill_export

    role = access.records_role(project)
    ask: dict[str, Any] = {"sort": "contribution", "descending": None, "equals": {}, "record_id": None}
    head = lineage.drill(store, v, limit=1, offset=0, sums=fmt == "json", **ask)
    with access.RecordLinks(project) as links:
        pages = drill_export.as_seen(head, lineage.drill_pages(store, v, **ask),
                                     lambda d: access.drill_as(project, role, d), links)
        write = drill_export.write_json if fmt == "json" else drill_export.write_csv
        write(out, replace(head, records=[]), pages)  # type: ignore[arg-type]
    return head.total


def _first_pages(
    store_url: str, v: queries.StoredValue, repeats: int
) -> tuple[lineage.Drill, float, float]:
    """The first page through a store opened for it (median seconds), and the same page asked again of
    that store (its engine's compiled-statement cache warm: the web app's steady state)."""
    first, again, page = [], [], None
    for _ in range(repeats):
        store = Store(store_url)
        try:
            page, seconds = timed(partial(lineage.drill, store, v, limit=50, sums=False))
            first.append(seconds)
            again.append(timed(partial(lineage.drill, store, v, limit=50, sums=False))[1])
        finally:
            store.close()
    assert page is not None
    return page, statistics.median(first), statistics.median(again)


def run(res: Results, admin_url: str, *, rows: int, repeats: int, work_dir: Path, keep: bool = False) -> None:
    """Grow the drill KR's records to rows/10, rows/3 and rows; measure at each size (and export every
    record at the first size, at most :data:`EXPORT_MAX`)."""
    export_at = max(SEED * 2, min(rows // 10, EXPORT_MAX))
    sizes = sorted({export_at, max(SEED * 2, rows // 10), max(SEED * 3, rows // 3), rows})
    server = Server(admin_url)
    name = f"okrsync_bench_drillscale_{os.getpid()}"
    with data.databases(server, [name], keep=keep):
        url, ci = server.sa_url(name), server.conninfo(name)
        data.generate_source(ci, SEED)
        kr = data.drill_kr()
        project = load_project(data.write_project(work_dir, [kr], 50_000, url, url))
        store = Store(url)
        try:
            compute.register_okrs(project, store)
            run_id = store.start_run(AS_OF, None)
            connector = project.connector(SOURCE)
            try:
                pipeline.sync_stream(project, store, connector, run_id, STREAM)
            finally:
                connector.close()
            store.finish_run(run_id, "succeeded")
            tables = store.streams.tables(STREAM)
            assert tables is not None
            table = tables.records.name
            with store.engine.connect() as conn:
                sync_id = conn.execute(sa.select(sa.func.max(tables.records.c._from))).scalar_one()
                odd = conn.execute(sa.select(sa.func.count()).where(
                    tables.records.c._rid != sa.cast(tables.records.c.id, sa.String))).scalar_one()
            res.check("a synced record's id is its key's text (as the grown records are written)", odd == 0)
            have = SEED
            for size in sizes:
                say(f"drill at scale: growing the record table to {size:,} records …")
                grow_s = _grow(ci, table, sync_id, have + 1, size)
                have = size
                run_id = store.start_run(AS_OF, None)
                (values, held), compute_s = timed(
                    partial(compute.compute_values, project, store, run_id, None, AS_OF, {}))
                store.finish_run(run_id, "succeeded")
                with store.engine.connect() as conn:
                    v = queries.value_at(conn, kr.id)
                say(f"  grown in {grow_s:.0f} s; computed in {compute_s:.1f} s: {v.records:,} records, "
                    f"value {v.value}")
                res.check(f"the drill KR counts every record at {size:,}", v.records == size and not held,
                          f"{v.records:,} records")
                page, page_s, warm_s = _first_pages(url, v, repeats)
                top, top_s = timed(lambda: _top(ci, table, 50))
                res.check(f"first page = the top 50 amounts by plain SQL at {size:,}",
                          [r.contribution for r in page.records] == top and page.total == size)
                issued = _statements(store, partial(lineage.drill, store, v, limit=50, sums=False))
                plans = _plans(store, issued)
                scans = [p for p in plans if f"Seq Scan on {table}" in p]
                res.extra[f"drill_first_page_plans_{size}"] = plans
                res.check(f"no statement of the first page scans the record table at {size:,}", not scans,
                          f"{len(plans)} SELECTs explained")
                say(f"  first page {page_s * 1000:.1f} ms (median of {repeats}); plain top-50 SELECT "
                    f"{top_s * 1000:.0f} ms")
                base = "SELECT … ORDER BY amount DESC, _rid LIMIT 50 on the record table"
                res.add(Row(PHASE, f"first page (50), sums=False, {size:,} records", page_s, "s", base, top_s,
                            note=f"median of {repeats}; a store opened for each (first request)"))
                res.add(Row(PHASE, f"first page (50), sums=False, {size:,} records, again", warm_s, "s", base,
                            top_s, note=f"median of {repeats}; the same store's second request"))
                if size == export_at:
                    export_phase(res, project, store, v, ci, table)
        finally:
            store.close()


def export_phase(res: Results, project: Project, store: Store, v: queries.StoredValue, conninfo: str,
                 table: str) -> None:
    for fmt, plain in (("json", _plain_json), ("csv", _plain_csv)):
        say(f"  export of every record as {fmt} …")
        with peak_rss() as mem:
            sink = Sink()
            n, seconds = timed(partial(_export, project, store, v, fmt, sink))
        with peak_rss() as base_mem:
            base_sink = Sink()
            b, base_s = timed(partial(plain, conninfo, table, base_sink))
        say(f"    {seconds:.1f} s, RSS +{mem.growth_mb:.0f} MB; plain {base_s:.1f} s, "
            f"RSS +{base_mem.growth_mb:.0f} MB")
        res.check(f"the {fmt} export writes every record", n == b == v.records, f"{n:,} / {b:,}")
        res.add(Row(PHASE, f"drill --format {fmt}, every record ({n:,})", seconds, "s",
                    f"plain SELECT of the same rows → {fmt}", base_s,
                    note=f"{sink.chars / MB:.0f} MB written; RSS growth {mem.growth_mb:.0f} MB "
                         f"(plain {base_mem.growth_mb:.0f} MB)"))
