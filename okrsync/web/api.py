"""The JSON API (docs/web.md). Each route names the role it needs (okrsync.web.auth); the pages use
nothing else."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from okr_store import bindings, lineage, queries
from okr_store import checks as store_checks
from okr_store import users as stored_users
from okrsync import access, accounts, drill_export, render, users
from okrsync.errors import ConfigError, NotFound, OkrsyncError
from okrsync.small_groups import small_groups
from okrsync.web import schemas as s
from okrsync.web.auth import SESSION_COOKIE, Drill, Export, Viewer
from okrsync.web.context import ApiError, Web, client_address, web

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.Problem, "description": text}
    for code, text in {
        400: "Bad parameter",
        401: "Not signed in",
        403: "The role does not allow it, or the CSRF header is missing",
        404: "Not found",
    }.items()
}
LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": s.Problem, "description": "Too many requests from this user: wait (Retry-After)"}
}
log = logging.getLogger("okrsync.web.auth")
router = APIRouter(prefix="/api", responses=PROBLEMS)
WebDep = Annotated[Web, Depends(web)]
MAX_ID = 2**63 - 1  # the stores' BIGINT ids
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
MAX_PAGE = 1000
STALE = timedelta(hours=24)  # as `okrsync status` by default


def plain(obj: Any) -> Any:
    """Decimals and times as the CLI's JSON writes them, all the way down."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return render.plain(obj)


# ---- sessions --------------------------------------------------------------------------------------
@router.get("/health", response_model=s.Health, tags=["session"])
def health() -> s.Health:
    return s.Health(ok=True)


@router.post("/session", response_model=s.LoggedIn, tags=["session"], responses={429: {"model": s.Problem}})
def login(body: s.Login, request: Request, response: Response, w: WebDep) -> s.LoggedIn:
    """Sign in: sets the session cookie and returns the CSRF token to send with changes."""
    address = client_address(request) or "?"
    wait = w.throttle.blocked_for(body.username, address)
    if wait:
        seconds = int(wait) + 1
        log.warning("sign-in refused (throttled) addr=%s retry_after=%d", address, seconds)
        raise ApiError(
            429,
            "too many failed sign-ins for this name from your address",
            f"try again in {seconds} seconds",
            {"Retry-After": str(seconds)},
        )
    with w.store.engine.begin() as conn:  # a failure's audit event commits before the 401
        ok = users.verify_password(conn, body.username, body.password)
        user = stored_users.get_user(conn, body.username) if ok else None
        if user is not None and user.role in w.project.settings.roles:
            token = users.start_session(conn, user.name, w.session_hours)
            accounts.signed_in(conn, user.name, address)
        else:
            user, closed = None, w.throttle.failed(body.username, address)
            known = accounts.sign_in_failed(conn, body.username, address, closed=closed)
    if user is None:
        log.warning("sign-in failed user=%s addr=%s%s", known or "(unknown)", address, " throttled" * closed)
        raise ApiError(401, "wrong user name or password")
    w.throttle.succeeded(body.username, address)
    log.info("sign-in user=%s addr=%s", user.name, address)
    request.state.user = user.name
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
    can = s.Can(records=c.role.records, sensitive=c.role.sensitive, admin=c.role.admin, bind=c.role.bind)
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
    at = users.utcnow()
    with w.store.engine.connect() as conn:
        roots = small_groups(w.project, c.role).tree(queries.status_tree(conn))
    return plain({"now": at, "objectives": [_objective_json(w, o, at) for o in roots]})


def each_kr(roots: list[queries.ObjectiveStatus]) -> Iterator[queries.KrStatus]:
    """Every key result of the tree, objective by objective, level by level."""
    level = list(roots)
    while level:
        o = level.pop(0)
        yield from o.key_results
        level.extend(o.objectives)


def _find_kr(conn: sa.Connection, kr_id: str) -> queries.KrStatus:
    """A key result of the store, also one no longer active (a retired binding keeps its page)."""
    found = queries.kr_status(conn, kr_id)
    if found is None:
        raise ApiError(404, f"no key result {kr_id!r}", "GET /api/tree lists them")
    return found


def _unit(w: Web, kr_id: str) -> str | None:
    try:
        b = w.project.key_result(kr_id)
    except OkrsyncError:
        return None  # a KR no longer in the project file: its values stay readable
    return b.spec.unit or w.project.metrics[b.spec.metric].unit


def _value_json(w: Web, v: queries.StoredValue) -> dict[str, Any]:
    """One point of a KR's history (the response model keeps the API's fields); its pace from the
    value's own baseline and target (they may have changed since)."""
    unit = _unit(w, v.kr_id)
    return {
        **render.value_json(v, unit),
        "pace_value": render.exact(v.baseline + v.expected * (v.target - v.baseline), unit),
        "flow_run_url": w.flow_run_url(v.flow_run_id),
    }


