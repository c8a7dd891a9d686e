"""The benchmark phases, in order: generate, baseline reads, full sync, compute, drill, incremental
sync, no-change sync, (optionally) a Prefect flow run, the data-quality gate and, once the databases
are dropped, the Salesforce extraction and the local run tax, each against a baseline of the same run."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from bench import baselines, data, grouped_compute, incremental_read
from bench.core import MB, Results, Row, Stopwatch, median_of, peak_rss, timed
from bench.data import AS_OF, SOURCE, STREAM, KrPlan, Server
from bench.instrument import (
    COMPUTE_SWAPS,
    RANKS,
    TimedConnector,
    TimedStore,
    Timings,
    breakdown,
    instrumented,
)
from flows import compute, pipeline
from metrics.evaluate import Evaluation
from okr_store import lineage, models, queries
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync.project import Project, load_project

T = TypeVar("T")
# Above this many records the drill phase reads "every record" page by page (lineage.drill_pages, as the
# export does) and its baseline through a server-side cursor: one list of 10M drill records (and of 10M
# fetched source rows) would take ≈ 13 GB (1.37 GB of RSS at 1M).
DRILL_ALL_IN_MEMORY = 1_000_000


@dataclass(frozen=True)
class Options:
    rows: int
    krs: int
    batch_size: int
    prefect: bool
    keep: bool
    profile: bool
    admin_url: str
    out_dir: Path
    work_dir: Path
    repeats: int = 5
    only: str | None = None  # "gate" / "incremental": generate the data, then only that phase
    bind_rows: int | None = None  # the binding phase's orders (default: rows)
    bind_points: int = 1000  # the binding phase's past runs (as-of points of the back-fill)
    sf_rows: int = 200_000  # opportunities in the Salesforce sandbox (bench/salesforce.py)
    tax_prefect: bool = False  # local tax: also the informational Prefect rows (bench/local_tax.py)
    env: dict[str, str] | None = None  # the environment the benchmark was started with (local tax)
    delete_rounds: int = 3  # rounds of each delete-detection variant (bench/deletes.py)


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


class Bench:
    def __init__(
        self, opts: Options, server: Server, src_db: str, store_db: str, gate_dbs: dict[str, str]
    ) -> None:
        self.o = opts
        self.gate_dbs = gate_dbs
        self.expected: dict[str, Decimal | None] = {}  # the per-KR SQL values of the last check
        self.server = server
        self.src = server.conninfo(src_db)
        self.src_sa = server.sa_url(src_db)
        self.store_ci = server.conninfo(store_db)
        self.store_url = server.sa_url(store_db)
        self.res = Results()
        self.krs: list[KrPlan] = []
        self.project: Project | None = None
        self.store: TimedStore | None = None

    # ---- helpers -------------------------------------------------------------------------------------

    def sync(self, label: str, run_id: str) -> tuple[SyncCounts, float, dict[str, float]]:
        """One okrsync sync of the stream, exactly as the flow's task does it, timed step by step."""
        assert self.project is not None and self.store is not None
        project, store = self.project, self.store
        timings = Timings()
        connector = project.connector(SOURCE)
        timed_conn = TimedConnector(connector, timings).as_connector()

        def go() -> SyncCounts:
            return pipeline.sync_stream(project, store, timed_conn, run_id, STREAM)

        try:
            with instrumented(store, timings), Stopwatch() as sw:
                counts = self._maybe_profiled(label, go)
        finally:
            connector.close()
        return counts, sw.seconds, breakdown(timings, sw.seconds)

    def _maybe_profiled(self, label: str, fn: Callable[[], T]) -> T:
        # The full sync, and each delete-detection sync (bench/deletes.py; the last round of each label
        # is kept): sync-<label>.prof and sync-<label>-profile.txt.
        if not (self.o.profile and (label == "full" or label.startswith("deletes-"))):
            return fn()
        prof = cProfile.Profile()
        out = prof.runcall(fn)
        self.o.out_dir.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(self.o.out_dir / f"sync-{label}.prof")
        text = io.StringIO()
        stats = pstats.Stats(prof, stream=text).strip_dirs()
        text.write("== by cumulative time ==\n")
        stats.sort_stats("cumulative").print_stats(45)
        text.write("\n== by internal time ==\n")
        stats.sort_stats("tottime").print_stats(30)
        (self.o.out_dir / f"sync-{label}-profile.txt").write_text(text.getvalue())
        return out

    def compute(self, label: str, run_id: str) -> tuple[dict[str, Evaluation], dict[str, str], float]:
        assert self.project is not None and self.store is not None
        project, store = self.project, self.store
        timings = Timings()
        with instrumented(store, timings, COMPUTE_SWAPS):
            (values, held), seconds = timed(
                lambda: compute.compute_values(project, store, run_id, None, AS_OF, {})
            )
        self.res.breakdown[label] = {k: round(v, 3) for k, v in breakdown(timings, seconds).items()}
        return values, held, seconds

    def check_values(self, name: str, values: dict[str, Evaluation]) -> float:
        """okrsync's values against one SQL query per KR on the source; returns the baseline's seconds."""
        expected, seconds = timed(lambda: baselines.kr_values(self.src, self.krs))
        self.expected = expected
        bad = [
            f"{k.id}: okrsync {values[k.id].value if k.id in values else 'missing'} ≠ SQL {expected[k.id]}"
            for k in self.krs
            if k.id not in values or values[k.id].value != expected[k.id]
        ]
        detail = f"{len(self.krs) - len(bad)}/{len(self.krs)} equal" + (
            f"; {'; '.join(bad[:3])}" if bad else ""
        )
        self.res.check(name, not bad, detail)
        return seconds

    # ---- phases --------------------------------------------------------------------------------------

    def generate(self) -> None:
        say(f"generating {self.o.rows:,} order lines in PostgreSQL …")
        _, seconds = timed(lambda: data.generate_source(self.src, self.o.rows))
        size = data.table_bytes(self.src, data.TABLE).get(data.TABLE, 0)
        self.res.extra["generate_seconds"] = round(seconds, 2)
        self.res.extra["source_table_mb"] = round(size / MB, 1)
        say(f"  {seconds:.1f} s, {size / MB:.0f} MB with indexes")
        self.krs = [*data.plan_krs(self.o.krs), data.drill_kr()]
        path = data.write_project(self.o.work_dir, self.krs, self.o.batch_size, self.src_sa, self.store_url)
        self.project = load_project(path)
        self.res.extra["project_file"] = str(path)

    def baseline_reads(self, only: tuple[str, ...] | None = None) -> dict[str, tuple[float, float]]:
        """Seconds and peak RSS (MB) of each plain read of the full-sync SELECT (those named in ``only``)."""
        n, out = self.o.rows, {}
        runs: list[tuple[str, Callable[[], baselines.ReadResult]]] = [
            ("pandas.read_sql chunks", lambda: baselines.read_pandas(self.src_sa, self.o.batch_size)),
            ("psycopg server-side cursor", lambda: baselines.read_tuples(self.src, self.o.batch_size)),
            ("COPY TO STDOUT", lambda: baselines.read_copy(self.src)),
            ("COPY source → store table", lambda: baselines.copy_pipe(self.src, self.store_ci)),
        ]
        runs = [(name, fn) for name, fn in runs if only is None or name in only]
        # warm the source's buffers once so the first baseline is not penalised
        baselines.read_copy(self.src)
        for name, fn in runs:
            say(f"baseline read: {name} …")
            with peak_rss() as mem:
                r, seconds = timed(fn)
            self.res.check(f"baseline {name} reads every row", r.rows == n, f"{r.rows:,} rows")
            out[name] = (seconds, mem.peak_mb)
            self.res.extra.setdefault("baseline_reads", {})[name] = {
                "seconds": round(seconds, 3),
                "rows_per_s": round(n / seconds),
                "peak_rss_mb": round(mem.peak_mb),
                "rss_growth_mb": round(mem.growth_mb),
                "bytes": r.bytes,
            }
            say(f"  {seconds:.2f} s ({n / seconds:,.0f} rows/s), peak RSS {mem.peak_mb:.0f} MB")
        return out

    def full_sync(self, base: dict[str, tuple[float, float]]) -> tuple[str, float]:
        assert self.project is not None
        self.store = TimedStore(self.store_url)
        compute.register_okrs(self.project, self.store)
        run_id = self.store.start_run(AS_OF, None)
        say(f"full sync of {self.o.rows:,} rows (okrsync pipeline.sync_stream) …")
        with peak_rss() as mem:
            counts, seconds, steps = self.sync("full", run_id)
        n = self.o.rows
        rate = counts.rows_read / seconds
        say(f"  {seconds:.1f} s ({rate:,.0f} rows/s), peak RSS {mem.peak_mb:.0f} MB")
        self.res.breakdown["full sync"] = {k: round(v, 3) for k, v in steps.items()}
        self.res.check(
            "full sync reads and inserts every row",
            counts.rows_read == n and counts.inserted == n and counts.keys_read == n,
            f"read {counts.rows_read:,}, inserted {counts.inserted:,}, keys {counts.keys_read:,}",
        )
        note = "profiled (cProfile): timings inflated" if self.o.profile else f"{seconds:.1f} s"
        for name in base:
            self.res.add(
                Row(
                    "full sync",
                    "throughput",
                    rate,
                    "rows/s",
                    name,
                    n / base[name][0],
                    note=note if name == "pandas.read_sql chunks" else "",
                    higher_is_better=True,
                )
            )
        mem_base = "pandas.read_sql chunks" if "pandas.read_sql chunks" in base else next(iter(base))
        self.res.add(
            Row(
                "full sync",
                "peak RSS",
                mem.peak_mb,
                "MB",
                mem_base,
                base[mem_base][1],
                note=f"growth {mem.growth_mb:.0f} MB over phase start",
            )
        )
        self.res.extra["full_sync"] = {
            "seconds": round(seconds, 3),
            "rows_per_s": round(rate),
            "peak_rss_mb": round(mem.peak_mb),
            "rss_growth_mb": round(mem.growth_mb),
            "counts": counts.__dict__,
        }
        sizes = data.table_bytes(self.store_ci)
        self.res.extra["store_tables_mb_after_full_sync"] = {k: round(v / MB, 1) for k, v in sizes.items()}
        return run_id, seconds

    def peers_phase(self) -> None:
        """The full sync against dlt (pyarrow, connectorx) and the COPY floor (bench/peers.py)."""
        from bench import peers

        n = self.o.rows
        baselines.read_copy(self.src)  # warm the source's buffers for whoever runs first
        say("COPY floor: COPY … TO STDOUT | COPY … FROM STDIN …")
        with peak_rss() as mem:
            r, floor_s = timed(lambda: baselines.copy_pipe(self.src, self.store_ci))
        self.res.check("COPY floor moves every row", r.rows == n, f"{r.rows:,} rows")
        say(f"  {floor_s:.1f} s, peak RSS {mem.peak_mb:.0f} MB")
        floor = (floor_s, mem.peak_mb)
        assert self.project is not None
        self.store = TimedStore(self.store_url)
        compute.register_okrs(self.project, self.store)
        say(f"full sync of {n:,} rows (okrsync pipeline.sync_stream) …")
        with peak_rss() as mem:
            counts, seconds, steps = self.sync("full", self.store.start_run(AS_OF, None))
        say(f"  {seconds:.1f} s, peak RSS {mem.peak_mb:.0f} MB")
        self.res.breakdown["full sync"] = {k: round(v, 3) for k, v in steps.items()}
        every = counts.rows_read == n and counts.inserted == n
        self.res.check("full sync reads and inserts every row", every,
                       f"read {counts.rows_read:,}, inserted {counts.inserted:,}")
        rows, summary = peers.compare(seconds, mem.peak_mb, n, self.src_sa, self.store_ci, floor,
                                      self.o.work_dir, self.o.batch_size)
        for row in rows:
            self.res.add(row)
        loaded = summary["dlt_rows_loaded"]
        self.res.check("dlt loads every row", isinstance(loaded, dict) and set(loaded.values()) == {n},
                       str(loaded))
        self.res.extra["peers"] = summary

    def compute_phase(self, run_id: str) -> None:
        assert self.store is not None
        say(f"compute {len(self.krs)} KRs (compute.compute_values) …")
        values, held, seconds = self.compute(f"compute of {len(self.krs)} KRs", run_id)
        self.store.finish_run(run_id, "succeeded")
        self.res.check("no KR held", not held, "; ".join(f"{k}: {v}" for k, v in list(held.items())[:3]))
        say(f"  {seconds:.2f} s; per-KR SQL on the source …")
        base = self.check_values("KR values = per-KR SQL on the source (after full sync)", values)
        say(f"  {base:.2f} s")
        ranks = self.res.breakdown[f"compute of {len(self.krs)} KRs"].get(RANKS, 0.0)
        self.res.add(
            Row(
                "compute",
                f"all {len(self.krs)} KRs",
                seconds,
                "s",
                "one SQL query per KR on source",
                base,
                note=f"one scan of the versioned records, values recorded; {ranks:.2f} s of it record_ranks",
            )
        )
        self.ranks_cost(seconds, ranks, "after full sync")
        say("  one hand-written GROUP BY on the source; evaluate grouped and per KR …")
        assert self.project is not None
        grouped_compute.run(self.res, self.project, self.store, self.src, self.krs, seconds, self.expected,
                            again=self.compute_again)

    def compute_again(self) -> float:
        """All KRs once more, on the same records (a run after a sync that changed nothing)."""
        assert self.store is not None
        run_id = self.store.start_run(AS_OF, None)
        label = f"compute of {len(self.krs)} KRs again (nothing changed)"
        values, held, seconds = self.compute(label, run_id)
        self.store.finish_run(run_id, "succeeded")
        self.res.check("compute again: values unchanged", not held and all(
            values[k.id].value == self.expected[k.id] for k in self.krs), f"{len(values)} KRs")
        return seconds

    def ranks_cost(self, seconds: float, ranks: float, when: str) -> None:
        """What storing the first drill positions adds to a compute: against the same compute without it."""
        self.res.add(
            Row(
                "compute",
                f"record_ranks: first drill positions ({when})",
                ranks,
                "s",
                "the same compute without it",
                seconds - ranks,
                note=f"compute {seconds - ranks:.2f} → {seconds:.2f} s",
            )
        )

    def fresh_value(self, i: int) -> queries.StoredValue:
        """The drill KR's value, computed afresh (all KRs, values recorded) for all samples but the first,
        which takes the compute phase's value: each drill sample is the first request on its value."""
        assert self.store is not None
        kr = data.drill_kr()
        if i > 0:
            run_id = self.store.start_run(AS_OF, None)
            self.compute(f"compute of {len(self.krs)} KRs (drill sample {i + 1})", run_id)
            self.store.finish_run(run_id, "succeeded")
        with self.store.engine.connect() as conn:
            return queries.value_at(conn, kr.id)

    def first_request(self, v: queries.StoredValue, **kw: Any) -> tuple[lineage.Drill, float]:
        """One drill through a Store opened for it (no engine, pool or table cache of an earlier request)."""
        store = Store(self.store_url)
        try:
            return timed(lambda: lineage.drill(store, v, **kw))
        finally:
            store.close()

    def drill_phase(self) -> None:
        assert self.store is not None
        store = self.store
        kr = data.drill_kr()
        samples: list[tuple[queries.StoredValue, lineage.Drill, float]] = []
        for i in range(self.o.repeats):
            v = self.fresh_value(i)
            if i == 0:
                say(f"drill into {kr.id} ({v.records:,} records, value {v.value}) …")
            page, seconds = self.first_request(v, limit=50, sums=False)
            samples.append((v, page, seconds))
        stored_s = statistics.median(s for _, _, s in samples)
        v, fast, _ = samples[-1]
        ranks = [b.get(RANKS, 0.0) for k, b in self.res.breakdown.items() if "(drill sample" in k]
        self.res.extra["drill_first_request_seconds"] = [round(s, 4) for _, _, s in samples]
        self.res.extra["record_ranks_seconds_in_drill_samples"] = [round(r, 3) for r in ranks]
        with psycopg.connect(self.src) as conn:
            top, top_s, _ = median_of(self.o.repeats, lambda: baselines.top_lines(conn, kr, 50))
            if v.records <= DRILL_ALL_IN_MEMORY:
                every, every_base_s = timed(lambda: baselines.top_lines(conn, kr, None))
        if v.records > DRILL_ALL_IN_MEMORY:
            every_n, every_base_s = timed(lambda: baselines.count_top_lines(self.src, kr))
        else:
            every_n = len(every)
        say(f"  first page, first request on a fresh value {stored_s * 1000:.1f} ms (median of "
            f"{len(samples)}; plain SQL {top_s * 1000:.0f} ms)")
        base = "SELECT … ORDER BY amount DESC LIMIT 50 on source"
        note = f"stored positions; first request on a fresh value; {v.records:,} records"
        measure = f"first page (50), sums=False, median of {len(samples)}"
        self.res.add(Row("drill", measure, stored_s, "s", base, top_s, note=note))
        self.res.check(
            "drill first page = top 50 amounts by plain SQL (every sample)",
            all([r.contribution for r in p.records] == [a for _, a in top] and p.total == s.records
                for s, p, _ in samples),
            f"{len(fast.records)} records, total {fast.total:,}",
        )
        with store.engine.begin() as conn:  # as for a value recorded before positions were stored
            conn.execute(models.kr_value_top.delete().where(models.kr_value_top.c.value_id == v.id))
        live, live_s, _ = median_of(self.o.repeats, lambda: self.first_request(v, limit=50, sums=False)[0])
        say(f"  the same page live (no stored positions) {live_s * 1000:.0f} ms")
        self.res.add(Row("drill", "first page (50), sums=False, live", live_s, "s", base, top_s,
                         note="no stored positions (values recorded before them)"))
        self.res.check(
            "stored first page = live first page (records, contributions, fields)",
            [(r.record_id, r.contribution, r.fields) for r in fast.records]
            == [(r.record_id, r.contribution, r.fields) for r in live.records],
            f"{len(live.records)} records",
        )
        page, page_s, _ = median_of(self.o.repeats, lambda: self.first_request(v, limit=50)[0])
        self.res.add(Row("drill", "first page (50) with sums", page_s, "s", base, top_s,
                         note="sums scan every contribution"))
        self.res.check(
            "drill contributions sum to the KR value (drill KR)",
            page.contribution_sum == v.value and page.total == v.records,
            f"Σ {page.contribution_sum} vs value {v.value}; total {page.total:,} vs {v.records:,}",
        )
        others: list[tuple[str, dict[str, Any]]] = [
            ("page 11 (offset 500), live", {"offset": 500}),
            ("first page sorted by order_date desc", {"sort": "order_date", "descending": True}),
            ("first page, equals region=EMEA", {"equals": {"region": "EMEA"}}),
        ]
        for label, kw in others:
            got, secs = self.first_request(v, limit=50, sums=False, **kw)
            say(f"  {label}: {secs * 1000:.0f} ms ({got.total:,} records)")
            note = f"one request, {got.total:,} records"
            self.res.add(Row("drill", label, secs, "s", base, top_s, note=note))
        self.drill_everything(v, every_n, every_base_s)

    def drill_everything(self, v: queries.StoredValue, every_n: int, every_base_s: float) -> None:
        assert self.store is not None
        store = self.store
        say("  every contribution (lineage.contributions_frame, no fields) …")
        (_, frame), frame_s = timed(lambda: lineage.contributions_frame(store, v))
        frame_sum = sum((Decimal(x) for x in frame["contribution"]), Decimal(0))
        self.res.check(
            "all contributions (contributions_frame) sum to the value",
            len(frame) == v.records and frame_sum == v.value,
            f"{len(frame):,} rows, Σ {frame_sum}",
        )
        self.res.add(
            Row(
                "drill",
                "all contributions (contributions_frame)",
                frame_s,
                "s",
                "same SELECT without LIMIT on source",
                every_base_s,
                note="ids + contributions only",
            )
        )
        if v.records > DRILL_ALL_IN_MEMORY:
            self.drill_streamed(v, every_n, every_base_s)
            return
        say(f"  {frame_s:.2f} s; drill of all records (limit = all) …")
        try:
            full, full_s = timed(lambda: lineage.drill(store, v, limit=v.records))
        except Exception as exc:  # a failure here is a finding, reported, not a crash of the benchmark
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            say(f"  failed: {msg}")
            self.res.check("drill of all records completes", False, msg)
            self.res.add(
                Row(
                    "drill",
                    "all records",
                    None,
                    "s",
                    "same SELECT without LIMIT on source",
                    every_base_s,
                    note=f"FAILED: {msg[:90]}",
                )
            )
            return
        total = sum((r.contribution for r in full.records), Decimal(0))
        self.res.check(
            "drill of all records: every record, contributions sum to the value",
            len(full.records) == v.records and total == v.value,
            f"{len(full.records):,} records, Σ {total}",
        )
        self.res.add(
            Row(
                "drill",
                "all records",
                full_s,
                "s",
                "same SELECT without LIMIT on source",
                every_base_s,
                note=f"{every_n:,} rows",
            )
        )
        say(f"  {full_s:.2f} s (plain SQL {every_base_s:.2f} s)")

    def drill_streamed(self, v: queries.StoredValue, every_n: int, every_base_s: float) -> None:
        """Every record behind ``v`` page by page (``lineage.drill_pages``): counted and summed."""
        assert self.store is not None
        store = self.store
        say(f"  drill of all {v.records:,} records page by page (lineage.drill_pages) …")

        def read() -> tuple[int, Decimal]:
            n, total = 0, Decimal(0)
            for page in lineage.drill_pages(store, v):
                n += len(page)
                total += sum((r.contribution for r in page), Decimal(0))
            return n, total

        with peak_rss() as mem:
            (n, total), seconds = timed(read)
        self.res.check("drill of all records (pages): every record, contributions sum to the value",
                       n == v.records == every_n and total == v.value, f"{n:,} records, Σ {total}")
        self.res.add(Row("drill", "all records, page by page (drill_pages)", seconds, "s",
                         "same SELECT without LIMIT on source, server-side cursor", every_base_s,
                         note=f"{every_n:,} rows; RSS growth {mem.growth_mb:.0f} MB"))
        say(f"  {seconds:.2f} s (plain SQL {every_base_s:.2f} s), RSS growth {mem.growth_mb:.0f} MB")

    def incremental(self, full_s: float) -> None:
        assert self.store is not None and self.project is not None
        changed = data.update_one_percent(self.src)
        say(f"incremental read of the {changed:,} changed rows against a plain range SELECT …")
        incremental_read.run(self.project, self.store.watermark(STREAM), self.src, changed, self.res)
        run_id = self.store.start_run(AS_OF, None)
        say(f"incremental sync after updating {changed:,} rows …")
        counts, seconds, steps = self.sync("incremental", run_id)
        say(f"  {seconds:.2f} s, {counts.rows_read:,} rows pulled, {counts.keys_read:,} keys reconciled")
        self.res.breakdown["incremental sync"] = {k: round(v, 3) for k, v in steps.items()}
        self.res.check(
            "incremental sync pulls exactly the changed rows",
            counts.rows_read == changed and counts.updated == changed and counts.inserted == 0,
            f"pulled {counts.rows_read:,}, updated {counts.updated:,}, changed at source {changed:,}",
        )
        self.res.add(
            Row(
                "incremental sync",
                f"1% changed: {counts.rows_read:,} rows pulled",
                seconds,
                "s",
                "full sync",
                full_s,
                note=f"{counts.keys_read:,} keys reconciled",
            )
        )
        values, held, c_s = self.compute(f"compute of {len(self.krs)} KRs after the incremental sync", run_id)
        self.store.finish_run(run_id, "succeeded")
        base = self.check_values("KR values = per-KR SQL on the source (after incremental sync)", values)
        self.res.add(
            Row(
                "compute",
                f"all {len(self.krs)} KRs, after incremental",
                c_s,
                "s",
                "one SQL query per KR on source",
                base,
            )
        )

    def no_change(self) -> float:
        assert self.store is not None
        run_id = self.store.start_run(AS_OF, None)
        say("no-change sync …")
        counts, seconds, steps = self.sync("no-change", run_id)
        self.store.finish_run(run_id, "succeeded")
        say(f"  {seconds:.2f} s, {counts.rows_read:,} rows pulled")
        self.res.breakdown["no-change sync"] = {k: round(v, 3) for k, v in steps.items()}
        self.res.check(
            "no-change sync pulls and changes nothing",
            counts.rows_read == 0 and counts.inserted == counts.updated == counts.deleted == 0,
            f"pulled {counts.rows_read}, keys {counts.keys_read:,}",
        )
        keys_s = sum(v for k, v in steps.items() if k.startswith(("keys:", "stage_keys:")))
        self.res.add(
            Row(
                "no-change sync",
                f"{counts.rows_read} rows pulled",
                seconds,
                "s",
                None,
                None,
                note=f"{keys_s:.2f} s of it reconciling {counts.keys_read:,} keys",
            )
        )
        return seconds

    def deletes_phase(self) -> None:
        """The same 1 %-changed sync with digests, every key read, and without (bench/deletes.py)."""
        from bench import deletes

        assert self.project is not None and self.store is not None
        project, store = self.project, self.store

        def sync(variant: Project, label: str) -> tuple[SyncCounts, float]:
            self.project = variant
            run_id = store.start_run(AS_OF, None)
            try:
                counts, seconds, steps = self.sync(label, run_id)
            finally:
                self.project = project
                store.finish_run(run_id, "succeeded")
            self.res.breakdown[label] = {k: round(v, 3) for k, v in steps.items()}
            return counts, seconds

        peer = None
        try:
            import dlt  # noqa: F401 - the bench extra: dlt's incremental merge as the peer
        except ImportError:
            say("dlt is not installed (pip install -e '.[bench]'): no dlt incremental merge to compare")
        else:
            from bench import peers

            def peer() -> int:
                return peers.dlt_incremental_merge(self.src_sa, self.store_ci, self.o.work_dir,
                                                   self.o.batch_size)

        say("delete detection: the same 1 %-changed sync with digests, every key read, no detection …")
        deletes.run(sync, store, self.src, project.path, self.o.work_dir, self.res,
                    rounds=self.o.delete_rounds, peer=peer)

    def pipeline_run(self) -> float:
        """A whole run without Prefect: what ``run_project`` does, minus the flow and task machinery."""
        assert self.project is not None
        project = self.project

        def go() -> None:
            store = Store(project.store_url())
            try:
                compute.register_okrs(project, store)
                run_id = store.start_run(AS_OF, None)
                connector = project.connector(SOURCE)
                try:
                    pipeline.sync_stream(project, store, connector, run_id, STREAM)
                finally:
                    connector.close()
                compute.compute_values(project, store, run_id, None, AS_OF, {})
                store.finish_run(run_id, "succeeded")
            finally:
                store.close()

        _, seconds = timed(go)
        return seconds

    def prefect_phase(self) -> None:
        assert self.project is not None
        say("pipeline-only run (no change): register, sync, compute, record …")
        runs = [self.pipeline_run() for _ in range(2)]
        pipe_s = statistics.median(runs)
        say(f"  {pipe_s:.2f} s; Prefect flow run (ephemeral API server) …")
        from prefect.testing.utilities import prefect_test_harness

        from flows.okr_flow import okrsync_run

        path = str(self.project.path)
        start = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=180):
            server_s = time.perf_counter() - start
            summaries: list[dict[str, Any]] = []
            times: list[float] = []
            for _ in range(2):
                s, t = timed(lambda: okrsync_run(project_file=path, as_of=AS_OF, retry_delay_seconds=0))
                summaries.append(s)
                times.append(t)
        ok = all(s["status"] == "succeeded" and s["streams"][STREAM]["rows_read"] == 0 for s in summaries)
        self.res.check(
            "Prefect flow run succeeds and pulls 0 rows",
            ok,
            ", ".join(f"{s['status']} / {s['streams'].get(STREAM, {}).get('rows_read')}" for s in summaries),
        )
        self.res.add(
            Row(
                "Prefect flow run (no change)",
                "first flow run",
                times[0],
                "s",
                "pipeline-only run",
                pipe_s,
                note=f"API server start {server_s:.1f} s not included",
            )
        )
        self.res.add(
            Row("Prefect flow run (no change)", "second flow run", times[1], "s", "pipeline-only run", pipe_s)
        )
        say(f"  first {times[0]:.2f} s, second {times[1]:.2f} s (server start {server_s:.1f} s)")

    def gate_phase(self) -> None:
        """Full sync without and with data-quality checks into fresh stores (bench/gate.py)."""
        from bench.gate import GatePhase

        GatePhase(
            self.server,
            self.src,
            self.krs,
            self.o.batch_size,
            self.o.rows,
            self.o.work_dir,
            self.gate_dbs,
            self.res,
        ).run()

    def run(self) -> Results:
        self.generate()
        if self.o.only == "gate":
            self.gate_phase()
            return self.res
        if self.o.only == "compute":
            self.compute_phase(self.full_sync(self.baseline_reads())[0])
            return self.res
        if self.o.only == "sizing":
            from bench import sizing

            sizing.run(self)
            return self.res
        if self.o.only == "peers":
            self.peers_phase()
            return self.res
        if self.o.only == "incremental":
            self.incremental(self.full_sync(self.baseline_reads())[1])
            return self.res
        if self.o.only == "deletes":
            self.full_sync(self.baseline_reads())
            self.deletes_phase()
            return self.res
        base = self.baseline_reads()
        run_id, full_s = self.full_sync(base)
        self.compute_phase(run_id)
        self.drill_phase()
        self.incremental(full_s)
        self.no_change()
        if self.o.prefect:
            self.prefect_phase()
        self.deletes_phase()  # after the Prefect runs, which check that nothing changed
        assert self.store is not None
        sizes = data.table_bytes(self.store_ci)
        self.res.extra["store_tables_mb_at_end"] = {k: round(v / MB, 1) for k, v in sizes.items()}
        self.store.close()
        # Last: it imports Great Expectations, which the phases above never load.
        self.gate_phase()
        return self.res


