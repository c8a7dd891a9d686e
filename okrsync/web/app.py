"""``create_app``: the FastAPI app behind ``okrsync serve`` (docs/web.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from okrsync.errors import ConfigError, NotFound, OkrsyncError
from okrsync.web import admin, api, pages
from okrsync.web.context import ApiError, Web
from okrsync.web.jobs import Jobs

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(project: Any, store: Any, *, session_hours: float = 12.0, jobs: Jobs | None = None) -> FastAPI:
    """The web app over a loaded project and its opened store."""
    app = FastAPI(
        title="okrsync",
        summary="OKR key results computed from the systems a company runs, with lineage.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: the app must work with no internet
        redoc_url=None,
    )
    app.state.web = Web(project, store, session_hours=session_hours, jobs=jobs or Jobs(Path(project.path)))

    @app.exception_handler(ApiError)
    def _api_error(_: Request, exc: ApiError) -> Response:
        return JSONResponse({"detail": exc.detail, "hint": exc.hint}, status_code=exc.status)

    @app.exception_handler(OkrsyncError)
    def _known(_: Request, exc: OkrsyncError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, ConfigError) else 503
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=status)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC, check_dir=False), name="static")
    return app
