"""A real ``prefect server start`` for the tests that need what only a server does: its scheduler, its
automations, work pools and process workers (and, for other tests, task runners that need a real API).

Not the test harness and not the ephemeral API: the ``prefect`` console script of this virtualenv,
started as an operator would, on a free loopback port with its own PREFECT_HOME. One server serves the
whole test session, shared by pytest-xdist workers (the first one to need it starts it; the last one
done stops it). Readiness is polled on ``/api/health``; nothing waits on a wall-clock guess.

Fast loops (settings of Prefect 3.8.8, checked in ``prefect/settings/models``):

- server: ``PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS`` (default 60) and
  ``PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS`` (default 5), the two services
  that create auto-scheduled runs;
- workers: ``PREFECT_WORKER_QUERY_SECONDS`` (default 10), how often a worker polls its pool.

Each test uses its own work pool, so a worker never runs another test's flow runs. Deployment names
are shared by the whole server: test_schedule deploys ``okrsync-run/hourly``, test_failed_state
``okrsync-run/nightly-full``; a test that deploys either at the same time should deploy a copy of
prefect.yaml with its own deployment name (:func:`prefect_file_copy`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

T = TypeVar("T")
Arg = str | os.PathLike[str]
ROOT = Path(__file__).resolve().parents[2]
# The console script of this virtualenv (else the one on PATH).
_VENV_PREFECT = Path(sys.executable).parent / "prefect"
PREFECT = str(_VENV_PREFECT) if _VENV_PREFECT.exists() else shutil.which("prefect")
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

# Server-side settings: the scheduler's two loops fast, no analytics (no internet), no UI to build.
SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}
# Client-side settings (CLI calls, workers and the flow runs they start).
CLIENT_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


def clean_environ() -> dict[str, str]:
    """This process's environment without the developer's (or another fixture's) Prefect and okrsync
    settings: no PREFECT_* (home, API URL, profile, logging) and no OKRSYNC_* (project, store)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OKRSYNC_"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    details: Callable[[], str] = lambda: "",
) -> T:
    """Polls ``check`` until it returns something truthy. ``timeout`` is only an upper bound for a hang;
    ``details`` (e.g. a log's tail) goes into the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{details()}")
        time.sleep(interval)


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


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


# ---- the shared server --------------------------------------------------------------------------
def _stop_group(pid: int, wait: Callable[..., Any] | None = None) -> None:
    """SIGTERM to the process group ``pid`` leads; SIGKILL if it is still there after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid, wait):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if wait:
        with contextlib.suppress(Exception):
            wait(timeout=10)


def _alive(pid: int, wait: Callable[..., Any] | None = None) -> bool:
    if wait is not None:  # our own child: reap it
        try:
            wait(timeout=0)
            return False
        except subprocess.TimeoutExpired:
            return True
    try:  # another xdist worker's child: gone, or a zombie its parent has not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _start_server(directory: Path) -> dict[str, Any]:
    home = directory / "home"  # kept between starts in one session: its database is created once
    home.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**clean_environ(), **SERVER_SETTINGS, "PREFECT_HOME": str(home), "PREFECT_API_URL": url}
    log = directory / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"prefect server start exited with {proc.returncode}\n{tail(log)}")
        return _healthy(url)

    try:
        wait_for(ready, timeout=180, what="the server to answer /api/health", details=lambda: tail(log))
    except BaseException:
        _stop_group(proc.pid, proc.wait)
        raise
    return {"pid": proc.pid, "url": url, "home": str(home), "log": str(log), "users": 0}


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[Path]:
    with (directory / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield directory / "server.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _acquire(directory: Path) -> dict[str, Any]:
    with _locked(directory) as state_file:
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if not (state and _alive(state["pid"]) and _healthy(state["url"])):
            if state:  # a server that died or hangs: stop what is left of it
                _stop_group(state["pid"])
            state = _start_server(directory)
        state["users"] += 1
        state_file.write_text(json.dumps(state))
        return state


def _release(directory: Path) -> None:
    with _locked(directory) as state_file:
        state = json.loads(state_file.read_text())
        state["users"] -= 1
        if state["users"] <= 0:
            _stop_group(state["pid"])
            state_file.unlink()
        else:
            state_file.write_text(json.dumps(state))


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The session's ``prefect server start`` (started on first use, shared by xdist workers)."""
    if PREFECT is None:
        pytest.skip(f"no `prefect` command (neither {_VENV_PREFECT} nor on PATH): `pip install -e .`")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the directory all workers of this session share
        directory = tmp_path_factory.getbasetemp().parent / "prefect-server"
    else:
        directory = tmp_path_factory.getbasetemp() / "prefect-server"
    directory.mkdir(exist_ok=True)
    state = _acquire(directory)
    home = Path(state["home"])
    env = {
        **clean_environ(), **CLIENT_SETTINGS,
        "PREFECT_API_URL": state["url"], "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
    }
    try:
        yield PrefectServer(state["url"], home, Path(state["log"]), env)
    finally:
        _release(directory)