def salesforce_phase(opts: Options, res: Results) -> None:
    """The Salesforce extraction (bench/salesforce.py): no PostgreSQL, its own sandbox process."""
    from bench import salesforce

    salesforce.run(opts.sf_rows, res)


def local_tax_phase(opts: Options, res: Results) -> None:
    """``okrsync run`` on the demo against the same work by direct calls (bench/local_tax.py)."""
    from bench import local_tax

    local_tax.run(res, repeats=opts.repeats, prefect=opts.tax_prefect, env=opts.env, work_dir=opts.work_dir)


def drill_export_phase(opts: Options, res: Results) -> None:
    """``okrsync drill --format json`` on the demo against plain SQL (bench/drill_export.py)."""
    from bench import drill_export

    drill_export.run(res, repeats=opts.repeats, work_dir=opts.work_dir)


def drill_scale_phase(opts: Options, res: Results) -> None:
    """The drill's first page and export as the records grow to --rows (bench/drill_scale.py)."""
    from bench import drill_scale

    drill_scale.run(res, opts.admin_url, rows=opts.rows, repeats=opts.repeats, work_dir=opts.work_dir,
                    keep=opts.keep)


def reads_phase(opts: Options, res: Results) -> None:
    """Cold ``okrsync status`` and ``drill`` against ``--help`` and ``python -c pass`` (bench/cold_reads)"""
    from bench import cold_reads

    cold_reads.run(res, work_dir=opts.work_dir, env=opts.env)


