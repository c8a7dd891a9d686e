"""Sizing (issue #15, goal 6): what an operator plans with at a given number of rows, in one run.

``python -m bench --only sizing --rows N``: generate N order lines, then, each with its own peak RSS
(``VmHWM`` reset at the start of the step) and the load average when it started:

* **full sync** of every row (``pipeline.sync_stream``), against ``COPY (SELECT …) TO STDOUT`` of the
  same rows (the only read baseline of this phase: the others cost minutes at 10M and add nothing here);
* **compute** of the project's KRs (``compute.compute_values``, values and first drill positions
  recorded), checked against one SQL query per KR on the source;
* **drill first page** of the drill KR (every line of the year: N contributing records), the first
  request on the value just recorded, through a store opened for it, checked against plain SQL;
* **drill export** as ``okrsync drill KR --format json`` writes it (bench/drill_scale.py ``_export``) of one
  region × quarter revenue KR (about N/25 records: the export costs per exported record, not per stored
  one), checked to write every record;
* **incremental sync** after 1 % of the lines changed, then the compute again (checked);
* **no-change sync**.

The full benchmark also measures these (and much more, against more baselines); this phase is the
subset that fits a 10M-row run into well under an hour on a 2-core machine.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from bench import baselines, data
from bench.core import MB, Row, peak_rss, timed
from bench.data import AS_OF
from bench.drill_scale import Sink, _export
from okr_store import queries

if TYPE_CHECKING:
    from bench.run import Bench

PHASE = "sizing"


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


class Steps:
    """Seconds, peak RSS and load average of each step, into ``res.extra["sizing"]``."""

    def __init__(self, out: dict[str, Any]) -> None:
        self.out = out

    @contextmanager
    def step(self, name: str, **info: Any) -> Iterator[dict[str, Any]]:
        entry: dict[str, Any] = {"load_at_start": [round(x, 2) for x in os.getloadavg()], **info}
        start = time.perf_counter()
        with peak_rss() as mem:
            yield entry
        entry["wall_seconds"] = round(time.perf_counter() - start, 3)
        entry["peak_rss_mb"] = round(mem.peak_mb)
        entry["rss_growth_mb"] = round(mem.growth_mb)
        self.out[name] = entry


def export_kr(b: Bench) -> data.KrPlan:
    """The first region × quarter revenue KR of the project (its records: about a 25th of the lines)."""
    for k in b.krs:
        if k.metric == "revenue" and k.region and "-Q" in k.period:
            return k
    raise RuntimeError("the sizing phase needs a region × quarter revenue KR: run it with --krs 30 or more")


def run(b: Bench) -> None:
    assert b.project is not None
    res = b.res
    steps = Steps(res.extra.setdefault("sizing", {"rows": b.o.rows}))
    with steps.step("copy baseline"):
        base = b.baseline_reads(only=("COPY TO STDOUT",))
    with steps.step("full sync") as e:
        run_id, full_s = b.full_sync(base)
        e["seconds"] = round(full_s, 3)
    e["store_tables_mb"] = res.extra["store_tables_mb_after_full_sync"]
    store = b.store
    assert store is not None
    label = f"compute of {len(b.krs)} KRs"
    with steps.step("compute") as e:
        values, held, c_s = b.compute(label, run_id)
        e["seconds"] = round(c_s, 3)
    store.finish_run(run_id, "succeeded")
    res.check("no KR held", not held, "; ".join(f"{k}: {v}" for k, v in list(held.items())[:3]))
    base_s = b.check_values("KR values = per-KR SQL on the source (after full sync)", values)
    res.add(Row(PHASE, label, c_s, "s", "one SQL query per KR on source", base_s))
    drill_first_page(b, steps)
    drill_export(b, steps)
    incremental(b, steps, full_s)
    with steps.step("no-change sync") as e:
        e["seconds"] = round(b.no_change(), 3)


def drill_first_page(b: Bench, steps: Steps) -> None:
    assert b.store is not None
    kr = data.drill_kr()
    with b.store.engine.connect() as conn:
        v = queries.value_at(conn, kr.id)
    say(f"drill first page of {kr.id} ({v.records:,} records), {b.o.repeats} requests …")
    with steps.step("drill first page", records=v.records) as e:
        samples = [b.first_request(v, limit=50, sums=False) for _ in range(b.o.repeats)]
        e["seconds"] = [round(s, 4) for _, s in samples]
        e["first_request_seconds"] = round(samples[0][1], 4)
        e["median_seconds"] = round(statistics.median(s for _, s in samples), 4)
    with psycopg.connect(b.src) as conn:
        top, top_s = timed(lambda: baselines.top_lines(conn, kr, 50))
    res = b.res
    res.check("drill first page = top 50 amounts by plain SQL (every request)",
              all([r.contribution for r in p.records] == [a for _, a in top] and p.total == v.records
                  for p, _ in samples), f"{v.records:,} records")
    say(f"  first request {samples[0][1] * 1000:.0f} ms, median {e['median_seconds'] * 1000:.0f} ms; "
        f"plain SQL {top_s * 1000:.0f} ms")
    res.add(Row(PHASE, f"drill first page (50), sums=False, {v.records:,} records", e["median_seconds"], "s",
                "SELECT … ORDER BY amount DESC LIMIT 50 on source", top_s,
                note=f"median of {len(samples)} requests, each through a store opened for it"))


def drill_export(b: Bench, steps: Steps) -> None:
    assert b.store is not None and b.project is not None
    kr = export_kr(b)
    with b.store.engine.connect() as conn:
        v = queries.value_at(conn, kr.id)
    say(f"drill export of {kr.id} as json ({v.records:,} records) …")
    sink = Sink()
    with steps.step("drill export (json)", kr=kr.id, records=v.records) as e:
        n, seconds = timed(lambda: _export(b.project, b.store, v, "json", sink))  # type: ignore[arg-type]
        e["seconds"] = round(seconds, 3)
        e["records_per_s"] = round(n / seconds) if seconds else None
        e["mb_written"] = round(sink.chars / MB, 1)
    b.res.check("the json export writes every record of its KR", n == v.records, f"{n:,} / {v.records:,}")
    say(f"  {seconds:.1f} s ({n / seconds:,.0f} records/s), peak RSS {e['peak_rss_mb']} MB")
    b.res.add(Row(PHASE, f"drill --format json, {n:,} records", seconds, "s", None, None,
                  note=f"{sink.chars / MB:.0f} MB written"))


def incremental(b: Bench, steps: Steps, full_s: float) -> None:
    assert b.store is not None
    store = b.store
    changed = data.update_one_percent(b.src)
    run_id = store.start_run(AS_OF, None)
    say(f"incremental sync after updating {changed:,} rows …")
    with steps.step("incremental sync", changed=changed) as e:
        counts, seconds, sync_steps = b.sync("incremental", run_id)
        e["seconds"] = round(seconds, 3)
        e["keys_read"] = counts.keys_read
    b.res.breakdown["incremental sync"] = {k: round(v, 3) for k, v in sync_steps.items()}
    say(f"  {seconds:.2f} s, {counts.rows_read:,} rows pulled, {counts.keys_read:,} keys reconciled")
    b.res.check("incremental sync pulls exactly the changed rows",
                counts.rows_read == changed and counts.updated == changed and counts.inserted == 0,
                f"pulled {counts.rows_read:,}, updated {counts.updated:,}, changed at source {changed:,}")
    b.res.add(Row(PHASE, f"incremental sync, 1% changed ({changed:,} rows)", seconds, "s", "full sync",
                  full_s, note=f"{counts.keys_read:,} keys reconciled"))
    label = f"compute of {len(b.krs)} KRs after the incremental sync"
    with steps.step("compute after incremental") as e:
        values, held, c_s = b.compute(label, run_id)
        e["seconds"] = round(c_s, 3)
    store.finish_run(run_id, "succeeded")
    b.check_values("KR values = per-KR SQL on the source (after incremental sync)", values)
