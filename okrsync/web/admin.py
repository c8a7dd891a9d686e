"""The admin's part of the API (docs/web.md): the check review (accept, re-run), users and their
roles (within the grant model of okrsync.accounts), the audit log, and everyone's own API tokens."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from okr_store import audit, queries
from okr_store import checks as store_checks
from okr_store import users as stored_users
from okrsync import accounts, reconcile_view, render, users
from okrsync.access import NotAllowed
from okrsync.errors import ConfigError, LeaseBusy, NotFound
from okrsync.pii import reveal
from okrsync.web import schemas as s
from okrsync.web.api import MAX_PAGE, PROBLEMS, Id, QueryId, WebDep, each_kr, plain
from okrsync.web.auth import Admin, Viewer
from okrsync.web.context import ApiError, Web

router = APIRouter(prefix="/api", responses=PROBLEMS)


# ---- checks (admin) --------------------------------------------------------------------------
def _check(conn: sa.Connection, check_id: int) -> store_checks.CheckRow:
    try:
        return store_checks.get_check(conn, check_id)
    except NotFound:
        raise ApiError(404, f"no check #{check_id}", "GET /api/checks lists them") from None


def _require_check(w: Web, check_id: int) -> None:
    with w.store.engine.connect() as conn:
        _check(conn, check_id)


@router.get("/checks", response_model=s.Checks, tags=["checks"])
def list_checks(c: Admin, w: WebDep, failed: bool = False) -> Any:
    """Check results, newest first (``failed``: only those that did not pass), and the held KRs."""
    with w.store.engine.connect() as conn:
        rows = store_checks.list_checks(conn, failed=failed)
        roots = queries.status_tree(conn)
    held = [
        {
            "kr_id": k.id,
            "title": k.title,
            "reason": k.held_reason,
            "since": k.held_since,
            "value_id": k.value.id if k.value else None,
        }
        for k in each_kr(roots)
        if k.held_reason
    ]
    return plain({"checks": [render.check_json(r) for r in rows], "held": held})


@router.get("/checks/{check_id}", response_model=s.CheckDetail, tags=["checks"])
def check_detail(check_id: Id, c: Admin, w: WebDep) -> Any:
    """One check: what it found, the offending rows (sensitive fields as the role allows), the audit."""
    with w.store.engine.connect() as conn:
        r = _check(conn, check_id)
        events = store_checks.audit_log(conn, check_id=check_id)
    hidden = w.project.sensitive().get(r.stream or "", ())
    vault = w.project.vault() if hidden and c.role.sensitive else None
    sample = [
        {"record_id": str(x["record_id"]), "fields": reveal(x["fields"], hidden, vault)} for x in r.sample
    ]
    audit = [{"at": e.at, "actor": e.actor, "action": e.action, "reason": e.reason} for e in events]
    found = reconcile_view.detail(w.project, r.result) if r.kind == "reconcile" else None
    return plain({**render.check_json(r), "sample": sample, "audit": audit, "reconciliation": found})


@router.post(
    "/checks/{check_id}/accept",
    response_model=s.Accepted,
    tags=["checks"],
    responses={409: {"model": s.Problem}},
)
def accept_check(check_id: Id, body: s.AcceptBody, c: Admin, w: WebDep) -> Any:
    """Let what a blocked check held back through once (audited), and recompute the held KRs."""
    from flows.review import accept  # the flows are heavy to import: only when an admin accepts

    _require_check(w, check_id)
    try:
        done = accept(w.project, w.store, check_id, reason=body.reason.strip(), actor=c.name)
    except (ConfigError, LeaseBusy) as exc:  # not blocked any more, or a run holds the project now
        raise ApiError(409, exc.message, exc.hint) from None
    return plain(
        {
            "check_ids": done.check_ids,
            "stream": done.stream,
            "rows_committed": done.rows_committed,
            "values": done.values,
            "held": done.held,
        }
    )


@router.post(
    "/checks/{check_id}/rerun",
    response_model=s.Job,
    status_code=202,
    tags=["checks"],
    responses={409: {"model": s.Problem}},
)
def rerun_check(check_id: Id, c: Admin, w: WebDep) -> Any:
    """Run the project again (after the source was fixed); poll the job for the result."""
    _require_check(w, check_id)
    return plain(w.jobs.start_rerun(check_id))


@router.get("/jobs/{job_id}", response_model=s.Job, tags=["checks"])
def job(job_id: str, c: Admin, w: WebDep) -> Any:
    """A re-run started from the check review: running, then its summary."""
    found = w.jobs.get(job_id)
    if found is None:
        raise ApiError(404, f"no job {job_id!r}")
    return plain(found)


# ---- users and tokens ------------------------------------------------------------------------
def _user_json(u: stored_users.User) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "created_at": u.created_at, "disabled": u.disabled}


def _access_error(exc: ConfigError) -> ApiError:
    """A refused access change as the API says it."""
    if isinstance(exc, NotAllowed):
        return ApiError(403, exc.message, exc.hint)
    return ApiError(400, exc.message, exc.hint)


@router.get("/users", response_model=s.Users, tags=["users"])
def list_users(c: Admin, w: WebDep) -> Any:
    with w.store.engine.connect() as conn:
        return plain({"users": [_user_json(u) for u in stored_users.list_users(conn)]})


@router.post(
    "/users", response_model=s.User, status_code=201, tags=["users"], responses={409: {"model": s.Problem}}
)
def add_user(body: s.NewUser, c: Admin, w: WebDep) -> Any:
    """Add a user; the role must be one your own role covers (docs/web.md, "Roles and grants")."""
    try:
        accounts.check_grant(w.project, c.actor(), body.role)
    except ConfigError as exc:
        raise _access_error(exc) from None
    hashed = users.hash_password(body.password)  # slow by design: not inside the transaction
    with w.store.engine.begin() as conn:
        if stored_users.get_user(conn, body.name):
            raise ApiError(409, f"user {body.name!r} already exists")
        u = accounts.add_user(conn, w.project, c.actor(), body.name, body.role, hashed)
    return plain(_user_json(u))


@router.put("/users/{name}/role", response_model=s.User, tags=["users"])
def change_role(name: str, body: s.NewRole, c: Admin, w: WebDep) -> Any:
    """Give a user another role (one your own role covers); their sessions and API tokens end."""
    if name == c.name:
        raise ApiError(400, "you cannot change your own role", "ask another admin")
    with w.store.engine.begin() as conn:
        try:
            u = accounts.change_role(conn, w.project, c.actor(), name, body.role)
        except NotFound:
            raise ApiError(404, f"no user {name!r}") from None
        except ConfigError as exc:
            raise _access_error(exc) from None
    return plain(_user_json(u))


@router.delete("/users/{name}", status_code=204, tags=["users"])
def remove_user(name: str, c: Admin, w: WebDep) -> None:
    """Remove a user, their sessions and their tokens (not yourself: ask another admin)."""
    if name == c.name:
        raise ApiError(400, "you cannot remove yourself", "ask another admin")
    with w.store.engine.begin() as conn:
        try:
            accounts.remove_user(conn, w.project, c.actor(), name)
        except NotFound:
            raise ApiError(404, f"no user {name!r}") from None
        except ConfigError as exc:
            raise _access_error(exc) from None


@router.get("/audit", response_model=s.Audit, tags=["users"])
def audit_events(
    c: Admin,
    w: WebDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    before: QueryId = None,
    access: bool = False,
) -> Any:
    """The audit log, newest first: access changes and sign-ins, and check decisions (``access``:
    access events only)."""
    with w.store.engine.connect() as conn:
        rows = audit.recent(conn, limit=limit, before=before, access_only=access)
    events = [
        {k: getattr(e, k) for k in ("id", "at", "actor", "action", "target", "address", "check_id", "kr_id",
                                    "reason")}
        for e in rows
    ]
    return plain({"events": events, "next_before": rows[-1].id if len(rows) == limit else None})


def _token_json(t: stored_users.Token) -> dict[str, Any]:
    return {
        "id": t.id,
        "label": t.label,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
    }


@router.get("/tokens", response_model=s.Tokens, tags=["users"])
def my_tokens(c: Viewer, w: WebDep) -> Any:
    with w.store.engine.connect() as conn:
        return plain({"tokens": [_token_json(t) for t in stored_users.list_tokens(conn, c.name)]})


@router.post("/tokens", response_model=s.IssuedToken, status_code=201, tags=["users"])
def new_token(body: s.NewToken, c: Viewer, w: WebDep) -> Any:
    """An API token for yourself, signed in with your password (an API token cannot make another);
    it expires after ``days`` and is shown once (the store keeps only its hash)."""
    if c.session is None:
        raise ApiError(
            403,
            "an API token cannot create API tokens",
            "sign in with your password (the page, or POST /api/session) to create one",
        )
    with w.store.engine.begin() as conn:
        token, t = accounts.issue_token(conn, c.actor(), c.name, body.label, body.days)
    return plain({"id": t.id, "label": t.label, "token": token, "expires_at": t.expires_at})


@router.delete("/tokens/{token_id}", status_code=204, tags=["users"])
def revoke_token(token_id: Id, c: Viewer, w: WebDep) -> None:
    with w.store.engine.begin() as conn:
        try:
            accounts.revoke_token(conn, c.actor(), token_id, c.name)
        except NotFound:
            raise ApiError(404, f"you have no API token #{token_id}") from None
