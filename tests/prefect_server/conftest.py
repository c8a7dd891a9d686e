"""The tests that need what only a real server does: its scheduler, its automations, work pools and
process workers (and, for other tests, task runners that need a real API). The server is the session's
one ``prefect server start`` (tests/prefect_shared.py), shared with every other test that needs an API.

Each test uses its own work pool, so a worker never runs another test's flow runs. Deployment names
are shared by the whole server: test_schedule deploys ``okrsync-run/hourly``, test_failed_state
``okrsync-run/nightly-full``; a test that deploys either at the same time should deploy a copy of
prefect.yaml with its own deployment name (:func:`prefect_file_copy`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prefect_shared import (
    CLIENT_SETTINGS,
    PREFECT,
    _stop_group,
    clean_environ,
    shared_server,
    tail,
    wait_for,
)

__all__ = ["FINAL", "ROOT", "PrefectServer", "prefect_file_copy", "tail", "wait_for"]

Arg = str | os.PathLike[str]
ROOT = Path(__file__).resolve().parents[2]
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass
class Worker:
    """A ``prefect worker start`` subprocess (its own process group: flow runs it started go too)."""

    pool: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        _stop_group(self.process.pid, self.process.wait)


@dataclass
class PrefectServer:
    url: str  # the API URL, http://127.0.0.1:PORT/api
    home: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # for subprocesses: PREFECT_API_URL, PREFECT_HOME, …

    def api(self, method: str, path: str, payload: Any = None) -> Any:
        """One call of the REST API (``path`` after ``/api``); raises on an HTTP error. Retries what
        Prefect's own client retries: 503 (SQLite busy under a worker's writes) and 429."""
        import httpx

        for attempt in range(10):
            response = httpx.request(method, self.url + path, json=payload, timeout=30)
            if response.status_code not in (429, 503) or attempt == 9:
                break
            time.sleep(0.2 * (attempt + 1))
        response.raise_for_status()
        return response.json() if response.content else None

    def prefect(
        self, *args: Arg, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``prefect ARGS`` against this server; fails the test (with its output) on a non-zero exit."""
        return self._run([str(PREFECT)], args, cwd, env, timeout)

    def _run(
        self, prefix: list[str], args: Sequence[Arg], cwd: Path, env: Mapping[str, str] | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        argv = [*prefix, *map(str, args)]
        p = subprocess.run(argv, cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True,
                           timeout=timeout, check=False)
        if p.returncode != 0:
            pytest.fail(f"{' '.join(argv)} → {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def python(
        self, *args: Arg, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` of this virtualenv against this server (e.g. ``-m okrsync.deploy``)."""
        return self._run([sys.executable], args, cwd, env, timeout)

    def create_pool(self, name: str, cwd: Path) -> None:
        self.prefect("work-pool", "create", name, "--type", "process", "--overwrite", cwd=cwd)

    def deploy(
        self, name: str, *, cwd: Path, pool: str | None = None, prefect_file: Path = ROOT / "prefect.yaml",
        extra: Sequence[str] = (),
    ) -> dict[str, Any]:
        """``prefect --no-prompt deploy --prefect-file FILE --name NAME`` from ``cwd``; the deployment."""
        args = ["--no-prompt", "deploy", "--prefect-file", prefect_file, "--name", name, *extra]
        if pool:
            args += ["--pool", pool]
        self.prefect(*args, cwd=cwd)
        return self.api("GET", f"/deployments/name/okrsync-run/{name}")

    @contextlib.contextmanager
    def worker(
        self, pool: str, *, cwd: Path, log: Path, env: Mapping[str, str] | None = None
    ) -> Iterator[Worker]:
        """``prefect worker start --pool POOL`` in ``cwd`` with ``env`` added, stopped at the end."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(PREFECT), "worker", "start", "--pool", pool], cwd=cwd, env={**self.env, **(env or {})},
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        w = Worker(pool, proc, log)
        try:
            yield w
        finally:
            w.stop()

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api(
            "POST", "/flow_runs/filter",
            {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"},
        )
        return runs

    def wait_final(self, flow_run_id: str, *, timeout: float, details: Callable[[], str]) -> dict[str, Any]:
        """The flow run once it reached a final state (COMPLETED, FAILED, CRASHED, CANCELLED)."""

        def final() -> dict[str, Any] | None:
            run: dict[str, Any] = self.api("GET", f"/flow_runs/{flow_run_id}")
            return run if run["state_type"] in FINAL else None

        return wait_for(final, timeout=timeout, what=f"flow run {flow_run_id} to end", details=details)


def prefect_file_copy(directory: Path, deployment: str, new_name: str, **changes: Any) -> Path:
    """A copy of the repository's prefect.yaml holding only ``deployment``, renamed, with ``changes``
    applied to it (e.g. ``schedules=[{"interval": 10}]``)."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (dep,) = [d for d in spec["deployments"] if d["name"] == deployment]
    spec["deployments"] = [{**dep, "name": new_name, **changes}]
    path = directory / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> PrefectServer:
    """The session's ``prefect server start`` (started on first use, shared by xdist workers and by every
    other test that needs a Prefect API), with a client environment for subprocesses."""
    server = shared_server(tmp_path_factory)
    env = {
        **clean_environ(), **CLIENT_SETTINGS,
        "PREFECT_API_URL": server.url, "PREFECT_HOME": str(server.home),
        "PREFECT_LOCAL_STORAGE_PATH": str(server.home / "storage"),
    }
    return PrefectServer(server.url, server.home, server.log, env)
