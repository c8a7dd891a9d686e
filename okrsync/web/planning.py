"""The plan API behind the ``/plan`` page (docs/plan.md): what the project file's definitions would
change, and applying them with a reason, for roles with ``bind`` (editor, admin, owner).

Both routes read the project file as it is on disk at the request (the file an editor just changed,
not the one the server started with) and compute the plan with :mod:`okrsync.plan`, the CLI's own
comparison, role rules and apply: the same audit event (``definition.apply``, with the caller as
actor), the same restatement under the run lease. An apply names the definitions it was shown
(``definitions``: KR → new hash, from ``GET /api/plan``); if the file changed meanwhile it answers 409
and changes nothing, so what is registered is always what was reviewed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from okrsync import plan as planning
from okrsync import users
from okrsync.web.api import PROBLEMS, WebDep, plain
from okrsync.web.bindings import Binder
from okrsync.web.context import ApiError
from okrsync.web.schemas import Problem

router = APIRouter(prefix="/api/plan", tags=["plan"], responses={
    **PROBLEMS,
    409: {"model": Problem, "description": "Nothing to apply, or the project file changed since the plan"},
    503: {"model": Problem, "description": "The store or the run lease (restate) is not available"},
})
MAX_LIMIT = 500
HashText = Annotated[str, Field(max_length=128)]


class Part(BaseModel):
    """One part of a definition that differs (sensitive filter values and pins as •••)."""

    path: str
    registered: str
    new: str


class Evaluated(BaseModel):
    value: str | None  # None: no value (see reason), or withheld from this role (small group)
    reason: str | None
    records: int


class Kind(BaseModel):
    records: int
    delta: str


class Record(BaseModel):
    kind: Literal["entering", "leaving", "changed"]
    stream: str
    record_id: str
    before: str | None
    after: str | None
    delta: str
    fields: dict[str, Any]  # sensitive fields as the role may see them (••• unless `sensitive`)


class Past(BaseModel):
    value_id: int
    as_of: str
    stored: str | None
    new: str | None
    delta: str | None
    changes: bool
    definition: str | None
    restated_from: int | None


class Affected(BaseModel):
    kr: str
    changed: list[str]
    parts: list[Part]
    old_definition: str | None
    new_definition: str
    as_of: str
    snapshot: dict[str, int | None]
    before: Evaluated | None
    after: Evaluated | None
    delta: str | None
    summary: dict[str, Kind]
    records_moved: int
    records: list[Record]
    records_hidden: bool  # records move, and this role may not see them
    past_values: list[Past]
    restates: int  # the values a restatement would record (every past value not under the new definition)


class Same(BaseModel):
    kr: str
    changed: list[str]
    parts: list[Part]
    records_moved: int


class PlanOut(BaseModel):
    changes: bool
    affected: list[Affected]
    same_values: list[Same]
    new: list[str]
    retired: list[str]
    definitions: dict[str, str]  # KR → the new definition's hash, for every change: what an apply names
    restates: int  # the values a restatement would record, over every change (same values too)
    project_file: str


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000)
    restate: bool = False
    definitions: dict[Annotated[str, Field(max_length=100)], HashText] = Field(max_length=1000)


class Applied(BaseModel):
    applied: list[str]  # the KRs registered (each an audit event)
    restated: int  # past values restated
    actor: str


def _project(w: Any) -> Any:
    """The project file as it is on disk now (a bad one answers 400 with its problems)."""
    from okrsync.project import load_project

    return load_project(w.project.path)


def _parts(c: Any, hidden: set[str]) -> list[dict[str, str]]:
    return [{"path": p, "registered": planning.definition_text(c.old, p, hidden),
             "new": planning.definition_text(c.new, p, hidden)} for p in c.changed]


def _restates(c: Any) -> int:
    """As :func:`okrsync.plan.restatements` counts: past values the new definition can compute and
    that were not computed with it."""
    return sum(1 for x in c.past if x.new is not None and x.value.definition_hash != c.new.hash)


def plan_out(project: Any, role: Any, p: Any) -> dict[str, Any]:
    """The plan as ``role`` may see it, for the page (the CLI's JSON plus what the page draws)."""
    shown = planning.as_seen(project, role, p)
    body = planning.plan_json(shown)
    hidden = {f for fields in project.sensitive().values() for f in fields}
    changes = {c.kr_id: c for c in shown.changes}
    for kr in body["affected"]:
        c = changes[kr["kr"]]
        kr["parts"] = _parts(c, hidden)
        kr["records_hidden"] = bool(c.total_moved and not role.records)
        kr["restates"] = _restates(c)
    for kr in body["same_values"]:
        kr["parts"] = _parts(changes[kr["kr"]], hidden)
    body["definitions"] = {c.kr_id: c.new.hash for c in p.changes}
    body["restates"] = sum(_restates(c) for c in shown.changes)
    body["project_file"] = project.path.name
    return plain(body)  # type: ignore[no-any-return]


@router.get("", response_model=PlanOut)
def plan(
    c: Binder, w: WebDep, limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 20
) -> Any:
    """Per key result whose definition in the project file differs from the registered one: what
    changed, the value before and after on the same snapshot with the delta, the records entering and
    leaving (the ``limit`` largest moves), and the past values a restatement would change."""
    project = _project(w)
    return plan_out(project, c.role, planning.make_plan(project, w.store, users.utcnow(), limit=limit))


@router.post("/apply", response_model=Applied)
def apply(body: ApplyIn, c: Binder, w: WebDep) -> Any:
    """Register the project file's definitions with a reason (audited, the caller as actor); with
    ``restate``, also record every past value recomputed under them, marked restated."""
    reason = body.reason.strip()
    if not reason:
        raise ApiError(400, "a reason is required to apply a definition change",
                       "say why the definitions change: it is kept in the audit log")
    project = _project(w)
    p = planning.make_plan(project, w.store, users.utcnow(), limit=0)
    if not p.changes:
        raise ApiError(409, "nothing to apply: every key result's definition is the registered one",
                       "change a metric, filter or key result in the project file first")
    now = {c.kr_id: c.new.hash for c in p.changes}
    if now != body.definitions:
        raise ApiError(409, "the project file's definitions changed since this plan was shown",
                       "load the plan again, review it and apply that one")
    before, restated = planning.apply_plan(project, w.store, p, reason=reason, actor=c.name,
                                           restate=body.restate)
    return {"applied": sorted(before), "restated": restated, "actor": c.name}
