"""A cancelled flow run frees its project (issue #11, acceptance 5, under a real server and worker).

The run is held inside its read of one stream by a lock the test takes on that stream's SQLite source;
the test then cancels it the way an operator does (the API's CANCELLING state, as `prefect flow-run
cancel` sets it). The worker stops the run's process; the run row is closed with the reason and the
project's lease and stream leases are free, so the next run starts at once."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.flows.test_leases import _blocked_on_shipments, _locked, _q, _store, _two_sources
from tests.prefect_server.conftest import PrefectServer, prefect_file_copy, tail, wait_for

# Deployments, a process worker and the scheduler of a real server: `slow` (README command 2 skips it,
# .ci/run runs it).
pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def test_a_cancelled_run_closes_its_row_and_frees_its_leases(prefect_server: PrefectServer,
                                                            tmp_path: Path) -> None:
    import sqlalchemy as sa

    from okr_store import models as m
    from okrsync import demo

    demo.build(tmp_path / "acme", today=date.today())
    pf = _two_sources(tmp_path / "acme", lease_seconds=600)
    cwd = tmp_path / "operator"
    cwd.mkdir()
    prefect_server.create_pool("okrsync-cancel", cwd=cwd)
    copy = prefect_file_copy(cwd, "nightly-full", "cancel-test", schedules=[])
    dep = prefect_server.deploy("cancel-test", cwd=cwd, pool="okrsync-cancel", prefect_file=copy)
    store = _store(pf)
    log = tmp_path / "worker.log"
    try:
        with _locked(pf.parent / "erp2.db"), prefect_server.worker("okrsync-cancel", cwd=cwd, log=log):
            out = prefect_server.prefect("deployment", "run", "okrsync-run/cancel-test",
                                         "-p", f"project_file={pf}", cwd=cwd).stdout
            match = re.search(r"UUID: ([0-9a-f-]{36})", out)
            assert match, out
            flow_run_id = match.group(1)
            run_id = wait_for(lambda: _blocked_on_shipments(store), timeout=300,
                              what="the run to block on the locked source", details=lambda: tail(log, 80))
            prefect_server.prefect("flow-run", "cancel", flow_run_id, cwd=cwd)
            final = prefect_server.wait_final(flow_run_id, timeout=300, details=lambda: tail(log, 80))
            assert final["state_type"] == "CANCELLED", (final["state_name"], tail(log, 80))

            def closed() -> sa.Row | None:
                row = _q(store, sa.select(m.run).where(m.run.c.id == run_id))[0]
                return row if row.status != "running" else None

            row = wait_for(closed, timeout=120, what="the run row to be closed",
                           details=lambda: tail(log, 80))
    finally:
        prefect_server.api("DELETE", f"/deployments/{dep['id']}")
    assert row.status == "failed" and row.error, row
    assert _q(store, sa.select(m.run_lease.c.run_id))[0][0] is None
    assert all(r[0] is None for r in _q(store, sa.select(m.stream_state.c.lease_sync_id)))
    assert all(r[0] is None for r in _q(store, sa.select(m.key_result.c.held_reason)))
    # The next run starts at once: nothing waits for a lease of the cancelled one.
    env = {**prefect_server.env, "NO_COLOR": "1"}
    env.pop("PREFECT_API_URL", None)
    nxt = subprocess.run([str(Path(sys.executable).parent / "okrsync"), "-p", str(pf), "run"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert nxt.returncode == 0 and "waiting for" not in nxt.stderr, nxt.stdout + nxt.stderr
