"""The JSON API (docs/web.md). Each route names the role it needs (okrsync.web.auth); the pages use
nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from okr_store import checks as store_checks
from okr_store import lineage, queries
from okr_store import users as stored_users
from okrsync import access, render, users
from okrsync.errors import ConfigError, NotFound
from okrsync.web import schemas as s
from okrsync.web.auth import SESSION_COOKIE, Admin, Records, Viewer
from okrsync.web.context import ApiError, Web, web

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.Problem, "description": text}
    for code, text in {
        400: "Bad parameter",
        401: "Not signed in",
        403: "The role does not allow it, or the CSRF header is missing",
        404: "Not found",
    }.items()
}
router = APIRouter(prefix="/api", responses=PROBLEMS)
WebDep = Annotated[Web, Depends(web)]
MAX_ID = 2**63 - 1  # the stores' BIGINT ids
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
MAX_PAGE = 1000
MAX_CSV = 100_000
STALE = timedelta(hours=24)  # as `okrsync status` by default


def plain(obj: Any) -> Any:
    """Decimals and times as the CLI's JSON writes them, all the way down."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return render.plain(obj)


def _now() -> datetime:
    return users.utcnow()


# ---- sessions --------------------------------------------------------------------------------------
@router.get("/health", response_model=s.Health, tags=["session"])
def health() -> s.Health:
    return s.Health(ok=True)


@router.post("/session", response_model=s.LoggedIn, tags=["session"], responses={429: {"model": s.Problem}})
def login(body: s.Login, request: Request, response: Response, w: WebDep) -> s.LoggedIn:
    """Sign in: sets the session cookie and returns the CSRF token to send with changes."""
    wait = w.throttle.blocked_for(body.username)
    if wait:
        raise ApiError(
            429, f"too many failed sign-ins for {body.username!r}", f"try again in {int(wait) + 1} seconds"
        )
    with w.store.engine.begin() as conn:
        ok = users.verify_password(conn, body.username, body.password)
        user = stored_users.get_user(conn, body.username) if ok else None
        if user is None or user.role not in w.project.settings.roles:
            w.throttle.failed(body.username)
            raise ApiError(401, "wrong user name or password")
        token = users.start_session(conn, user.name, w.session_hours)
    w.throttle.succeeded(body.username)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(w.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return s.LoggedIn(user=s.UserRef(name=user.name, role=user.role), csrf_token=users.csrf_for(token))


@router.delete("/session", status_code=204, tags=["session"])
def logout(c: Viewer, response: Response, w: WebDep) -> None:
    """Sign out: ends this session (bearer tokens are revoked with DELETE /api/tokens/{id})."""
    if c.session:
        with w.store.engine.begin() as conn:
            stored_users.end_session(conn, users.digest(c.session))
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=s.Me, tags=["session"])
def me(c: Viewer) -> s.Me:
    can = s.Can(records=c.role.records, sensitive=c.role.sensitive, admin=c.role.admin)
    return s.Me(name=c.name, role=c.role_name, can=can, csrf_token=c.csrf_token)


# ---- the tree and key results ----------------------------------------------------------------
def _kr_json(w: Web, kr: queries.KrStatus, now: datetime) -> dict[str, Any]:
    out = render.kr_json(kr, now, STALE)
    out["flow_run_url"] = w.flow_run_url(out["flow_run_id"])
    return out


def _objective_json(w: Web, o: queries.ObjectiveStatus, now: datetime) -> dict[str, Any]:
    out = render.objective_json(o, now, STALE)
    out["key_results"] = [_kr_json(w, k, now) for k in o.key_results]
    out["objectives"] = [_objective_json(w, c, now) for c in o.objectives]
    return out


@router.get("/tree", response_model=s.Tree, tags=["key results"])
def tree(c: Viewer, w: WebDep) -> Any:
    """Every active objective with its key results' latest values."""
    now = _now()
    with w.store.engine.connect() as conn:
        roots = queries.status_tree(conn)
    return plain({"now": now, "objectives": [_objective_json(w, o, now) for o in roots]})