def binding_phase(opts: Options, res: Results) -> None:
    """Preview and history back-fill of a bound KR on PostgreSQL against plain SQL (bench/binding.py)."""
    from bench import binding

    server = Server(opts.admin_url)
    name = f"okrsync_bench_bind_{os.getpid()}"
    with data.databases(server, [name], keep=opts.keep):
        binding.run(res, server.sa_url(name), rows=opts.bind_rows or opts.rows, points=opts.bind_points)


def run(opts: Options) -> Results:
    only = {"salesforce": salesforce_phase, "local-tax": local_tax_phase, "drill-export": drill_export_phase,
            "binding": binding_phase, "reads": reads_phase,
            "drill-scale": drill_scale_phase}
    if opts.only in only:
        res = Results()
        only[opts.only](opts, res)
        return res
    res = _run_postgres(opts)
    if opts.only is None:
        for name, phase in (("salesforce extraction", salesforce_phase), ("local run tax", local_tax_phase),
                            ("drill export", drill_export_phase), ("bind a KR", binding_phase)):
            try:
                phase(opts, res)
            except Exception as exc:  # a failure here is reported, not a loss of the phases above
                traceback.print_exc()
                res.check(f"{name} completes", False, f"{type(exc).__name__}: {exc}"[:200])
    return res


def _run_postgres(opts: Options) -> Results:
    server = Server(opts.admin_url)
    suffix = str(os.getpid())
    src_db, store_db = f"okrsync_bench_src_{suffix}", f"okrsync_bench_store_{suffix}"
    from bench.gate import store_databases

    gate_dbs = store_databases(suffix)
    bench = Bench(opts, server, src_db, store_db, gate_dbs)
    bench.res.extra["postgres"] = {"version": server.version(), **server.settings()}
    names = [src_db, store_db, *gate_dbs.values()]
    bench.res.extra["databases"] = names
    with data.databases(server, names, keep=opts.keep):
        try:
            return bench.run()
        finally:
            if bench.store is not None:
                bench.store.close()  # release the pool before the databases are dropped
