"""Running the real Prefect flow in a test (under the session's Prefect API), as a deployment would."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any


def run_flow(project_file: str | os.PathLike[str], as_of: datetime | None = None,
             retry_delay_seconds: float = 0) -> dict[str, Any]:
    """The run's summary. Also checks that the flow-run state tells the truth: Completed exactly when
    the run succeeded, Failed (message ``okrsync: …``) when anything failed or was held."""
    from flows.okr_flow import okrsync_run

    state: Any = okrsync_run(project_file=str(project_file), as_of=as_of,
                             retry_delay_seconds=retry_delay_seconds, return_state=True)
    result = state.result(raise_on_failure=False)
    assert state.is_completed() or state.is_failed(), state
    if isinstance(result, BaseException):
        assert state.is_failed() and state.message.startswith("okrsync: "), state
        raise result
    assert state.is_completed() == (result["status"] == "succeeded"), (state, result["status"])
    if state.is_failed():
        assert state.message.startswith("okrsync: "), state.message
    return dict(result)
