"""What every request shares: the project, the store, the sign-in throttle, the drill-down rate limits
and the running jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from okrsync.throttle import DRILL_PER_MINUTE, EXPORTS_PER_MINUTE, RateLimit, Throttle


class ApiError(Exception):
    """An answer other than 2xx, with what went wrong and what to do: ``{"detail", "hint"}``."""

    def __init__(
        self, status: int, detail: str, hint: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.hint, self.headers = status, detail, hint, headers


@dataclass
class Web:
    project: Any  # okrsync.project.Project
    store: Any  # okr_store.store.Store
    session_hours: float = 12.0
    throttle: Throttle = field(default_factory=Throttle)
    # Per user: pages of records and diffs, and CSV exports (each reads the store at length).
    drill_limit: RateLimit = field(default_factory=lambda: RateLimit(DRILL_PER_MINUTE))
    export_limit: RateLimit = field(default_factory=lambda: RateLimit(EXPORTS_PER_MINUTE))
    jobs: Any = None  # okrsync.web.jobs.Jobs

    def prefect_ui_url(self) -> str | None:
        """Where flow runs are shown: settings.prefect_ui_url, PREFECT_UI_URL, or PREFECT_API_URL's UI."""
        ui = self.project.settings.prefect_ui_url or os.environ.get("PREFECT_UI_URL")
        if not ui:
            api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
            ui = api[: -len("/api")] if api.startswith("http") and api.endswith("/api") else None
        return ui.rstrip("/") if ui else None

    def flow_run_url(self, flow_run_id: str | None) -> str | None:
        ui = self.prefect_ui_url()
        return f"{ui}/runs/flow-run/{flow_run_id}" if ui and flow_run_id else None


def web(request: Request) -> Web:
    w: Web = request.app.state.web
    return w


def client_address(request: Request) -> str | None:
    """The caller's address (behind a proxy trusted by uvicorn's ``--forwarded-allow-ips``, the
    address it forwarded)."""
    return request.client.host[:64] if request.client else None
