"""Closed periods in the API (docs/web.md, "Closing periods"): restatements and their records for
roles that may see records; acknowledging one and reopening a period for admins (audited)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from okr_store import closing
from okrsync.errors import ConfigError, NotFound
from okrsync.web import schemas as s
from okrsync.web.api import PROBLEMS, Id, WebDep, plain
from okrsync.web.auth import Admin, Records
from okrsync.web.context import ApiError, Web

router = APIRouter(prefix="/api", responses=PROBLEMS, tags=["closing"])


class Change(BaseModel):
    stream: str
    record_id: str
    kind: str
    before: s.Num
    after: s.Num
    delta: str
    why: str
    fields: list[str]  # the names of the fields that changed (never their values)


class Restatement(s.RestatementLine):
    changes: list[Change]


class Restatements(BaseModel):
    restatements: list[s.RestatementLine]


class Close(BaseModel):
    close_id: int
    period: str
    seq: int
    value_id: int
    value: s.Num
    closes_at: str
    as_of: str
    closed_at: str
    run_id: str
    reopened_at: s.Time
    reopened_by: str | None
    reopen_reason: str | None


class Closes(BaseModel):
    closes: list[Close]
    restatements: list[s.RestatementLine]


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000, pattern=r"\S.*\S")  # as the CLI: a real reason


def _hidden(w: Web, c: Any, kr_id: str) -> bool:
    """Whether the role may not see how far this KR's value moves (a small group over personal data)."""
    from okr_store.queries import value_at
    from okrsync.small_groups import small_groups

    with w.store.engine.connect() as conn:
        try:
            v = value_at(conn, kr_id)
        except NotFound:
            return False
    return small_groups(w.project, c.role).hides(v)


def _restatement(conn: sa.Connection, restatement_id: int) -> closing.Restatement:
    found = [r for r in closing.restatements(conn) if r.id == restatement_id]
    if not found:
        raise ApiError(404, f"no restatement #{restatement_id}", "GET /api/restatements lists them")
    return found[0]


@router.get("/restatements", response_model=Restatements)
def list_restatements(
    c: Records, w: WebDep, kr: Annotated[str | None, Query(max_length=100)] = None, pending: bool = True
) -> Any:
    """Restatements after close, newest first: those no admin acknowledged yet (``pending=false``: all)."""
    with w.store.engine.connect() as conn:
        rows = closing.restatements(conn, kr, pending=pending)
    shown = [r for r in rows if not _hidden(w, c, r.kr_id)]
    return plain({"restatements": [closing.restatement_json(r, changes=False) for r in shown]})


@router.get("/restatements/{restatement_id}", response_model=Restatement)
def restatement(restatement_id: Id, c: Records, w: WebDep) -> Any:
    """One restatement with the records that moved the closed value."""
    with w.store.engine.connect() as conn:
        r = _restatement(conn, restatement_id)
    if _hidden(w, c, r.kr_id):
        raise ApiError(403, f"{r.kr_id} is a small group your role may not see", "ask a role with sensitive")
    return plain(closing.restatement_json(r))


@router.get("/krs/{kr_id}/closes", response_model=Closes)
def kr_closes(kr_id: str, c: Records, w: WebDep) -> Any:
    """Every closing of the KR's periods (and reopening), and its restatements."""
    with w.store.engine.connect() as conn:
        closes = closing.closes(conn, kr_id)
        rows = [] if _hidden(w, c, kr_id) else closing.restatements(conn, kr_id)
    return plain(
        {
            "closes": [closing.close_json(x) for x in closes],
            "restatements": [closing.restatement_json(r, changes=False) for r in rows],
        }
    )


@router.post(
    "/restatements/{restatement_id}/ack",
    response_model=s.RestatementLine,
    responses={409: {"model": s.Problem}},
)
def acknowledge(restatement_id: Id, body: ReasonBody, c: Admin, w: WebDep) -> Any:
    """Acknowledge a restatement (admin; audited). The closed value stays final."""
    with w.store.engine.begin() as conn:
        _restatement(conn, restatement_id)
        try:
            r = closing.acknowledge(conn, restatement_id, actor=c.name, reason=body.reason)
        except ConfigError as exc:
            raise ApiError(409, exc.message, exc.hint) from None
    return plain(closing.restatement_json(r, changes=False))


@router.post("/krs/{kr_id}/reopen", response_model=Close, responses={409: {"model": s.Problem}})
def reopen(kr_id: str, body: ReasonBody, c: Admin, w: WebDep) -> Any:
    """Reopen the KR's closed period (admin; audited): the next run recomputes it and closes it again."""
    with w.store.engine.begin() as conn:
        try:
            done = closing.reopen(conn, kr_id, actor=c.name, reason=body.reason)
        except NotFound as exc:
            raise ApiError(404, exc.message, exc.hint) from None
        except ConfigError as exc:
            raise ApiError(409, exc.message, exc.hint) from None
    return plain(closing.close_json(done))
