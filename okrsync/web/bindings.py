"""The binding API (docs/binding.md): roles with ``bind`` preview, bind, edit, retire and export key
results on the project's metrics; anyone signed in lists them. Errors in a binding answer 400 with
what to change; a role without ``bind`` gets 403."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from okr_store import bindings as stored
from okrsync import binding, users
from okrsync.web.api import PROBLEMS, WebDep, plain
from okrsync.web.auth import Caller, Viewer, _caller
from okrsync.web.context import ApiError

router = APIRouter(prefix="/api/bindings", responses=PROBLEMS, tags=["bindings"])
KrId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]
Text = Annotated[str, Field(max_length=1000)]
Number = Annotated[Decimal, Field(max_digits=38, decimal_places=12, allow_inf_nan=False)]


def binder(c: Annotated[Caller, Depends(_caller)]) -> Caller:
    """Roles that may bind key results (``bind: true``, e.g. editor)."""
    if not getattr(c.role, "bind", False):
        raise ApiError(
            403,
            f"your role ({c.role_name}) may not bind key results",
            "ask an admin for a role with bind (e.g. editor)",
        )
    return c


Binder = Annotated[Caller, Depends(binder)]


class NewObjective(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)
    title: Text
    parent_id: str = Field(max_length=100)
    owner: Text | None = None


class BindingIn(BaseModel):
    """A key result to preview or bind, in the project file's terms."""

    model_config = ConfigDict(extra="forbid")
    kr_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)
    objective_id: str = Field(max_length=100)
    title: Text
    metric: str = Field(max_length=200)
    target: Number
    baseline: Number | Literal["start"] = Decimal(0)
    direction: Literal["increase", "decrease"] = "increase"
    period: str | None = Field(default=None, max_length=64)
    owner: Text | None = None
    dimensions: dict[Annotated[str, Field(max_length=200)], Annotated[str, Field(max_length=1000)]] = {}
    new_objective: NewObjective | None = None
    reason: Text = ""

    def request(self, w: Any) -> binding.Request:
        spec = self.model_dump(
            include={"title", "metric", "target", "baseline", "direction", "period", "owner", "dimensions"},
            exclude_none=True,
        )
        n = self.new_objective
        new = None if n is None else binding.NewObjective(n.id, n.title, n.parent_id, n.owner)
        req = binding.Request(self.kr_id, self.objective_id, spec, new, self.reason)
        return binding.resolve_start(w.project, w.store, req)


class BindingEdit(BaseModel):
    """The fields to change (others stay); ``dimensions`` replace the pins (``{}`` clears them)."""

    model_config = ConfigDict(extra="forbid")
    objective_id: str | None = Field(default=None, max_length=100)
    title: Text | None = None
    metric: str | None = Field(default=None, max_length=200)
    target: Number | None = None
    baseline: Number | Literal["start"] | None = None
    direction: Literal["increase", "decrease"] | None = None
    period: str | None = Field(default=None, max_length=64)
    owner: Text | None = None
    dimensions: (
        dict[Annotated[str, Field(max_length=200)], Annotated[str, Field(max_length=1000)]] | None
    ) = None
    reason: Text = ""

    def request(self, kr_id: str) -> binding.Request:
        spec = self.model_dump(exclude={"objective_id", "reason"}, exclude_none=True)
        return binding.Request(kr_id, self.objective_id or "", spec, None, self.reason)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = ""


class BindingOut(BaseModel):
    id: str
    objective_id: str
    status: str
    version: int
    spec: dict[str, Any]  # the key result in the project file's terms (numbers as exact text)
    updated_by: str
    updated_at: str


class Bindings(BaseModel):
    bindings: list[BindingOut]


class LibraryMetric(BaseModel):
    name: str
    description: str | None
    unit: str | None
    dimensions: dict[str, list[Any]]  # pinnable dimension → the values that occur


class Library(BaseModel):
    metrics: list[LibraryMetric]
    objectives: list[str]


class HistoryPoint(BaseModel):
    as_of: str
    run_id: str
    value: str | None
    reason: str | None
    records: int
    progress: str | None
    expected: str
    status: str
    pace_value: str


class TopRecord(BaseModel):
    stream: str
    record_id: str
    contribution: str
    denominator_contribution: str | None
    role: str
    fields: dict[str, Any]  # sensitive fields as the role may see them (••• unless `sensitive`)


class Preview(BaseModel):
    kr_id: str
    as_of: str
    value: str | None
    reason: str | None
    records: int
    progress: str | None
    expected: str
    status: str
    pace_value: str
    unit: str | None
    top_records: list[TopRecord]
    history: list[HistoryPoint]


class EditPreview(Preview):
    changes: str  # what saving would change, as the audit log will say it: `target: 100 → 120`


class Exported(BaseModel):
    yaml: str