def _find_kr(w: Web, kr_id: str) -> queries.KrStatus:
    with w.store.engine.connect() as conn:
        roots = queries.status_tree(conn)
    stack = list(roots)
    while stack:
        o = stack.pop()
        for k in o.key_results:
            if k.id == kr_id:
                return k
        stack.extend(o.objectives)
    raise ApiError(404, f"no key result {kr_id!r}", "GET /api/tree lists them")


def _value_json(w: Web, v: queries.StoredValue) -> dict[str, Any]:
    """One point of a KR's history; its pace from the value's own baseline and target (they may have
    changed since)."""
    pace = v.baseline + v.expected * (v.target - v.baseline)
    return {
        "value_id": v.id,
        "value": v.value,
        "reason": v.reason,
        "progress": v.progress,
        "expected": v.expected,
        "pace_value": pace,
        "status": v.status,
        "records": v.records,
        "as_of": v.as_of,
        "computed_at": v.computed_at,
        "run_id": v.run_id,
        "flow_run_id": v.flow_run_id,
        "flow_run_url": w.flow_run_url(v.flow_run_id),
    }


@router.get("/krs/{kr_id}", response_model=s.KrDetail, tags=["key results"])
def kr_detail(kr_id: str, c: Viewer, w: WebDep) -> Any:
    """A key result, every value it had, and the admin decisions that touched it."""
    kr = _find_kr(w, kr_id)
    with w.store.engine.connect() as conn:
        values = queries.history(conn, kr_id)
        decisions = store_checks.decisions_for_kr(conn, kr_id)
    return plain(
        {
            "kr": _kr_json(w, kr, _now()),
            "history": [_value_json(w, v) for v in values],
            "decisions": decisions,
        }
    )


def _value(w: Web, kr_id: str, value_id: int) -> queries.StoredValue:
    with w.store.engine.connect() as conn:
        try:
            v = queries.value_by_id(conn, value_id)
        except NotFound:
            v = None
    if v is None or v.kr_id != kr_id:  # never another KR's value through this KR's path
        raise ApiError(404, f"{kr_id} has no value #{value_id}", f"GET /api/krs/{kr_id} lists its values")
    return v


# ---- records behind a value ------------------------------------------------------------------
def _filters(w: Web, c: Any, where: list[str], sort: str) -> dict[str, str]:
    equals: dict[str, str] = {}
    for item in where:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ApiError(400, f"cannot read the filter {item!r}", "write where=field=value")
        equals[name] = text
    try:
        return access.drill_filters(w.project, c.role_name, c.role, equals, sort)
    except access.NotAllowed as exc:
        raise ApiError(403, exc.message, exc.hint) from None
    except ConfigError as exc:
        raise ApiError(400, exc.message, exc.hint) from None


def _drill(
    w: Web,
    c: Any,
    kr_id: str,
    value_id: Id,
    *,
    limit: int,
    offset: int,
    sort: str,
    desc: bool | None,
    record_id: str | None,
    where: list[str],
    sums: bool,
) -> Any:
    v = _value(w, kr_id, value_id)
    equals = _filters(w, c, where, sort)
    try:
        d = lineage.drill(
            w.store,
            v,
            limit=limit,
            offset=offset,
            sort=sort,
            descending=desc,
            equals=equals or None,
            record_id=record_id or None,
            sums=sums,
        )
    except ConfigError as exc:
        raise ApiError(400, exc.message, exc.hint) from None
    return v, access.drill_as(w.project, c.role, d)


