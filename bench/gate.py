"""The data-quality gate's share of a full sync: the same 1M-row full sync into fresh stores, without
checks and with a realistic set of stream checks (4 Great Expectations expectations, ``volume_change``,
``freshness``), and once more with 1 % of the rows failing the ``between`` check (severity ``warn``, so
the sync still commits).

Great Expectations' import and its ephemeral context are a one-off per process: they are measured first,
in the same process, so none of the timed syncs pays for them. ``BatchValidator`` creates its GX objects
(data source, suite, validation definition) at the first batch: that per-sync set-up *is* in the timed
syncs, inside ``BatchValidator.validate``.

The no-check sync runs twice, first and last, each into its own fresh store: its mean is the baseline,
and the two bracket any drift of a shared machine over the phase.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench import data
from bench.core import Results, Row, Stopwatch, peak_rss, timed
from bench.data import AS_OF, SOURCE, STREAM, KrPlan, Server
from bench.instrument import (
    GATE_SWAPS,
    GATE_VALIDATE,
    SYNC_SWAPS,
    TimedConnector,
    TimedStore,
    Timings,
    breakdown,
    instrumented,
)
from flows import compute, pipeline
from okr_store.checks import CheckRow, list_checks
from okr_store.records import SyncCounts
from okrsync.project import Project, load_project

PHASE = "data-quality gate"
TARGET = 0.15  # the product issue: the gate under 15 % of the sync time
STATES = ["draft", "cancel", "confirmed", "done"]  # every state the generator writes
# Generous: the generated write_dates are in YEAR, long before the run; the check must pass.
FRESHNESS_HOURS = 1_000_000
# (variant key, label, store database suffix); the no-check sync runs first and again last.
PLAIN, CHECKS, FAILING, PLAIN_AGAIN = "plain", "checks", "failing", "plain_again"
VARIANTS = (PLAIN, CHECKS, FAILING, PLAIN_AGAIN)


def store_databases(suffix: str) -> dict[str, str]:
    """One fresh store database per gate sync."""
    return {v: f"okrsync_bench_gate_{v}_{suffix}" for v in VARIANTS}


def checks(between_min: float | int, between_severity: str = "error") -> list[dict[str, Any]]:
    """The stream's checks as written in the project file (6: 4 GX expectations + 2 okrsync builtins)."""
    between: dict[str, Any] = {
        "expect_column_values_to_be_between": {"column": "amount", "min_value": between_min}
    }
    if between_severity != "error":
        between["severity"] = between_severity
    return [
        {"expect_column_values_to_not_be_null": {"column": "id"}},
        between,
        {"expect_column_values_to_be_in_set": {"column": "state", "value_set": STATES}},
        {"expect_column_values_to_be_unique": {"column": "id"}},
        {"volume_change": {"max_percent": 50}},
        {"freshness": {"max_age_hours": FRESHNESS_HOURS}},
    ]


def write_project(
    directory: Path, krs: list[KrPlan], batch_size: int, stream_checks: list[dict[str, Any]] | None
) -> Project:
    """The benchmark's project file, with ``checks:`` on the stream (or none). The source and store
    URLs come from the environment variables the main project file set (the store is passed directly)."""
    doc = data.project_document(krs, batch_size)
    if stream_checks:
        doc["streams"][STREAM]["checks"] = stream_checks
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "okrsync.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_project(path)


def failing_threshold(src: str) -> tuple[Decimal, int, float]:
    """A ``min_value`` that about 1 % of the amounts fall below: (threshold, rows below it, min_value).

    ``min_value`` is halfway between two cents, so a float and a Decimal comparison agree on every row."""
    with psycopg.connect(src) as conn:
        row = conn.execute(
            "SELECT percentile_disc(0.01) WITHIN GROUP (ORDER BY amount) FROM order_lines"
        ).fetchone()
        assert row is not None
        cut = Decimal(row[0]) - Decimal("0.005")
        counted = conn.execute("SELECT count(*) FROM order_lines WHERE amount < %s", [cut]).fetchone()
        assert counted is not None
    return cut, int(counted[0]), float(cut)


@dataclass
class GateSync:
    seconds: float
    counts: SyncCounts
    steps: dict[str, float]
    validate_s: float
    peak_mb: float
    checks: list[CheckRow]

    @property
    def gate_s(self) -> float:
        """Every instrumented gate step (validate, the rest of observe, outcomes, record, close)."""
        return sum(v for k, v in self.steps.items() if k.startswith("gate: "))


