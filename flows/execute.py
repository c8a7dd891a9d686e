"""Run a project now, from any face: the CLI's ``okrsync run`` and ``demo``, the web app's re-run.

:func:`execute` runs in this process when no Prefect API is configured (no server to start, no tax),
else as a Prefect flow run on that API (logs, artifact, UI). Either way it returns the run's summary
(:meth:`~flows.run.RunSummary.as_dict`) or raises the :class:`~okrsync.errors.OkrsyncError` that
stopped it. What a face shows around it (progress, signals, messages) stays in the face.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from okrsync.errors import OkrsyncError


def prefect_api_configured() -> bool:
    """Whether runs should go through a Prefect API: PREFECT_API_URL in the environment or in the
    active Prefect profile (read without importing Prefect)."""
    if os.environ.get("PREFECT_API_URL", "").strip():
        return True
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def prefect_defaults(*, debug: bool = False) -> None:
    """Settings for a run through a Prefect API started from a face: the run's logs go to the API (the
    UI shows them); the terminal shows okrsync's own output, not Prefect's log lines (``debug`` does)."""
    level = "DEBUG" if debug else "CRITICAL"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", level)
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")


def execute(
    project_file: Path,
    as_of: datetime | None,
    *,
    on_wait: Callable[[str], None] | None = None,
    debug: bool = False,
) -> dict[str, Any]:
    """Run the project once and return its summary. ``on_wait(holder)`` is told when the run queues
    behind a live run of the same project (in-process runs only; a flow run logs it)."""
    if not prefect_api_configured():
        from flows.run import LocalSteps, run_project

        return run_project(project_file, LocalSteps(), as_of=as_of, on_wait=on_wait).as_dict()
    prefect_defaults(debug=debug)
    from flows.okr_flow import okrsync_run

    state: Any = okrsync_run(project_file=str(project_file), as_of=as_of, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, OkrsyncError):
        raise result
    if isinstance(result, BaseException):
        raise OkrsyncError(
            f"the run failed: {type(result).__name__}: {result}", hint="run again with --debug for details"
        ) from result
    if not isinstance(result, dict):
        raise OkrsyncError(f"the run ended {state.name}: {state.message}",
                           hint="see the flow run's logs in Prefect")
    return result
