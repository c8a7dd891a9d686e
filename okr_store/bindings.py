"""Key results bound outside the project file (``okrsync kr add``, the web app's binding page).

The project file stays the metrics library (streams and metrics, reviewed in git); operations users
bind key results to its metrics, and those bindings live here. Each one keeps its current state in
``kr_binding`` and every state it ever had in ``kr_binding_version`` (append-only, with who, when and
why); each change is also an event of the hash-chained audit log (:mod:`okr_store.audit`), in the same
transaction. A retired binding stays, with its versions: its values and their drill-down are the
store's like any other KR's. What a binding *means* (its metric, pins, period) is checked one layer up
(:mod:`okrsync.binding`); this module only keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.audit import audit
from okr_store.records import utcnow
from okrsync.errors import ConfigError, NotFound

ACTIONS = ("kr.bind", "kr.edit", "kr.retire", "objective.add")
SHOWN = (
    "objective",
    "title",
    "metric",
    "dimensions",
    "period",
    "direction",
    "baseline",
    "target",
    "owner",
    "weight",
    "pace",
    "unit",
)


@dataclass(frozen=True)
class Binding:
    id: str
    objective_id: str
    spec: dict[str, Any]  # the key result as the project file writes it
    status: str  # active | retired
    version: int
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Version:
    version: int
    action: str
    objective_id: str
    spec: dict[str, Any]
    status: str
    actor: str
    at: datetime
    reason: str
    audit_hash: str


@dataclass(frozen=True)
class BoundObjective:
    id: str
    parent_id: str
    title: str
    owner: str | None


def _binding(r: Any) -> Binding:
    return Binding(
        r.id,
        r.objective_id,
        json.loads(r.spec),
        r.status,
        r.version,
        r.created_by,
        r.created_at,
        r.updated_by,
        r.updated_at,
    )


def _dump(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """``target: 100 → 120; owner: – → Ana`` (what an audit event says changed)."""

    def show(v: Any) -> str:
        return "–" if v is None else json.dumps(v, sort_keys=True, default=str).strip('"')

    if before is None:
        return "; ".join(f"{k}: {show(after[k])}" for k in SHOWN if after.get(k) is not None)
    return (
        "; ".join(
            f"{k}: {show(before.get(k))} → {show(after.get(k))}"
            for k in SHOWN
            if before.get(k) != after.get(k)
        )
        or "no change"
    )


def get(conn: sa.Connection, kr_id: str) -> Binding:
    row = conn.execute(sa.select(m.kr_binding).where(m.kr_binding.c.id == kr_id)).first()
    if row is None:
        raise NotFound(f"no bound key result {kr_id!r}", hint="`okrsync kr list` lists them")
    return _binding(row)


def find(conn: sa.Connection, kr_id: str) -> Binding | None:
    row = conn.execute(sa.select(m.kr_binding).where(m.kr_binding.c.id == kr_id)).first()
    return None if row is None else _binding(row)


def listed(conn: sa.Connection, *, retired: bool = True) -> list[Binding]:
    """Every binding (only the active ones without ``retired``), oldest first."""
    b = m.kr_binding.c
    q = sa.select(m.kr_binding).order_by(b.created_at, b.id)
    if not retired:
        q = q.where(b.status == "active")
    return [_binding(r) for r in conn.execute(q)]


def objectives(conn: sa.Connection) -> list[BoundObjective]:
    o = m.bound_objective.c
    rows = conn.execute(sa.select(m.bound_objective).order_by(o.created_at, o.id))
    return [BoundObjective(r.id, r.parent_id, r.title, r.owner) for r in rows]


def versions(conn: sa.Connection, kr_id: str) -> list[Version]:
    v = m.kr_binding_version.c
    rows = conn.execute(sa.select(m.kr_binding_version).where(v.binding_id == kr_id).order_by(v.version))
    return [
        Version(
            r.version,
            r.action,
            r.objective_id,
            json.loads(r.spec),
            r.status,
            r.actor,
            r.at,
            r.reason,
            r.audit_hash,
        )
        for r in rows
    ]


def _version(conn: sa.Connection, b: Binding, action: str, actor: str, reason: str, said: str) -> None:
    digest = audit(conn, actor=actor, action=action, reason=said, kr_id=b.id, target=b.id)
    conn.execute(
        m.kr_binding_version.insert().values(
            binding_id=b.id,
            version=b.version,
            action=action,
            objective_id=b.objective_id,
            spec=_dump(b.spec),
            status=b.status,
            actor=actor,
            at=b.updated_at,
            reason=reason,
            audit_hash=digest,
        )
    )


def add_objective(
    conn: sa.Connection, *, objective_id: str, parent_id: str, title: str, owner: str | None, actor: str
) -> BoundObjective:
    """A new objective under ``parent_id`` (audited); the caller checked that the id is free."""
    if conn.execute(sa.select(m.bound_objective.c.id).where(m.bound_objective.c.id == objective_id)).first():
        raise ConfigError(
            f"objective {objective_id!r} already exists (created for another binding)",
            hint="pick it as the objective, or choose another id",
        )
    conn.execute(
        m.bound_objective.insert().values(
            id=objective_id,
            parent_id=parent_id,
            title=title,
            owner=owner,
            created_by=actor,
            created_at=utcnow(),
        )
    )
    audit(
        conn, actor=actor, action="objective.add", target=objective_id, reason=f"under {parent_id}: {title}"
    )
    return BoundObjective(objective_id, parent_id, title, owner)


def bind(
    conn: sa.Connection, *, kr_id: str, objective_id: str, spec: Mapping[str, Any], actor: str, reason: str
) -> Binding:
    """Store a new binding (version 1) and audit it, in the caller's transaction."""
    if find(conn, kr_id) is not None:
        raise ConfigError(
            f"key result {kr_id!r} is already bound (possibly retired: ids are never reused)",
            hint="choose another id, or `okrsync kr edit` the existing one",
        )
    now = utcnow()
    b = Binding(kr_id, objective_id, dict(spec), "active", 1, actor, now, actor, now)
    conn.execute(
        m.kr_binding.insert().values(
            id=b.id,
            objective_id=objective_id,
            spec=_dump(spec),
            status="active",
            version=1,
            created_by=actor,
            created_at=now,
            updated_by=actor,
            updated_at=now,
        )
    )
    said = changes(None, {"objective": objective_id, **spec})
    _version(conn, b, "kr.bind", actor, reason, f"{reason} — {said}" if reason else said)
    return b


