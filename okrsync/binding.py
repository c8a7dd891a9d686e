"""Binding key results to the metrics library without editing the project file (issue 16).

A user whose role has ``bind`` picks an objective (or creates one under an existing objective), a
metric of the project file, pinned dimension values from those that occur in the store, a period,
direction, baseline and target. Before saving, :func:`preview` shows the value now with its progress
and status, the records contributing most (role rules apply) and the whole history, back-filled as of
every past run the store holds (:mod:`okr_store.history`, one query per stream) with the expected pace.
:func:`save` stores the binding (:mod:`okr_store.bindings`, audited) and registers it: runs compute it
alongside the project file's KRs (:func:`okrsync.project_bindings.with_bindings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import yaml

from metrics.definition import KrDefinition
from metrics.score import score
from okr_store import bindings, history, lineage
from okr_store.store import Store
from okrsync.access import NotAllowed
from okrsync.errors import ConfigError
from okrsync.pii import reveal
from okrsync.project_bindings import (
    check_binding,
    kr_definitions,
    okr_rows,
    pinnable,
    stored_bindings,
    with_bindings,
)
from okrsync.small_groups import small_groups

FIELDS = (
    "title",
    "metric",
    "target",
    "baseline",
    "direction",
    "period",
    "owner",
    "weight",
    "dimensions",
    "pace",
    "unit",
)
MAX_VALUES = 200  # dimension values offered per dimension


@dataclass(frozen=True)
class NewObjective:
    id: str
    title: str
    parent_id: str
    owner: str | None = None


@dataclass(frozen=True)
class Request:
    """A key result to bind (or preview): its id, objective and fields in project-file form."""

    kr_id: str
    objective_id: str
    spec: dict[str, Any]
    new_objective: NewObjective | None = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def clean_spec(self) -> dict[str, Any]:
        """The fields as stored: set ones only, numbers as exact text."""
        out = {}
        for k in FIELDS:
            v = self.spec.get(k)
            if v is None or v == {}:
                continue
            out[k] = str(v) if isinstance(v, Decimal | float | int) and not isinstance(v, bool) else v
        return out


def require_bind(role_name: str, role: Any) -> None:
    if not getattr(role, "bind", False):
        raise NotAllowed(
            f"your role ({role_name}) may not bind key results",
            hint="ask an admin for a role with `bind: true` (e.g. editor)",
        )


def _objectives(store: Store, req: Request | None = None) -> list[Any]:
    with store.engine.connect() as conn:
        found = bindings.objectives(conn)
    if req is not None and req.new_objective is not None:
        n = req.new_objective
        found.append(bindings.BoundObjective(n.id, n.parent_id, n.title, n.owner))
    return found


def _with(project: Any, store: Store, req: Request) -> tuple[Any, Any]:
    """(the project with every active binding and this request, the request's bound KR)."""
    objectives = _objectives(store, req)
    if req.new_objective is not None:
        n = req.new_objective
        known = {o.id for o in objectives[:-1]} | set(_file_objectives(project))
        if n.id in known:
            raise ConfigError(f"objective {n.id!r} already exists", hint="pick it, or choose another id")
        if n.parent_id not in known:
            raise ConfigError(
                f"no parent objective {n.parent_id!r}", hint=f"objectives: {', '.join(sorted(known))}"
            )
    check_binding(project, req.kr_id, req.objective_id, req.clean_spec(), objectives)
    with store.engine.connect() as conn:
        others = [b for b in bindings.listed(conn, retired=False) if b.id != req.kr_id]
    now = datetime.now()
    mine = bindings.Binding(req.kr_id, req.objective_id, req.clean_spec(), "active", 0, "", now, "", now)
    merged = with_bindings(project, [*others, mine], objectives)
    return merged, merged.key_result(req.kr_id)


def _file_objectives(project: Any) -> list[str]:
    from okrsync.project_bindings import objective_ids

    return objective_ids(project.objectives)


def definition(project: Any, store: Store, req: Request) -> tuple[Any, Any, KrDefinition]:
    merged, bound = _with(project, store, req)
    return merged, bound, kr_definitions(merged)[req.kr_id]


def _score(project: Any, bound: Any, value: Decimal | None, as_of: datetime) -> Any:
    s = project.settings
    return score(
        value,
        baseline=bound.spec.baseline,
        target=bound.spec.target,
        period=bound.period,
        as_of=as_of,
        pace=bound.spec.pace,
        at_risk_gap=Decimal(s.at_risk_gap),
        off_track_gap=Decimal(s.off_track_gap),
    )


def _pace(bound: Any, expected: Decimal) -> Decimal:
    return bound.spec.baseline + expected * (bound.spec.target - bound.spec.baseline)


def backfill(project: Any, store: Store, req: Request) -> list[dict[str, Any]]:
    """The KR's value as of every past run the store holds (what those runs would have recorded)."""
    merged, bound, d = definition(project, store, req)
    with store.engine.connect() as conn:
        points = history.past_points(conn, d.streams)
    return _history(merged, bound, points, history.series(store, d, points))


def _history(merged: Any, bound: Any, points: list[history.Point], values: list[Any]) -> list[dict[str, Any]]:
    out = []
    for p, e in zip(points, values, strict=True):
        sc = _score(merged, bound, e.value, p.as_of)
        out.append(
            {
                "as_of": p.as_of,
                "run_id": p.run_id,
                "value": e.value,
                "reason": e.reason,
                "records": e.records,
                "progress": sc.progress,
                "expected": sc.expected,
                "status": sc.status,
                "pace_value": _pace(bound, sc.expected),
                "snapshot": p.snapshot,
            }
        )
    return out


def preview(
    project: Any, store: Store, req: Request, role: Any, *, now: datetime, top: int = 10
) -> dict[str, Any]:
    """What the KR would show if saved: the value now (progress, status), the records contributing most
    and its back-filled history with the pace line — as ``role`` may see them."""
    merged, bound, d = definition(project, store, req)
    snapshot = store.snapshot(d.streams)
    if any(v is None for v in snapshot.values()):
        missing = next(s for s, v in snapshot.items() if v is None)
        raise ConfigError(
            f"stream {missing!r} has never synced: there is nothing to preview yet",
            hint="run `okrsync run` first",
        )
    with store.engine.connect() as conn:
        past = history.past_points(conn, d.streams)
    # the value now and at every past run, in one pass over the record versions where the KR allows
    current = history.Point("", now, {s: int(v) for s, v in snapshot.items() if v is not None})
    values, e = history.series_and_now(store, d, past, current)
    sc = _score(merged, bound, e.value, now)
    seen = small_groups(merged, role)
    withheld = seen.hides(_Stored(e.records, snapshot))  # type: ignore[arg-type]  # duck-typed
    records: list[dict[str, Any]] = []
    if role.records and not withheld:
        hidden = merged.sensitive()
        vault = merged.vault() if role.sensitive and hidden else None
        for r in lineage.top_records(store, d, snapshot, now, top):
            records.append(
                {
                    "stream": r.stream,
                    "record_id": r.record_id,
                    "contribution": r.contribution,
                    "denominator_contribution": r.denominator_contribution,
                    "role": r.role,
                    "fields": reveal(r.fields, hidden.get(r.stream, ()), vault),
                }
            )
    points = [] if withheld else _history(merged, bound, past, values)
    points = [
        p
        if not seen.hides(_Stored(p["records"], p["snapshot"]))  # type: ignore[arg-type]
        else {
            **p,
            "value": None,
            "reason": seen.label,
            "records": 0,
            "progress": None,
            "status": "suppressed",
        }
        for p in points
    ]
    return {
        "kr_id": req.kr_id,
        "as_of": now,
        "value": None if withheld else e.value,
        "reason": seen.label if withheld else e.reason,
        "records": 0 if withheld else e.records,
        "progress": None if withheld else sc.progress,
        "expected": sc.expected,
        "status": "suppressed" if withheld else sc.status,
        "pace_value": _pace(bound, sc.expected),
        "unit": bound.spec.unit or merged.metrics[bound.spec.metric].unit,
        "top_records": records,
        "history": [{k: v for k, v in p.items() if k != "snapshot"} for p in points],
    }


@dataclass(frozen=True)
class _Stored:
    """What small_groups judges of a value: its record count and the streams it read."""

    records: int
    snapshot: dict[str, Any]


def baseline_at_start(project: Any, store: Store, req: Request) -> Decimal | None:
    """The KR's value at its period's start, as the store held it then (the last past run as of the
    start or earlier gives the snapshot)."""
    _, bound, d = definition(project, store, req)
    start = bound.period.start_utc()
    with store.engine.connect() as conn:
        points = [p for p in history.past_points(conn, d.streams) if p.as_of <= start]
    if not points:
        raise ConfigError(
            f"the store holds no run as of {bound.period.label}'s start ({start:%Y-%m-%d %H:%M} "
            "UTC) or earlier: there is no value at the period start",
            hint="give the baseline as a number (--baseline)",
        )
    p = history.Point(points[-1].run_id, start, points[-1].snapshot)
    (e,) = history.series(store, d, [p])
    return e.value


def dimension_values(
    project: Any, store: Store, metric: str, limit: int = MAX_VALUES
) -> dict[str, list[Any]]:
    """The values each pinnable dimension of ``metric`` takes in the store now (sensitive fields are
    never offered), at most ``limit`` each, in order."""
    dims = pinnable(project, metric)
    streams = sorted(project.streams_of(metric))
    snapshot = store.snapshot(streams)
    out: dict[str, list[Any]] = {}
    with store.engine.connect() as conn:
        for dim in dims:
            values: set[Any] = set()
            for stream in streams:
                found = store.view(stream, snapshot[stream])
                if found is None or dim not in found[0].c:
                    continue
                col = found[0].c[dim]
                q = sa.select(col).where(col.is_not(None)).distinct().order_by(col).limit(limit)
                values |= {r[0] for r in conn.execute(q)}
            out[dim] = sorted(values, key=str)[:limit]
    return out


def _register(project: Any, store: Store) -> None:
    """Put the tree with every active binding in the store now (the tree shows it before a run)."""
    with store.engine.connect() as conn:
        merged = stored_bindings(project, conn)
    store.register_okrs(*okr_rows(merged))


def save(project: Any, store: Store, req: Request, actor: str) -> bindings.Binding:
    """Store a new binding (and its new objective), audited, and register it."""
    _with(project, store, req)  # every check, before anything is written
    with store.engine.begin() as conn:
        if req.new_objective is not None:
            n = req.new_objective
            bindings.add_objective(
                conn, objective_id=n.id, parent_id=n.parent_id, title=n.title, owner=n.owner, actor=actor
            )
        b = bindings.bind(
            conn,
            kr_id=req.kr_id,
            objective_id=req.objective_id,
            spec=req.clean_spec(),
            actor=actor,
            reason=req.reason,
        )
    _register(project, store)
    return b


def resolve_start(project: Any, store: Store, req: Request) -> Request:
    """``baseline: start`` made a number: the KR's value at its period start (:func:`baseline_at_start`);
    any other baseline as it is."""
    if str(req.spec.get("baseline", "")).lower() != "start":
        return req
    try:  # any baseline the direction allows: the value at the start does not depend on it
        step = Decimal(-1 if req.spec.get("direction", "increase") == "increase" else 1)
        probe = replace(req, spec={**req.spec, "baseline": Decimal(str(req.spec.get("target"))) + step})
    except ArithmeticError:
        raise ConfigError(
            f"key result {req.kr_id!r}: a baseline at the period start needs a numeric target",
            hint="give the target as a number, e.g. 1400000",
        ) from None
    value = baseline_at_start(project, store, probe)
    if value is None:
        raise ConfigError(
            f"key result {req.kr_id!r} has no value at its period start", hint="give the baseline as a number"
        )
    return replace(req, spec={**req.spec, "baseline": str(value)})


def edited(project: Any, store: Store, req: Request) -> tuple[bindings.Binding, Request]:
    """(the binding as stored, its next version): the stored fields with ``req``'s over them. Pins,
    when given, replace the stored ones (``{}`` clears them); ``baseline: start`` is resolved."""
    with store.engine.connect() as conn:
        old = bindings.get(conn, req.kr_id)
    if old.status != "active":
        raise ConfigError(
            f"key result {req.kr_id!r} is retired: its definition is kept as it was",
            hint="bind a new key result (with a new id) instead",
        )
    spec = {**old.spec, **req.clean_spec()}
    if "dimensions" in req.spec and not req.spec["dimensions"]:
        spec.pop("dimensions", None)
    new = Request(req.kr_id, req.objective_id or old.objective_id, spec, None, req.reason)
    return old, resolve_start(project, store, new)


def preview_edit(
    project: Any, store: Store, req: Request, role: Any, *, now: datetime
) -> dict[str, Any]:
    """:func:`preview` of a binding's next version, with what would change (as the audit will say it)."""
    old, new = edited(project, store, req)
    before = {"objective": old.objective_id, **old.spec}
    after = {"objective": new.objective_id, **new.clean_spec()}
    return {**preview(project, store, new, role, now=now), "changes": bindings.changes(before, after)}


def edit(project: Any, store: Store, req: Request, actor: str) -> bindings.Binding:
    """A new version of a binding (before/after audited); past values keep the definition they had."""
    _, req = edited(project, store, req)
    _with(project, store, req)
    with store.engine.begin() as conn:
        b = bindings.edit(
            conn,
            kr_id=req.kr_id,
            objective_id=req.objective_id,
            spec=req.clean_spec(),
            actor=actor,
            reason=req.reason,
        )
    _register(project, store)
    return b


def retire(project: Any, store: Store, kr_id: str, actor: str, reason: str) -> bindings.Binding:
    """Stop computing a bound KR; its values, drill-down and versions stay."""
    with store.engine.begin() as conn:
        b = bindings.retire(conn, kr_id=kr_id, actor=actor, reason=reason)
    _register(project, store)
    return b


def export_yaml(project: Any, store: Store) -> str:
    """The active bindings as a project-file fragment: the objectives they hang under (those of the
    project file by id and title only) with their key results, ready to paste into ``okrsync.yaml``."""
    with store.engine.connect() as conn:
        active = bindings.listed(conn, retired=False)
        created = bindings.objectives(conn)
    by_objective: dict[str, list[dict[str, Any]]] = {}
    for b in active:
        by_objective.setdefault(b.objective_id, []).append({"id": b.id, **b.spec})
    titles = _titles(project.objectives)
    tree: list[dict[str, Any]] = []
    for oid in by_objective:
        if oid in titles:
            tree.append({"id": oid, "title": titles[oid], "key_results": by_objective[oid]})
    for o in created:
        tree.append(
            {
                "id": o.id,
                "title": o.title,
                "parent": o.parent_id,
                **({"owner": o.owner} if o.owner else {}),
                "key_results": by_objective.get(o.id, []),
            }
        )
    head = (
        "# Key results bound in the store (okrsync kr export). Objectives of the project file appear\n"
        "# by id and title: merge their key_results into the file's; `parent` names where a created\n"
        "# objective goes (nest it under that objective's `objectives:`).\n"
    )
    return head + yaml.safe_dump({"objectives": tree}, sort_keys=False, allow_unicode=True)


def _titles(objectives: Any) -> dict[str, str]:
    out = {}
    for o in objectives:
        out[o.id] = o.title
        out.update(_titles(o.objectives))
    return out
