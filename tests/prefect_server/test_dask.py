"""Scale-out on an existing engine (issue #11, acceptance 8): the flow runs unchanged under Prefect's
Dask task runner — a LocalCluster of worker processes, so every task argument crosses a process
boundary by pickle — with a stream read in partitions as parallel tasks, and records exactly the
values the default runner records reading it whole."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from tests.prefect_server.conftest import PrefectServer

# A Dask cluster and a real server, minutes of CPU on a small machine: `slow` (README command 2 skips it,
# .ci/run runs it).
pytestmark = [pytest.mark.prefect, pytest.mark.slow]

RUN = """
import json, sys
from datetime import datetime
from flows.okr_flow import okrsync_run
flow = okrsync_run
if sys.argv[2] == "dask":
    from prefect_dask import DaskTaskRunner
    flow = okrsync_run.with_options(task_runner=DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True,
                        "dashboard_address": None}))
state = flow(project_file=sys.argv[1], as_of=datetime(2026, 11, 20, 18), return_state=True)
print(json.dumps({"type": state.type.value, "message": state.message}))
"""


def _values(project_dir: Path) -> dict[str, tuple[str | None, int]]:
    con = sqlite3.connect(project_dir / ".okrsync" / "store.db")
    try:
        rows = con.execute("SELECT kr_id, value, records FROM kr_value").fetchall()
        syncs = con.execute("SELECT stream, status FROM sync_run").fetchall()
    finally:
        con.close()
    assert sorted(syncs) == [("orders", "committed"), ("shipments", "committed")]  # one commit each
    return {kr: (value, records) for kr, value, records in rows}


def test_the_dask_task_runner_records_the_same_values(prefect_server: PrefectServer, tmp_path: Path) -> None:
    from okrsync import demo

    base = tmp_path / "acme"
    demo.build(base, today=date(2026, 11, 20))
    shutil.copytree(base, tmp_path / "threads")
    shutil.copytree(base, tmp_path / "dask")
    pf = tmp_path / "dask" / "okrsync.yaml"  # orders in four key ranges, read on the Dask workers
    orders = "  orders:\n    source: erp\n"
    parts = "    partitions: {field: id, bounds: [1000, 3000, 5000]}\n"
    pf.write_text(pf.read_text().replace(orders, orders + parts))
    out = {}
    for runner in ("threads", "dask"):
        p = prefect_server.python("-c", RUN, str(tmp_path / runner / "okrsync.yaml"), runner, cwd=tmp_path,
                                  timeout=600)
        out[runner] = json.loads(p.stdout.strip().splitlines()[-1])
        assert out[runner]["type"] == "COMPLETED", (out[runner], p.stderr[-3000:])
    threads, dask = _values(tmp_path / "threads"), _values(tmp_path / "dask")
    assert threads and dask == threads  # same KRs, values and record counts
