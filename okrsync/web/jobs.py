"""Runs started from the web page (the check review's re-run), one at a time, in a background thread."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from okrsync.users import utcnow
from okrsync.web.context import ApiError


def run_project(project_file: Path) -> dict[str, Any]:
    """The same run as `okrsync run` (a Prefect flow run when a Prefect API is configured)."""
    from flows.execute import execute

    return execute(project_file, None)


class Jobs:
    def __init__(self, project_file: Path, runner: Callable[[Path], dict[str, Any]] = run_project) -> None:
        self.project_file = project_file
        self.runner = runner
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._jobs.get(job_id)
            return dict(found) if found else None

    def start_rerun(self, check_id: int) -> dict[str, Any]:
        with self._lock:
            if any(j["status"] == "running" for j in self._jobs.values()):
                raise ApiError(
                    409, "a run is already going", "wait for it (GET /api/jobs/{id}), then try again"
                )
            job_id = uuid.uuid4().hex
            job: dict[str, Any] = {
                "id": job_id,
                "kind": "rerun",
                "check_id": check_id,
                "status": "running",
                "started_at": utcnow(),
                "finished_at": None,
                "summary": None,
                "error": None,
            }
            self._jobs[job_id] = job
        threading.Thread(
            target=self._run, args=(job_id,), name=f"okrsync-rerun-{check_id}", daemon=True
        ).start()
        return dict(job)

    def _run(self, job_id: str) -> None:
        try:
            summary = self.runner(self.project_file)
            if isinstance(summary.get("as_of"), str) and not summary["as_of"].endswith("Z"):
                summary["as_of"] += "Z"  # UTC, like every other time of the API
            status, error = summary.get("status", "failed"), summary.get("error")
        except Exception as exc:  # the job reports it; the server goes on
            summary, status = None, "failed"
            error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        with self._lock:
            job = self._jobs[job_id]
            job.update(
                status=status if status in ("succeeded", "partial") else "failed",
                summary=summary,
                error=error,
                finished_at=utcnow(),
            )