@router.get("/krs/{kr_id}/values/{value_id}/records", response_model=s.Records, tags=["records"])
def value_records(
    kr_id: str,
    value_id: Id,
    c: Records,
    w: WebDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    sort: Annotated[str, Query(max_length=200)] = "contribution",
    desc: bool | None = None,
    record_id: Annotated[str | None, Query(max_length=512)] = None,
    where: Annotated[list[str], Query(max_length=1000)] = [],  # noqa: B006 (FastAPI copies defaults)
) -> Any:
    """One page of the records behind a value, each with its contribution and a link to its source."""
    v, d = _drill(
        w,
        c,
        kr_id,
        value_id,
        limit=limit,
        offset=offset,
        sort=sort,
        desc=desc,
        record_id=record_id,
        where=where,
        sums=False,
    )
    links = access.record_links(w.project, d)
    body = render.drill_json(d, links)
    descending = desc if desc is not None else sort == "contribution"
    hidden = w.project.sensitive()
    return plain(
        {
            "kr": kr_id,
            "value": _value_json(w, v),
            "metric": body["metric"],
            "total": d.total,
            "limit": limit,
            "offset": offset,
            "sort": sort,
            "desc": descending,
            "columns": d.columns,
            "sensitive": {k: list(f) for k, f in hidden.items() if k in d.columns},
            "records": [
                {
                    k: r[k]
                    for k in (
                        "source",
                        "stream",
                        "record_id",
                        "contribution",
                        "denominator_contribution",
                        "role",
                        "url",
                        "fields",
                    )
                }
                for r in body["records"]
            ],
        }
    )


