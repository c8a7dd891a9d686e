"""Who is calling: a session cookie (with a CSRF token on state-changing requests) or a bearer API
token; and what their role lets them do. Every API route depends on one of ``viewer``,
``records`` (or its rate-limited ``drill`` and ``export``) or ``admin`` below: there is no route
without a role check except the public ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from okrsync import users
from okrsync.throttle import RateLimit
from okrsync.web.context import ApiError, Web, client_address, web

SESSION_COOKIE = "okrsync_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
log = logging.getLogger("okrsync.web.auth")

# Declared so the OpenAPI spec names both ways in (auto_error off: we answer 401 ourselves).
_bearer = HTTPBearer(auto_error=False, description="An API token from `okrsync users token`.")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="The page's session.")


@dataclass(frozen=True)
class Caller:
    name: str
    role_name: str
    role: Any  # okrsync.project.RoleSpec
    session: str | None  # the session token when signed in with the cookie (None: bearer token)
    address: str | None = None  # where the request came from

    def actor(self) -> Any:
        """This caller as the actor of an access change (okrsync.accounts)."""
        from okrsync.accounts import Actor

        return Actor(self.name, self.role, self.address)

    @property
    def csrf_token(self) -> str | None:
        return users.csrf_for(self.session) if self.session else None


def _caller(
    request: Request,
    w: Annotated[Web, Depends(web)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    with w.store.engine.begin() as conn:
        if bearer is not None:
            user, session = users.user_of_token(conn, bearer.credentials), None
            if user is None:
                raise ApiError(
                    401,
                    "this API token is not valid (unknown, revoked or expired)",
                    "create one with `okrsync users token NAME`",
                )
        elif cookie:
            user, session = users.user_of_session(conn, cookie), cookie
            if user is None:
                raise ApiError(401, "your session has ended", "sign in again at /login")
        else:
            raise ApiError(401, "sign in first", "POST /api/session, or send Authorization: Bearer <token>")
    request.state.user = user.name  # for the access log (okrsync.web.app)
    role = w.project.settings.roles.get(user.role)
    if role is None:
        raise ApiError(
            403,
            f"your role {user.role!r} is not defined in the project",
            "ask an admin to give you one of the project's roles",
        )
    if session is not None and request.method not in SAFE_METHODS:
        if not users.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise ApiError(
                403,
                f"missing or wrong {CSRF_HEADER} header",
                "send the csrf_token from GET /api/me with every change",
            )
    return Caller(user.name, user.role, role, session, client_address(request))


def viewer(c: Annotated[Caller, Depends(_caller)]) -> Caller:
    """Anyone signed in: the tree and values."""
    return c


def records(c: Annotated[Caller, Depends(_caller)]) -> Caller:
    """Roles that may see the records behind values (drill-down, diff, CSV)."""
    if not c.role.records:
        raise ApiError(
            403,
            f"your role ({c.role_name}) may see key results but not the records behind them",
            "ask an admin for a role with records (e.g. leadership)",
        )
    return c


def admin(c: Annotated[Caller, Depends(_caller)]) -> Caller:
    """Check review and user management."""
    if not c.role.admin:
        raise ApiError(
            403, f"your role ({c.role_name}) may not review checks or manage users", "ask an admin"
        )
    return c


def _limited(c: Caller, limit: RateLimit, what: str) -> Caller:
    wait = limit.take(c.name)
    if wait:
        seconds = int(wait) + 1
        log.warning("rate limited user=%s what=%s retry_after=%d", c.name, what, seconds)
        raise ApiError(
            429,
            f"too many {what} requests from {c.name}",
            f"at most {limit.requests} a minute per user; try again in {seconds} seconds",
            {"Retry-After": str(seconds)},
        )
    return c


def drill(c: Annotated[Caller, Depends(records)], w: Annotated[Web, Depends(web)]) -> Caller:
    """``records``, within the per-user limit on pages of records and diffs."""
    return _limited(c, w.drill_limit, "drill-down")


def export(c: Annotated[Caller, Depends(records)], w: Annotated[Web, Depends(web)]) -> Caller:
    """``records``, within the per-user limit on CSV exports."""
    return _limited(c, w.export_limit, "export")


Viewer = Annotated[Caller, Depends(viewer)]
Records = Annotated[Caller, Depends(records)]
Admin = Annotated[Caller, Depends(admin)]
Drill = Annotated[Caller, Depends(drill)]
Export = Annotated[Caller, Depends(export)]