def edit(
    conn: sa.Connection, *, kr_id: str, objective_id: str, spec: Mapping[str, Any], actor: str, reason: str
) -> Binding:
    """A new version of an active binding (before/after in the audit event)."""
    old = get(conn, kr_id)
    if old.status != "active":
        raise ConfigError(
            f"key result {kr_id!r} is retired: its definition is kept as it was",
            hint="bind a new key result (with a new id) instead",
        )
    said = changes({"objective": old.objective_id, **old.spec}, {"objective": objective_id, **spec})
    new = Binding(
        kr_id,
        objective_id,
        dict(spec),
        "active",
        old.version + 1,
        old.created_by,
        old.created_at,
        actor,
        utcnow(),
    )
    _update(conn, new)
    _version(conn, new, "kr.edit", actor, reason, f"{reason} — {said}" if reason else said)
    return new


def retire(conn: sa.Connection, *, kr_id: str, actor: str, reason: str) -> Binding:
    """Stop computing the KR; it keeps its values, their drill-down and every version."""
    old = get(conn, kr_id)
    if old.status == "retired":
        raise ConfigError(f"key result {kr_id!r} is already retired")
    new = Binding(
        kr_id,
        old.objective_id,
        old.spec,
        "retired",
        old.version + 1,
        old.created_by,
        old.created_at,
        actor,
        utcnow(),
    )
    _update(conn, new)
    _version(conn, new, "kr.retire", actor, reason, reason or "retired")
    return new


def _update(conn: sa.Connection, b: Binding) -> None:
    conn.execute(
        m.kr_binding.update()
        .where(m.kr_binding.c.id == b.id)
        .values(
            objective_id=b.objective_id,
            spec=_dump(b.spec),
            status=b.status,
            version=b.version,
            updated_by=b.updated_by,
            updated_at=b.updated_at,
        )
    )
