"""The pages: static files that draw themselves from the JSON API. A page asked for without a session
goes to the login; an admin page asked for by another role answers 403."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from okrsync import users
from okrsync.web.auth import SESSION_COOKIE

STATIC = Path(__file__).parent / "static"
PAGES = STATIC / "pages"
router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, *, admin: bool = False, bind: bool = False) -> Response:
    w = request.app.state.web
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    if token:
        with w.store.engine.connect() as conn:
            user = users.user_of_session(conn, token)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    role = w.project.settings.roles.get(user.role)
    if (admin and (role is None or not role.admin)) or (bind and (role is None or not role.bind)):
        return HTMLResponse(
            "<!doctype html><title>Not allowed</title><p>Your role may not open this page. "
            '<a href="/">Back to the objectives</a>.</p>',
            status_code=403,
        )
    return FileResponse(PAGES / name, media_type="text/html")


@router.get("/login")
def login_page() -> Response:
    return FileResponse(PAGES / "login.html", media_type="text/html")


@router.get("/")
def tree_page(request: Request) -> Response:
    return _page(request, "index.html")


@router.get("/kr/{kr_id}")
def kr_page(request: Request, kr_id: str) -> Response:
    return _page(request, "kr.html")


@router.get("/admin/checks")
def checks_page(request: Request) -> Response:
    return _page(request, "checks.html", admin=True)


@router.get("/admin/users")
def users_page(request: Request) -> Response:
    return _page(request, "users.html", admin=True)


@router.get("/admin/audit")
def audit_page(request: Request) -> Response:
    return _page(request, "audit.html", admin=True)


@router.get("/bind")
def bind_page(request: Request) -> Response:
    return _page(request, "bind.html", bind=True)


@router.get("/plan")
def plan_page(request: Request) -> Response:
    return _page(request, "plan.html", bind=True)