class VersionOut(BaseModel):
    version: int
    action: str  # kr.bind | kr.edit | kr.retire
    objective_id: str
    status: str
    actor: str
    at: str
    reason: str
    changes: str  # against the version before: `target: 100 → 120` (the audit event says the same)


class BindingDetail(BindingOut):
    versions: list[VersionOut]


def _row(b: stored.Binding) -> dict[str, Any]:
    return plain(
        {
            "id": b.id,
            "objective_id": b.objective_id,
            "status": b.status,
            "version": b.version,
            "spec": b.spec,
            "updated_by": b.updated_by,
            "updated_at": b.updated_at,
        }
    )


@router.get("", response_model=Bindings)
def listed(c: Viewer, w: WebDep) -> Any:
    """Every bound key result (retired ones too)."""
    with w.store.engine.connect() as conn:
        return {"bindings": [_row(b) for b in stored.listed(conn)]}


@router.get("/library", response_model=Library)
def library(c: Binder, w: WebDep) -> Any:
    """The metrics to bind to, with description, unit and the dimensions a KR may pin (with the values
    that occur; sensitive fields are never offered), and the objectives to bind under."""
    from okrsync.project_bindings import objective_ids

    metrics = []
    for name, m in w.project.metrics.items():
        metrics.append(
            {
                "name": name,
                "description": m.description,
                "unit": m.unit,
                "dimensions": plain(binding.dimension_values(w.project, w.store, name)),
            }
        )
    with w.store.engine.connect() as conn:
        created = [o.id for o in stored.objectives(conn)]
    return {"metrics": metrics, "objectives": objective_ids(w.project.objectives) + created}


@router.post("/preview", response_model=Preview)
def preview(body: BindingIn, c: Binder, w: WebDep) -> Any:
    """Value now, progress, status, top records (role rules apply) and the back-filled history."""
    return plain(binding.preview(w.project, w.store, body.request(w), c.role, now=users.utcnow()))


@router.post("", status_code=201, response_model=BindingOut)
def bind(body: BindingIn, c: Binder, w: WebDep) -> Any:
    """Bind (audited, with the caller as actor); runs compute it from now on."""
    return _row(binding.save(w.project, w.store, body.request(w), c.name))


@router.post("/{kr_id}/preview", response_model=EditPreview)
def preview_edit(kr_id: KrId, body: BindingEdit, c: Binder, w: WebDep) -> Any:
    """What the edited key result would show, and what saving would change."""
    req = body.request(kr_id)
    return plain(binding.preview_edit(w.project, w.store, req, c.role, now=users.utcnow()))


@router.patch("/{kr_id}", response_model=BindingOut)
def edit(kr_id: KrId, body: BindingEdit, c: Binder, w: WebDep) -> Any:
    """A new version (before and after go to the audit log); values computed before keep theirs."""
    return _row(binding.edit(w.project, w.store, body.request(kr_id), c.name))


@router.post("/{kr_id}/retire", response_model=BindingOut)
def retire(kr_id: KrId, body: Reason, c: Binder, w: WebDep) -> Any:
    return _row(binding.retire(w.project, w.store, kr_id, c.name, body.reason))


@router.get("/export", response_model=Exported)
def export(c: Viewer, w: WebDep) -> Any:
    """The active bindings as YAML in the project file's format."""
    return {"yaml": binding.export_yaml(w.project, w.store)}


# What the YAML document holds (a YAML-aware client, schemathesis included, parses it before checking).
_EXPORT_SCHEMA = {
    "type": "object",
    "required": ["objectives"],
    "properties": {"objectives": {"type": "array", "items": {"type": "object"}}},
}


@router.get(
    "/export.yaml",
    response_class=Response,
    responses={200: {"description": "YAML: a project-file fragment (``objectives:`` and their key results)",
                     "content": {"application/yaml": {"schema": _EXPORT_SCHEMA}}}},
)
def export_file(c: Viewer, w: WebDep) -> Response:
    """The same YAML as a file to download (``bound.yaml``), as ``okrsync kr export`` writes it."""
    return Response(
        binding.export_yaml(w.project, w.store),
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="bound.yaml"'},
    )


@router.get("/{kr_id}", response_model=BindingDetail)
def detail(kr_id: KrId, c: Viewer, w: WebDep) -> Any:
    """One bound key result with every version it had: who, when, why and what changed."""
    with w.store.engine.connect() as conn:
        b = stored.get(conn, kr_id)
        kept = stored.versions(conn, kr_id)
    versions, before = [], None
    for v in kept:
        after = {"objective": v.objective_id, **v.spec}
        said = stored.changes(before, after) if v.action != "kr.retire" else "retired"
        versions.append(
            {
                "version": v.version,
                "action": v.action,
                "objective_id": v.objective_id,
                "status": v.status,
                "actor": v.actor,
                "at": v.at,
                "reason": v.reason,
                "changes": said,
            }
        )
        before = after
    return plain({**_row(b), "versions": versions})
