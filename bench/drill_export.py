"""``okrsync drill --format json`` of the demo's booked revenue (every record), against a plain SQL
export of the same records measured in the same run (issue #12: a few thousand records, well under 1 s).

* **Setup** (untimed): ``okrsync demo --no-salesforce --dir <tmp>/demo`` (ERP, project, store, one run).
* **Baseline**: ``SELECT * FROM orders WHERE id IN (…the value's record ids…)`` on the demo ERP with
  sqlite3, each row written as one JSON line to a buffer: the same records, no lineage, no roles.
* **Measured, in-process**: what the command does after its imports — load the project, open the store,
  the header (count and sums), then :func:`okr_store.lineage.drill_pages` through
  :mod:`okrsync.drill_export` into a buffer.
* **Measured, whole process**: the ``okrsync -p <project> drill KR-REV --format json`` console script,
  against ``okrsync -p <project> status`` (the same start-up: imports, project, store), so the difference
  is the export. ``PYTHONDONTWRITEBYTECODE`` is reported: with it set, every start recompiles okrsync.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.core import Results, Row, median_of

PHASE = "drill export"
BIN = Path(sys.executable).parent
KR = "KR-REV"


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


def _export(project_file: Path) -> tuple[int, str]:
    """The command's work after start-up: (records written, JSON text)."""
    from okr_store import lineage, queries
    from okr_store.store import Store
    from okrsync import access, drill_export
    from okrsync.project import load_project

    project = load_project(project_file)
    store = Store(project.store_url())
    try:
        with store.engine.connect() as conn:
            v = queries.value_at(conn, KR, None)
        role = access.records_role(project)
        ask: dict[str, Any] = {"sort": "contribution", "descending": None, "equals": {}, "record_id": None}
        head = lineage.drill(store, v, limit=1, offset=0, sums=True, **ask)
        out = io.StringIO()
        with access.RecordLinks(project) as links:
            pages = drill_export.as_seen(head, lineage.drill_pages(store, v, **ask),
                                         lambda d: access.drill_as(project, role, d), links)
            drill_export.write_json(out, replace(head, records=[]), pages)
        return head.total, out.getvalue()
    finally:
        store.close()


def _plain(erp: Path, ids: list[int]) -> int:
    con = sqlite3.connect(erp)
    try:
        con.row_factory = sqlite3.Row
        marks = ",".join("?" * len(ids))
        out = io.StringIO()
        n = 0
        for row in con.execute(f"SELECT * FROM orders WHERE id IN ({marks})", ids):  # noqa: S608 - ? marks
            out.write(json.dumps(dict(row), default=str) + "\n")
            n += 1
        return n
    finally:
        con.close()


def _process(cmd: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed ({done.returncode}): {done.stderr[-500:]}")
    return statistics.median(times)


def run(res: Results, *, repeats: int = 5, work_dir: Path | None = None) -> None:
    """Measure the export into ``res`` (rows and a check that every record was written)."""
    with tempfile.TemporaryDirectory(prefix="okrsync-drill-", dir=work_dir) as tmp:
        demo = Path(tmp) / "demo"
        say(f"drill export: building the demo (no Salesforce) in {demo} …")
        env = dict(os.environ)
        built = subprocess.run([str(BIN / "okrsync"), "demo", "--no-salesforce", "--dir", str(demo)],
                               env=env, capture_output=True, text=True, timeout=600)
        if built.returncode != 0:
            raise RuntimeError(f"okrsync demo failed ({built.returncode}):\n{built.stdout}{built.stderr}")
        project = demo / "okrsync.yaml"
        (total, text), export_s, _ = median_of(repeats, lambda: _export(project))
        records = json.loads(text)["records"]
        ids = [int(r["record_id"]) for r in records]
        plain, plain_s, _ = median_of(repeats, lambda: _plain(demo / "erp.db", ids))
        res.check("drill export writes every record of the value", len(records) == total == plain,
                  f"{len(records):,} written, {total:,} behind the value, {plain:,} by plain SQL")
        base = f"sqlite3 SELECT of the same {plain:,} orders → JSON lines"
        res.add(Row(PHASE, f"{KR} as JSON, in-process ({total:,} records)", export_s, "s", base, plain_s,
                    note="project + store opened, header with sums, every page"))
        okrsync = [str(BIN / "okrsync"), "-p", str(project)]
        say("  whole processes: drill --format json against status …")
        drill_s = _process([*okrsync, "drill", KR, "--format", "json"], env, repeats)
        status_s = _process([*okrsync, "status"], env, repeats)
        res.add(Row(PHASE, f"okrsync drill {KR} --format json, whole process", drill_s, "s",
                    "okrsync status, whole process (same start-up)", status_s,
                    note=f"PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE')}"))