@router.get("/krs/{kr_id}", response_model=s.KrDetail, tags=["key results"])
def kr_detail(kr_id: str, c: Viewer, w: WebDep) -> Any:
    """A key result, every value it had, and the admin decisions that touched it."""
    seen = small_groups(w.project, c.role)
    with w.store.engine.connect() as conn:
        kr = seen.kr(_find_kr(conn, kr_id))
        values = seen.values(queries.history(conn, kr_id))
        decisions = store_checks.decisions_for_kr(conn, kr_id)
        bound = bindings.find(conn, kr_id)
    return plain(
        {
            "kr": _kr_json(w, kr, users.utcnow()),
            "active": kr.active,
            "binding": None if bound is None else {"status": bound.status, "version": bound.version},
            "history": [_value_json(w, v) for v in values],
            "decisions": decisions,
        }
    )


def _no_value(kr_id: str, value_id: int) -> ApiError:
    return ApiError(404, f"{kr_id} has no value #{value_id}", f"GET /api/krs/{kr_id} lists its values")


def _value(w: Web, kr_id: str, value_id: int) -> queries.StoredValue:
    with w.store.engine.connect() as conn:
        try:
            v = queries.value_by_id(conn, value_id)
        except NotFound:
            raise _no_value(kr_id, value_id) from None
    if v.kr_id != kr_id:  # never another KR's value through this KR's path
        raise _no_value(kr_id, value_id)
    return v


# ---- records behind a value ------------------------------------------------------------------
def _filters(w: Web, c: Any, where: list[str], sort: str) -> dict[str, list[str]]:
    """``where=field=value`` filters; a field repeated keeps records equal to any of its values."""
    try:
        equals = access.where_filters(where)
    except ConfigError as exc:
        raise ApiError(400, exc.message, "write where=field=value (repeat it for several values)") from None
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


@router.get(
    "/krs/{kr_id}/values/{value_id}/records", response_model=s.Records, tags=["records"], responses=LIMITED
)
def value_records(
    kr_id: str,
    value_id: Id,
    c: Drill,
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
    body = render.drill_json(d, access.record_links(w.project, d))
    descending = desc if desc is not None else sort == "contribution"
    hidden = w.project.sensitive()
    return plain(
        {
            "kr": kr_id,
            "value": _value_json(w, small_groups(w.project, c.role).value(v)),
            "metric": body["metric"],
            "total": d.total,
            "limit": limit,
            "offset": offset,
            "sort": sort,
            "desc": descending,
            "columns": d.columns,
            "sensitive": {k: list(f) for k, f in hidden.items() if k in d.columns},
            "records": body["records"],
        }
    )


@router.get(
    "/krs/{kr_id}/values/{value_id}/records.csv",
    response_class=Response,
    tags=["records"],
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"},
        **LIMITED,
    },
)
def value_records_csv(
    kr_id: str,
    value_id: Id,
    c: Export,
    w: WebDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    sort: Annotated[str, Query(max_length=200)] = "contribution",
    desc: bool | None = None,
    record_id: Annotated[str | None, Query(max_length=512)] = None,
    where: Annotated[list[str], Query(max_length=1000)] = [],  # noqa: B006
) -> StreamingResponse:
    """The records behind a value as CSV: all of them (or ``limit``), the same filters and sort as the
    page, streamed as they are read from the store (memory stays flat whatever the count)."""
    v = _value(w, kr_id, value_id)
    ask: dict[str, Any] = {"sort": sort, "descending": desc, "equals": _filters(w, c, where, sort) or None,
                           "record_id": record_id or None}
    try:
        head = lineage.drill(w.store, v, limit=1, sums=False, **ask)
        pages = lineage.drill_pages(w.store, v, limit=limit, **ask)
    except ConfigError as exc:
        raise ApiError(400, exc.message, exc.hint) from None
    head = replace(head, records=[])
    seen = drill_export.as_seen(head, pages, lambda d: access.drill_as(w.project, c.role, d), lambda d: {})
    name = f"{kr_id}-value-{value_id}.csv".replace('"', "")
    return StreamingResponse(
        drill_export.csv_chunks(head, seen),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/krs/{kr_id}/diff", response_model=s.Diff, tags=["records"], responses=LIMITED)
def kr_diff(
    kr_id: str,
    c: Drill,
    w: WebDep,
    from_value: QueryId = None,
    to_value: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Any:
    """What changed between two values of a key result: records added, removed or changed."""
    with w.store.engine.connect() as conn:
        _find_kr(conn, kr_id)
        values = queries.history(conn, kr_id)
    if not values:
        raise ApiError(404, f"{kr_id} has no values yet", "run `okrsync run`")
    by_id = {v.id: v for v in values}  # this KR's values only: never another KR's through its path
    for wanted in (to_value, from_value):
        if wanted and wanted not in by_id:
            raise _no_value(kr_id, wanted)
    after = by_id[to_value] if to_value else values[-1]
    if from_value:
        before = by_id[from_value]
    else:
        found = queries.compared_with(values, after)
        if found is None:
            raise ApiError(404, f"value #{after.id} is the first value of {kr_id}: nothing to compare with")
        before = found
    result = access.diff_as(w.project, c.role, lineage.diff(w.store, before, after, limit=limit))
    seen = small_groups(w.project, c.role)  # the two values as the role sees them (and so the delta)
    before, after = seen.value(before), seen.value(after)
    body = render.diff_json(replace(result, before=before, after=after))
    body["from"], body["to"] = _value_json(w, before), _value_json(w, after)
    return plain(body)