@router.get(
    "/krs/{kr_id}/values/{value_id}/records.csv",
    response_class=Response,
    tags=["records"],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}},
)
def value_records_csv(
    kr_id: str,
    value_id: Id,
    c: Records,
    w: WebDep,
    limit: Annotated[int, Query(ge=1, le=MAX_CSV)] = MAX_CSV,
    sort: Annotated[str, Query(max_length=200)] = "contribution",
    desc: bool | None = None,
    record_id: Annotated[str | None, Query(max_length=512)] = None,
    where: Annotated[list[str], Query(max_length=1000)] = [],  # noqa: B006
) -> Response:
    """The records behind a value as CSV (up to 100,000; the same filters and sort as the page)."""
    _, d = _drill(
        w,
        c,
        kr_id,
        value_id,
        limit=limit,
        offset=0,
        sort=sort,
        desc=desc,
        record_id=record_id,
        where=where,
        sums=False,
    )
    name = f"{kr_id}-value-{value_id}.csv".replace('"', "")
    return Response(
        render.drill_csv(d),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/krs/{kr_id}/diff", response_model=s.Diff, tags=["records"])
def kr_diff(
    kr_id: str,
    c: Records,
    w: WebDep,
    from_value: QueryId = None,
    to_value: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Any:
    """What changed between two values of a key result: records added, removed or changed."""
    _find_kr(w, kr_id)
    with w.store.engine.connect() as conn:
        values = queries.history(conn, kr_id)
    if not values:
        raise ApiError(404, f"{kr_id} has no values yet", "run `okrsync run`")
    after = _value(w, kr_id, to_value) if to_value else values[-1]
    if from_value:
        before = _value(w, kr_id, from_value)
    else:
        found = queries.compared_with(values, after)
        if found is None:
            raise ApiError(404, f"value #{after.id} is the first value of {kr_id}: nothing to compare with")
        before = found
    result = access.diff_as(w.project, c.role, lineage.diff(w.store, before, after, limit=limit))
    body = render.diff_json(result)
    body["from"], body["to"] = _value_json(w, before), _value_json(w, after)
    return plain(body)


# ---- checks (admin) --------------------------------------------------------------------------
_check_json = render.check_json


@router.get("/checks", response_model=s.Checks, tags=["checks"])
def list_checks(c: Admin, w: WebDep, failed: bool = False) -> Any:
    """Check results, newest first (``failed``: only those that did not pass), and the held KRs."""
    with w.store.engine.connect() as conn:
        rows = store_checks.list_checks(conn, failed=failed)
        roots = queries.status_tree(conn)
    held, stack = [], list(roots)
    while stack:
        o = stack.pop(0)
        held += [
            {
                "kr_id": k.id,
                "title": k.title,
                "reason": k.held_reason,
                "since": k.held_since,
                "value_id": k.value.id if k.value else None,
            }
            for k in o.key_results
            if k.held_reason
        ]
        stack.extend(o.objectives)
    return plain({"checks": [_check_json(r) for r in rows], "held": held})


@router.get("/checks/{check_id}", response_model=s.CheckDetail, tags=["checks"])
def check_detail(check_id: Id, c: Admin, w: WebDep) -> Any:
    """One check: what it found, the offending rows (sensitive fields as the role allows), the audit."""
    with w.store.engine.connect() as conn:
        try:
            r = store_checks.get_check(conn, check_id)
        except NotFound:
            raise ApiError(404, f"no check #{check_id}", "GET /api/checks lists them") from None
        events = store_checks.audit_log(conn, check_id=check_id)
    hidden = w.project.sensitive().get(r.stream or "", ())
    vault = w.project.vault() if hidden and c.role.sensitive else None
    from okrsync.pii import reveal

    sample = [
        {"record_id": str(x["record_id"]), "fields": reveal(x["fields"], hidden, vault)} for x in r.sample
    ]
    audit = [{"at": e.at, "actor": e.actor, "action": e.action, "reason": e.reason} for e in events]
    return plain({**_check_json(r), "sample": sample, "audit": audit})


@router.post(
    "/checks/{check_id}/accept",
    response_model=s.Accepted,
    tags=["checks"],
    responses={409: {"model": s.Problem}},
)
def accept_check(check_id: Id, body: s.AcceptBody, c: Admin, w: WebDep) -> Any:
    """Let what a blocked check held back through once (audited), and recompute the held KRs."""
    from flows.review import accept

    with w.store.engine.connect() as conn:
        try:
            store_checks.get_check(conn, check_id)
        except NotFound:
            raise ApiError(404, f"no check #{check_id}", "GET /api/checks lists them") from None
    try:
        done = accept(w.project, w.store, check_id, reason=body.reason.strip(), actor=c.name)
    except ConfigError as exc:
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
    with w.store.engine.connect() as conn:
        try:
            store_checks.get_check(conn, check_id)
        except NotFound:
            raise ApiError(404, f"no check #{check_id}", "GET /api/checks lists them") from None
    return plain(w.jobs.start_rerun(check_id, c.name))


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


@router.get("/users", response_model=s.Users, tags=["users"])
def list_users(c: Admin, w: WebDep) -> Any:
    with w.store.engine.connect() as conn:
        return plain({"users": [_user_json(u) for u in stored_users.list_users(conn)]})


@router.post(
    "/users", response_model=s.User, status_code=201, tags=["users"], responses={409: {"model": s.Problem}}
)
def add_user(body: s.NewUser, c: Admin, w: WebDep) -> Any:
    if body.role not in w.project.settings.roles:
        raise ApiError(
            400,
            f"role {body.role!r} is not one of the project's roles",
            f"roles: {', '.join(w.project.settings.roles)}",
        )
    with w.store.engine.begin() as conn:
        if stored_users.get_user(conn, body.name):
            raise ApiError(409, f"user {body.name!r} already exists")
        u = stored_users.add_user(conn, body.name, body.role, users.hash_password(body.password), _now())
    return plain(_user_json(u))


@router.delete("/users/{name}", status_code=204, tags=["users"])
def remove_user(name: str, c: Admin, w: WebDep) -> None:
    """Remove a user, their sessions and their tokens (not yourself: ask another admin)."""
    if name == c.name:
        raise ApiError(400, "you cannot remove yourself", "ask another admin")
    with w.store.engine.begin() as conn:
        if stored_users.get_user(conn, name) is None:
            raise ApiError(404, f"no user {name!r}")
        stored_users.remove_user(conn, name)


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
    """An API token for yourself; it is shown once (the store keeps only its hash)."""
    with w.store.engine.begin() as conn:
        token, t = users.issue_token(conn, c.name, body.label, body.days)
    return plain({"id": t.id, "label": t.label, "token": token, "expires_at": t.expires_at})


@router.delete("/tokens/{token_id}", status_code=204, tags=["users"])
def revoke_token(token_id: Id, c: Viewer, w: WebDep) -> None:
    with w.store.engine.begin() as conn:
        try:
            stored_users.revoke_token(conn, token_id, c.name)
        except NotFound:
            raise ApiError(404, f"you have no API token #{token_id}") from None
