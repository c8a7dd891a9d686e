"""Command line: ``python -m bench [--rows N] [--krs N] [--quick] [--no-prefect] [--only PHASE] …``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from types import FrameType

from bench.core import ROOT, machine_info
from bench.salesforce import QUICK_ROWS as SF_QUICK_ROWS
from bench.salesforce import ROWS as SF_ROWS

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
QUICK_ROWS = 50_000


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark okrsync (sync, compute, drill, Prefect overhead, Salesforce extraction, "
        "local run tax) "
        "against baselines measured in the same run; checks KR values against plain SQL. Exit status 1 "
        "on any mismatch.",
    )
    p.add_argument("--rows", type=int, default=None, help="order lines to generate (default 1,000,000)")
    p.add_argument("--krs", type=int, default=100, help="key results in the project file (default 100)")
    p.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_ROWS:,} rows unless --rows is given"
    )
    p.add_argument("--no-prefect", action="store_true", help="skip the Prefect flow-run phase")
    p.add_argument("--batch-size", type=int, default=50_000, help="the stream's batch_size (okrsync default)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the full sync (bench/out/sync-full-profile.txt) and each "
        "delete-detection sync (sync-deletes-<variant>[-no-change]-profile.txt, last round); inflates "
        "their timings (dlt's are not profiled)",
    )
    p.add_argument(
        "--only",
        choices=["gate", "compute", "incremental", "deletes", "peers", "salesforce", "local-tax",
                 "drill-export", "binding", "reads", "drill-scale", "sizing"],
        default=None,
        help="run one phase only: gate = generate the data, then a full sync without and with "
        "data-quality checks (≈ 2–3 min at 1M rows); compute = generate, the full sync, then the compute "
        "phase (against per-KR SQL and one hand-written GROUP BY region, quarter); incremental = "
        "generate, the full sync, then the "
        "incremental read (SqlConnector.read against a plain range SELECT) and sync; deletes = generate, the "
        "full sync, then the 1 %%-changed sync with delete detection by digests, by every key, and without "
        "(bench/deletes.py); peers = generate, "
        "then the full sync against dlt's pyarrow and connectorx backends into PostgreSQL and the COPY "
        "floor (needs the bench extra); salesforce = the "
        "Salesforce extraction phase "
        "alone (loopback sandbox, no PostgreSQL); local-tax = `okrsync run` on the demo with nothing "
        "changed against the same work by direct calls, whole processes (≈ 40 s; no PostgreSQL); "
        "drill-export = `okrsync drill KR-REV --format json` on the demo against a plain SQL export of the "
        "same records (≈ 30 s; no PostgreSQL); binding = a bound KR's preview and history back-fill "
        "against plain SQL (PostgreSQL; --bind-rows, --bind-points); reads = cold `okrsync status` and "
        "`drill KR-REV --limit 50` processes on the demo against `okrsync --help` and `python -c pass` "
        "(≈ 1 min; no PostgreSQL); drill-scale = the drill KR's record table grown by SQL to --rows/10, "
        "--rows/3 and --rows records: the first page (and its plans) at each size, and the json/csv "
        "export of every record at the first size against a plain SELECT of the same rows; sizing = "
        "generate, then full sync, compute, drill first page, drill json export of one region × quarter KR, "
        "1 %%-changed incremental sync and no-change sync, each with its seconds and peak RSS "
        "(bench/sizing.py; the BENCHMARKS.md sizing table)",
    )
    p.add_argument("--bind-rows", type=int, default=None, help="binding phase: orders (default --rows)")
    p.add_argument("--bind-points", type=int, default=1000,
                   help="binding phase: past hourly runs to back-fill (default 1,000 ≈ a quarter)")
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed runs of each local-tax configuration, interleaved with its baseline (default 5)",
    )
    p.add_argument(
        "--tax-prefect",
        action="store_true",
        help="local tax: also time `okrsync run` through a `prefect server start` and the old way (the "
        "okrsync_run flow on Prefect's ephemeral server), informational (≈ 3–4 min more)",
    )
    p.add_argument(
        "--sf-rows",
        type=int,
        default=None,
        help=f"opportunities in the Salesforce sandbox (default {SF_ROWS:,}; {SF_QUICK_ROWS:,} with --quick)",
    )
    p.add_argument("--keep", action="store_true", help="keep the benchmark databases (debugging)")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("OKRSYNC_BENCH_PG_URL", DEFAULT_ADMIN_URL),
        help="admin URL of the PostgreSQL server (env OKRSYNC_BENCH_PG_URL); the benchmark creates "
        "and drops its own databases there",
    )
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "out" / "latest.json", help="JSON results file"
    )
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = QUICK_ROWS if args.quick else 1_000_000
    if args.sf_rows is None:
        args.sf_rows = SF_QUICK_ROWS if args.quick else SF_ROWS
    if args.rows < 1000 or args.krs < 1 or args.sf_rows < 1000 or args.repeats < 1:
        p.error("--rows and --sf-rows must be at least 1000, --krs and --repeats at least 1")
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-up (databases dropped)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started_env = dict(os.environ)  # what the local-tax processes get (the Prefect settings below are ours)
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-") as tmp:
        work = Path(tmp)
        # Before anything imports Prefect: a private home, no telemetry, patient server start-up.
        os.environ.update(
            {
                "PREFECT_HOME": str(work / "prefect"),
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
            }
        )
        from bench.report import markdown, print_results, write_json
        from bench.run import Options, run

        opts = Options(
            rows=args.rows,
            krs=args.krs,
            batch_size=args.batch_size,
            prefect=not args.no_prefect,
            keep=args.keep,
            profile=args.profile,
            admin_url=args.pg_url,
            out_dir=args.out.parent,
            work_dir=work,
            only=args.only,
            sf_rows=args.sf_rows,
            repeats=args.repeats,
            tax_prefect=args.tax_prefect,
            env=started_env,
            bind_rows=args.bind_rows,
            bind_points=args.bind_points,
        )
        meta = machine_info() | {
            "command": " ".join([".venv/bin/python -m bench", *(argv if argv is not None else sys.argv[1:])]),
            "args": {
                "rows": args.rows,
                "krs": args.krs,
                "batch_size": args.batch_size,
                "quick": args.quick,
                "prefect": not args.no_prefect,
                "profile": args.profile,
                "only": args.only,
                "sf_rows": args.sf_rows,
                "repeats": args.repeats,
                "tax_prefect": args.tax_prefect,
            },
        }
        try:
            res = run(opts)
        except Exception:
            traceback.print_exc()
            print("benchmark failed (databases dropped unless --keep)", file=sys.stderr)
            return 2
        res.meta = meta | res.meta
        print_results(res)
        write_json(res, args.out)
        args.out.with_suffix(".md").write_text(markdown(res))
        print(f"results: {args.out} (and {args.out.with_suffix('.md').name})")
        return 0 if res.ok else 1
