"""The test session's one Prefect server: a real ``prefect server start``, shared by every test that
needs a Prefect API (flows run in-process, the CLI's subprocesses, the web app's re-runs, deployments,
workers and the scheduler in tests/prefect_server).

Not the test harness and not the ephemeral API: the ``prefect`` console script of this virtualenv,
started as an operator would, on a free loopback port with its own PREFECT_HOME. The first test (of
any pytest-xdist worker) that needs it starts it; the others find it through a state file in the
session's shared temporary folder; the session's end (the xdist controller, or the only process)
stops it (:func:`stop_shared_server`, called from tests/conftest.py). A server that died is started
again. Readiness is polled on ``/api/health``; nothing waits on a wall-clock guess.

Fast loops (settings of Prefect 3.8.8, checked in ``prefect/settings/models``):

- server: ``PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS`` (default 60) and
  ``PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS`` (default 5), the two services
  that create auto-scheduled runs;
- workers: ``PREFECT_WORKER_QUERY_SECONDS`` (default 10), how often a worker polls its pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
# The console script of this virtualenv (else the one on PATH).
_VENV_PREFECT = Path(sys.executable).parent / "prefect"
PREFECT = str(_VENV_PREFECT) if _VENV_PREFECT.exists() else shutil.which("prefect")
DIRECTORY = "prefect-server"  # in the session's temporary root

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
    return {"pid": proc.pid, "url": url, "home": str(home), "log": str(log)}


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[Path]:
    with (directory / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield directory / "server.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SharedServer:
    url: str  # the API URL, http://127.0.0.1:PORT/api
    home: Path  # the server's PREFECT_HOME: its database is ``home / "prefect.db"``
    log: Path

    @property
    def database(self) -> Path:
        return self.home / "prefect.db"


def _directory(factory: pytest.TempPathFactory) -> Path:
    """The folder every xdist worker of this session shares (the session's temporary root)."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    directory = root / DIRECTORY
    directory.mkdir(exist_ok=True)
    return directory


def shared_server(factory: pytest.TempPathFactory) -> SharedServer:
    """The session's server, started now if no worker has started it yet (or if it died)."""
    if PREFECT is None:
        pytest.skip(f"no `prefect` command (neither {_VENV_PREFECT} nor on PATH): `pip install -e .`")
    with _locked(_directory(factory)) as state_file:
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if not (state and _alive(state["pid"]) and _healthy(state["url"])):
            if state:  # a server that died or hangs: stop what is left of it
                _stop_group(state["pid"])
            state = _start_server(state_file.parent)
            state_file.write_text(json.dumps(state))
    return SharedServer(state["url"], Path(state["home"]), Path(state["log"]))


def stop_shared_server(root: Path) -> None:
    """Stop the server of the session whose temporary root is ``root`` (if one was started)."""
    directory = root / DIRECTORY
    if not (directory / "server.json").exists():
        return
    with _locked(directory) as state_file:
        if state_file.exists():
            _stop_group(json.loads(state_file.read_text())["pid"])
            state_file.unlink()


@contextlib.contextmanager
def use_api(url: str) -> Iterator[None]:
    """Flows run in this process report to ``url`` (what ``prefect_test_harness`` does, less the
    server of its own): the API URL in Prefect's settings context, also as the process-global one so
    that code in contexts copied earlier sees it; on exit, logs and events are drained."""
    import prefect.context
    import prefect.settings
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    with contextlib.ExitStack() as stack:
        updates = {prefect.settings.PREFECT_API_URL: url}
        stack.enter_context(prefect.settings.temporary_settings(updates=updates))
        stack.enter_context(prefect.context._temporary_global_settings_context(  # as the harness does
            prefect.context.get_settings_context()))
        yield

        async def drain() -> None:
            with contextlib.suppress(RuntimeError):  # a worker that never started
                result = APILogWorker.instance().drain()
                if inspect.isawaitable(result):
                    await result
            events = EventsWorker.drain_all()
            if inspect.isawaitable(events):
                await events

        run_coro_as_sync(drain())
