"""Schedules fire: a run that Prefect's own scheduler created, picked up by a process worker, records
the project's key results with its flow-run id (issue #11, acceptance 1 and 2).

It cannot pass unless the server's scheduler services create runs (they create none with SQLAlchemy
2.1 under Prefect 3.8.8, see pyproject.toml), the deployment in prefect.yaml is deployable from any
working directory, its pull step and module entrypoint work on a worker in a temporary directory, and
its default parameters find the project through the worker's OKRSYNC_PROJECT.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.prefect_server.conftest import FINAL, PrefectServer, tail, wait_for

# Deployments, a process worker and the scheduler of a real server: `slow` (README command 2 skips it,
# .ci/run runs it).
pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def demo_project(directory: Path) -> Path:
    """The demo ERP (SQLite, no Salesforce) and its project file, built for today's date."""
    from okrsync import demo

    demo.build(directory, today=date.today())
    return directory / "okrsync.yaml"


def test_the_scheduler_creates_a_run_that_a_worker_completes(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    project_file = demo_project(tmp_path / "acme")
    deployer_cwd = tmp_path / "deployer"  # not the repository: the entrypoint must not depend on it
    worker_cwd = tmp_path / "worker"
    deployer_cwd.mkdir()
    worker_cwd.mkdir()

    prefect_server.create_pool("okrsync", cwd=deployer_cwd)
    # prefect.yaml as written, plus a schedule that fires within seconds (`--interval` adds to its cron)
    dep = prefect_server.deploy("hourly", cwd=deployer_cwd, extra=["--interval", "10"])
    assert dep["entrypoint"] == "flows.okr_flow.okrsync_run"
    assert dep["pull_steps"] == [{"okrsync.deploy.check_installed": {}}]  # nothing of the deployer's paths
    assert dep["parameters"] == {} and "okrsync" in dep["tags"]
    assert dep["work_pool_name"] == "okrsync"
    assert {"cron": "5 7-19 * * 1-5", "timezone": "Europe/Berlin"}.items() <= next(
        s["schedule"] for s in dep["schedules"] if "cron" in s["schedule"]
    ).items()

    def details() -> str:
        runs = prefect_server.flow_runs(dep["id"])
        states = [f"{r['id']} auto={r['auto_scheduled']} {r['state_type']} {r['state_name']}" for r in runs]
        return f"--- flow runs\n{chr(10).join(states)}\n--- worker log\n{tail(worker.log, 80)}"

    def finished_auto_run() -> dict[str, Any] | None:
        if not worker.alive():
            pytest.fail(f"the worker exited with {worker.process.returncode}\n{details()}")
        runs = prefect_server.flow_runs(dep["id"])
        return next((r for r in runs if r["auto_scheduled"] and r["state_type"] in FINAL), None)

    try:
        with prefect_server.worker(
            "okrsync", cwd=worker_cwd, log=tmp_path / "worker.log", env={"OKRSYNC_PROJECT": str(project_file)}
        ) as worker:
            run = wait_for(finished_auto_run, timeout=300, what="a scheduled run to end", details=details)
            prefect_server.api("PATCH", f"/deployments/{dep['id']}", {"paused": True})  # no more runs
            why = f"{run['state_name']}: {run['state']['message']}\n{details()}"
            assert run["state_type"] == "COMPLETED", why

            # The flow-run process ships its last log lines in batches as it exits, after the run's
            # final state: poll for okrsync's last line before stopping the worker, whose shutdown
            # would interrupt that process (the timeout only bounds a hang).
            def log_text() -> str:
                logs = prefect_server.api("POST", "/logs/filter",
                                          {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200})
                return "\n".join(entry["message"] for entry in logs)

            def complete_logs() -> str | None:
                text = log_text()
                return text if " key results recorded" in text else None

            text = wait_for(complete_logs, timeout=120, what="the run's log lines",
                            details=lambda: f"{log_text()}\n--- worker log\n{tail(worker.log, 40)}")
        runs = prefect_server.flow_runs(dep["id"])
        assert runs and all(r["auto_scheduled"] for r in runs)  # only the scheduler created runs
        assert run["parameters"] == {}  # the deployment's defaults: the worker's OKRSYNC_PROJECT
    finally:
        prefect_server.api("DELETE", f"/deployments/{dep['id']}")

    store = project_file.parent / ".okrsync" / "store.db"
    con = sqlite3.connect(store)
    try:
        recorded = con.execute(
            "SELECT count(*) FROM kr_value WHERE flow_run_id = ?", (run["id"],)
        ).fetchone()[0]
        krs = con.execute("SELECT count(*) FROM key_result").fetchone()[0]
    finally:
        con.close()
    assert recorded > 0 and recorded == krs, (recorded, krs)

    # What Prefect shows of the run (acceptance 7): its name, tags, okrsync's log lines, the artifact.
    shown = prefect_server.api("GET", f"/flow_runs/{run['id']}")
    assert shown["name"].startswith("acme as of "), shown["name"]
    assert {"okrsync", "project:acme", "source:sql"} <= set(shown["tags"]), shown["tags"]
    assert "sync orders: " in text and " rows pulled · " in text, text
    assert "KR-REV = " in text and f"okrsync: {krs} key results recorded" in text, text
    artifacts = prefect_server.api("POST", "/artifacts/filter",
                                   {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    (artifact,) = [a for a in artifacts if a["key"] == "okrsync-acme"]
    assert artifact["type"] == "markdown" and "| `KR-REV` |" in artifact["data"], artifact