def gx_import() -> dict[str, Any]:
    """Seconds for ``import great_expectations``, its ephemeral context and the expectation classes:
    what the first gated sync of a process would pay once."""
    from metrics import gx

    already = "great_expectations" in sys.modules
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, import_s = timed(lambda: importlib.import_module("great_expectations"))
    _, context_s = timed(gx.ephemeral_context)
    _, classes_s = timed(gx.expectation_classes)
    return {
        "already_imported": already,
        "import_s": import_s,
        "context_s": context_s,
        "classes_s": classes_s,
        "total_s": import_s + context_s + classes_s,
        "version": getattr(sys.modules.get("great_expectations"), "__version__", None),
    }


class GatePhase:
    def __init__(
        self,
        server: Server,
        src: str,
        krs: list[KrPlan],
        batch_size: int,
        rows: int,
        work_dir: Path,
        stores: dict[str, str],
        res: Results,
    ) -> None:
        self.server, self.src, self.krs, self.batch_size = server, src, krs, batch_size
        self.rows, self.work_dir, self.stores, self.res = rows, work_dir, stores, res

    def say(self, msg: str) -> None:
        print(f"· {msg}", flush=True)

    def sync(self, variant: str, project: Project) -> GateSync:
        """A full sync of the stream into the variant's fresh store, step by step (as ``Bench.sync``)."""
        store = TimedStore(self.server.sa_url(self.stores[variant]))
        try:
            compute.register_okrs(project, store)
            run_id = store.start_run(AS_OF, None)
            timings = Timings()
            connector = project.connector(SOURCE)
            timed_conn = TimedConnector(connector, timings).as_connector()
            try:
                with (
                    peak_rss() as mem,
                    instrumented(store, timings, SYNC_SWAPS + GATE_SWAPS),
                    Stopwatch() as sw,
                ):
                    counts = pipeline.sync_stream(project, store, timed_conn, run_id, STREAM)
            finally:
                connector.close()
            store.finish_run(run_id, "succeeded")
            with store.engine.connect() as conn:
                found = [c for c in list_checks(conn) if c.stream == STREAM]
        finally:
            store.close()
        return GateSync(
            sw.seconds,
            counts,
            breakdown(timings, sw.seconds),
            timings.get(GATE_VALIDATE, 0.0),
            mem.peak_mb,
            sorted(found, key=lambda c: c.id),
        )

    def run(self) -> None:
        n = self.rows
        self.say("gate: GX import + ephemeral context (one-off, before any timed sync) …")
        gx = gx_import()
        self.say(
            f"  import {gx['import_s']:.2f} s, context {gx['context_s']:.2f} s, "
            f"expectation classes {gx['classes_s']:.2f} s"
            + (" (already imported earlier in this process)" if gx["already_imported"] else "")
        )
        cut, below, cut_f = failing_threshold(self.src)
        projects = {
            PLAIN: write_project(self.work_dir / "gate-plain", self.krs, self.batch_size, None),
            CHECKS: write_project(self.work_dir / "gate-checks", self.krs, self.batch_size, checks(0)),
            FAILING: write_project(
                self.work_dir / "gate-failing", self.krs, self.batch_size, checks(cut_f, "warn")
            ),
        }
        from okrsync.project import check_declarations

        problems = [p for v in (CHECKS, FAILING) for p in check_declarations(projects[v])]
        self.res.check(
            "gate: the declared checks are valid (okrsync validate)", not problems, "; ".join(problems)
        )
        labels = {
            PLAIN: "full sync, no checks",
            CHECKS: "full sync, 6 checks",
            FAILING: "full sync, 6 checks, 1 % fail (warn)",
            PLAIN_AGAIN: "full sync, no checks (again)",
        }
        out: dict[str, GateSync] = {}
        for v in VARIANTS:
            self.say(f"gate: {labels[v]} ({n:,} rows, fresh store) …")
            out[v] = s = self.sync(v, projects[PLAIN if v == PLAIN_AGAIN else v])
            self.say(
                f"  {s.seconds:.1f} s ({s.counts.rows_read / s.seconds:,.0f} rows/s), "
                f"validate {s.validate_s:.2f} s, peak RSS {s.peak_mb:.0f} MB"
            )
            self.res.breakdown[f"gate: {labels[v]}"] = {k: round(x, 3) for k, x in s.steps.items()}
            c = s.counts
            self.res.check(
                f"gate: {labels[v]} commits every row",
                c.rows_read == n and c.inserted == n and c.keys_read == n,
                f"read {c.rows_read:,}, inserted {c.inserted:,}, keys {c.keys_read:,}",
            )
        self._check_outcomes(out, below, cut)
        self._report(out, gx, below, cut)

    def _check_outcomes(self, out: dict[str, GateSync], below: int, cut: Decimal) -> None:
        n = self.rows
        plain = [c for v in (PLAIN, PLAIN_AGAIN) for c in out[v].checks]
        self.res.check("gate: no check recorded without checks", not plain, f"{len(plain)} recorded")
        rows = out[CHECKS].checks
        self.res.check(
            "gate: all 6 checks pass (4 GX over every row, volume_change, freshness)",
            len(rows) == 6
            and all(c.status == "passed" for c in rows)
            and all(c.element_count == n for c in rows if c.kind.startswith("expect_")),
            "; ".join(f"{c.label}: {c.status}, {c.element_count:,} rows" for c in rows),
        )
        rows = out[FAILING].checks
        between = [c for c in rows if c.kind == "expect_column_values_to_be_between"]
        others = [c for c in rows if c.kind != "expect_column_values_to_be_between"]
        self.res.check(
            f"gate: the between check warns on exactly the {below:,} rows with amount < {cut} (SQL)",
            len(between) == 1
            and between[0].status == "warned"
            and between[0].unexpected_count == below
            and between[0].element_count == n,
            "; ".join(f"{c.status}, {c.unexpected_count:,} of {c.element_count:,} rows" for c in between),
        )
        self.res.check(
            "gate: the other 5 checks pass in the failing variant",
            len(others) == 5 and all(c.status == "passed" for c in others),
            "; ".join(f"{c.label}: {c.status}" for c in others),
        )

    def _report(self, out: dict[str, GateSync], gx: dict[str, Any], below: int, cut: Decimal) -> None:
        n = self.rows
        base = (out[PLAIN].seconds + out[PLAIN_AGAIN].seconds) / 2
        spread = f"{out[PLAIN].seconds:.1f} s first, {out[PLAIN_AGAIN].seconds:.1f} s last"
        self.res.add(
            Row(PHASE, "full sync, no checks (mean of 2)", base, "s", None, None, note=f"{spread}; baseline")
        )
        extra: dict[str, Any] = {
            "rows": n,
            "no_checks_seconds": [round(out[PLAIN].seconds, 3), round(out[PLAIN_AGAIN].seconds, 3)],
            "no_checks_mean_seconds": round(base, 3),
            "gx_one_off": {k: round(v, 3) if isinstance(v, float) else v for k, v in gx.items()},
            "failing_threshold": str(cut),
            "failing_rows": below,
        }
        for v, what in ((CHECKS, "6 checks, all pass"), (FAILING, f"6 checks, {below / n:.2%} fail between")):
            s = out[v]
            share = (s.seconds - base) / s.seconds
            self.res.add(
                Row(
                    PHASE,
                    f"full sync, {what}",
                    s.seconds,
                    "s",
                    "full sync, no checks",
                    base,
                    note=f"gate share {share:.1%} of the sync (target < {TARGET:.0%})",
                )
            )
            self.res.add(
                Row(
                    PHASE,
                    f"  inside BatchValidator.validate ({what})",
                    s.validate_s,
                    "s",
                    "the same sync",
                    s.seconds,
                    note=f"{s.validate_s / s.seconds:.1%} of the sync; GX set-up at batch 1 included",
                )
            )
            self.res.add(
                Row(
                    PHASE,
                    f"  all instrumented gate steps ({what})",
                    s.gate_s,
                    "s",
                    "the same sync",
                    s.seconds,
                    note=f"{s.gate_s / s.seconds:.1%} of the sync; volume_change runs inside the commit",
                )
            )
            extra[v] = {
                "seconds": round(s.seconds, 3),
                "gate_steps_seconds": round(s.gate_s, 3),
                "gate_steps_share": round(s.gate_s / s.seconds, 4),
                "gate_share": round(share, 4),
                "ratio_vs_no_checks": round(s.seconds / base, 4),
                "validate_seconds": round(s.validate_s, 3),
                "validate_share": round(s.validate_s / s.seconds, 4),
                "peak_rss_mb": round(s.peak_mb),
                "checks": [
                    {
                        "label": c.label,
                        "status": c.status,
                        "rows": c.element_count,
                        "failed": c.unexpected_count,
                    }
                    for c in s.checks
                ],
            }
        self.res.add(
            Row(
                PHASE,
                "GX import + ephemeral context (one-off per process)",
                gx["total_s"],
                "s",
                "full sync, no checks",
                base,
                note=f"import {gx['import_s']:.2f} s + context {gx['context_s']:.2f} s + classes "
                f"{gx['classes_s']:.2f} s; before, not in, the timed syncs",
            )
        )
        self.res.extra["gate"] = extra
