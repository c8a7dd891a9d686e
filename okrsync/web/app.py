"""``create_app``: the FastAPI app behind ``okrsync serve`` (docs/web.md)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from okrsync.errors import ConfigError, NotFound, OkrsyncError
from okrsync.throttle import DRILL_PER_MINUTE, EXPORTS_PER_MINUTE, RateLimit
from okrsync.web import admin, alerts, api, bindings, closing, pages, planning
from okrsync.web.context import ApiError, Web, client_address
from okrsync.web.jobs import Jobs

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# One line per request: method, path (never the query: it may hold a sensitive field's value in a
# drill filter), status, user, duration and address. Tokens travel in headers and cookies: never logged.
access_log = logging.getLogger("okrsync.web.access")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _log_request(request: Request, status: int, started: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    path = _CONTROL.sub("?", request.url.path)[:300]  # a path is the client's text: one line, bounded
    user = getattr(request.state, "user", None) or "-"
    ms = (time.perf_counter() - started) * 1000
    addr = client_address(request) or "-"
    access_log.info("%s %s %d user=%s ms=%.1f addr=%s", request.method, path, status, user, ms, addr)


def create_app(
    project: Any,
    store: Any,
    *,
    session_hours: float = 12.0,
    jobs: Jobs | None = None,
    drill_per_minute: int = DRILL_PER_MINUTE,
    exports_per_minute: int = EXPORTS_PER_MINUTE,
) -> FastAPI:
    """The web app over a loaded project and its opened store; each user may ask for
    ``drill_per_minute`` pages of records or diffs and ``exports_per_minute`` CSV exports a minute."""
    app = FastAPI(
        title="okrsync",
        summary="OKR key results computed from the systems a company runs, with lineage.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: the app must work with no internet
        redoc_url=None,
    )
    app.state.web = Web(
        project,
        store,
        session_hours=session_hours,
        jobs=jobs or Jobs(Path(project.path)),
        drill_limit=RateLimit(drill_per_minute),
        export_limit=RateLimit(exports_per_minute),
    )

    @app.exception_handler(ApiError)
    def _api_error(_: Request, exc: ApiError) -> Response:
        body = {"detail": exc.detail, "hint": exc.hint}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(OkrsyncError)
    def _known(_: Request, exc: OkrsyncError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, ConfigError) else 503
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=status)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        except Exception:
            _log_request(request, 500, started)
            raise
        _log_request(request, response.status_code, started)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(alerts.router)
    app.include_router(closing.router)
    app.include_router(bindings.router)
    app.include_router(planning.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC, check_dir=False), name="static")
    return app
