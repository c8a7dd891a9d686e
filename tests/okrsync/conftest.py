"""Fixtures for the CLI tests: the real ``okrsync`` console script in subprocesses, one Prefect API
per test session (the session's one ``prefect server start``, tests/prefect_shared.py) that every
subprocess talks to, and the demo built once by ``okrsync demo`` and copied per test.

Time matters (each CLI call is a fresh interpreter, each run a Prefect flow), so the slow things start
in the background as soon as a module asks for them: the Prefect API boots while tests that need no
API run, and ``okrsync demo`` starts the moment the API is up. Independent CLI calls of one test run
concurrently (:meth:`Cli.many`). Validation tests never start the API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.prefect_shared import SharedServer, shared_server

T = TypeVar("T")
OKRSYNC = Path(sys.executable).parent / "okrsync"  # the console script of this virtualenv

# Variables of the developer's shell that would change what the CLI prints or where it writes.
_DROP = (
    "OKRSYNC_PROJECT", "OKRSYNC_STORE_URL", "COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE",
    "TTY_INTERACTIVE", "PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_LOGGING_LEVEL",
    "ERP_URL",
)


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:  # what pytest shows when an assertion about a result fails
        return f"okrsync {' '.join(self.args)} → {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


Call = tuple[Sequence[str | os.PathLike[str]], Path]  # (args, cwd)


class Cli:
    """Runs ``okrsync ARGS`` as a user would: the console script, a working directory, an env."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def __call__(
        self,
        *args: str | os.PathLike[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 180,
    ) -> Result:
        return self._run([str(OKRSYNC)], args, cwd, env, timeout)

    def many(self, *calls: Call) -> list[Result]:
        """Independent calls at the same time (read-only ones: they must not depend on each other)."""
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(lambda c: self(*c[0], cwd=c[1]), calls))

    def python(self, *args: str, cwd: Path) -> Result:
        """``python ARGS…`` of this virtualenv, with the same environment."""
        return self._run([sys.executable], args, cwd, None, 180)

    def _run(
        self,
        prefix: list[str],
        args: Sequence[str | os.PathLike[str]],
        cwd: Path,
        env: Mapping[str, str] | None,
        timeout: float,
    ) -> Result:
        argv = tuple(str(a) for a in args)
        p = subprocess.run(
            [*prefix, *argv],
            cwd=cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(argv, p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the CLI subprocesses: a private PREFECT_HOME, nothing of the user's shell."""
    home = tmp_path_factory.mktemp("cli-prefect-home")
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        }
    )
    return env


@pytest.fixture(scope="session")
def cli(base_env: dict[str, str]) -> Cli:
    """The CLI without a Prefect API (for commands that never run a flow)."""
    return Cli(base_env)


# ---- the Prefect API ----------------------------------------------------------------------------
class PrefectApi:
    """The session's one Prefect server (tests/prefect_shared.py), found or started by a background
    thread so that tests that need no API run meanwhile. Subprocesses get its URL explicitly
    (``cli_api``), so none of them starts an ephemeral API of its own (10–30 s each)."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._server: Future[SharedServer] = Future()
        self._thread = threading.Thread(target=self._find, args=(factory,), name="prefect-server",
                                        daemon=True)
        self._thread.start()

    def _find(self, factory: pytest.TempPathFactory) -> None:
        try:
            self._server.set_result(shared_server(factory))
        except BaseException as exc:  # shown by whichever test waits for the URL
            self._server.set_exception(exc)

    def url(self) -> str:
        return self._server.result(timeout=240).url

    @property
    def database(self) -> Path:
        """The API's SQLite file."""
        return self._server.result(timeout=240).database

    def close(self) -> None:
        self._thread.join(timeout=240)


@pytest.fixture(scope="session")
def prefect_api(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectApi]:
    """The session's Prefect API, looked up in the background (returns at once; ``url()`` waits)."""
    os.environ.update(  # as tests/flows/conftest.py: for flows this process runs itself
        {
            "PREFECT_HOME": base_env["PREFECT_HOME"],
            "PREFECT_LOCAL_STORAGE_PATH": base_env["PREFECT_LOCAL_STORAGE_PATH"],
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        }
    )
    api = PrefectApi(tmp_path_factory)
    yield api
    api.close()


@pytest.fixture(scope="session")
def background() -> Iterator[Callable[[Callable[[], T]], Future[T]]]:
    """Runs slow set-up (a demo build, a run that waits on retries) while other tests go on."""
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cli-background")
    yield pool.submit  # type: ignore[misc]
    pool.shutdown(wait=True, cancel_futures=True)


def api_cli(base_env: Mapping[str, str], api: PrefectApi) -> Cli:
    return Cli({**base_env, "PREFECT_API_URL": api.url()})


@pytest.fixture(scope="session")
def cli_api(base_env: dict[str, str], prefect_api: PrefectApi) -> Cli:
    """The CLI talking to the session's Prefect API (for ``run`` and ``demo``); waits for the API."""
    return api_cli(base_env, prefect_api)


# ---- the demo -----------------------------------------------------------------------------------
@dataclass
class DemoBuild:
    cwd: Path  # where `okrsync demo --dir demo` ran
    result: Result

    @property
    def dir(self) -> Path:
        return self.cwd / "demo"


@pytest.fixture(scope="session")
def demo_started(
    base_env: dict[str, str],
    prefect_api: PrefectApi,
    background: Callable[[Callable[[], Any]], Future[Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Future[DemoBuild]]:
    """``okrsync demo --dir demo``, the README's first command, started in the background (and the
    Salesforce sandbox it leaves running, stopped at the end)."""
    cwd = tmp_path_factory.mktemp("demo-build")

    def build() -> DemoBuild:
        return DemoBuild(cwd, api_cli(base_env, prefect_api)("demo", "--dir", "demo", cwd=cwd, timeout=300))

    future = background(build)
    yield future
    stop_demo_sandbox(cwd / "demo")


def stop_demo_sandbox(demo: Path) -> None:
    from okrsync.sandboxes.background import stop_background

    stop_background(demo / "salesforce-sandbox")


@pytest.fixture(scope="session")
def demo_build(demo_started: Future[DemoBuild]) -> DemoBuild:
    """The finished ``okrsync demo`` (ERP, project file, store after the first run) and its output."""
    return demo_started.result(timeout=400)


@pytest.fixture
def demo_dir(demo_build: DemoBuild, tmp_path: Path) -> Path:
    """A private copy of the built demo, at ``tmp_path/demo``."""
    assert demo_build.result.code == 0, demo_build.result
    d = tmp_path / "demo"
    shutil.copytree(demo_build.dir, d)
    return d
