"""Check results (what each data-quality check found, with a masked sample of failing rows) and the
decisions admins took on them (their audit events live in :mod:`okr_store.audit`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.audit import GENESIS, audit, audit_log, verify_audit_chain  # noqa: F401 (their old home)
from okr_store.records import utcnow
from okrsync.errors import NotFound

if TYPE_CHECKING:
    from metrics.quality import Outcome  # pydantic models: built where checks run, never for `status`


def _json(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def status_of(o: Outcome) -> str:
    if o.success:
        return "passed"
    return "blocked" if o.blocking else "warned"


def record_outcomes(
    conn: sa.Connection,
    run_id: str,
    outcomes: Sequence[Outcome],
    *,
    stream: str | None = None,
    sync_id: int | None = None,
    kr_id: str | None = None,
    held_krs: Sequence[str] = (),
    samples: dict[str, list[dict[str, Any]]] | None = None,
    proposed_value: Decimal | None = None,
) -> list[int]:
    """Store one row per outcome. ``samples`` maps a check label to its masked failing rows."""
    ids = []
    now = utcnow()
    for o in outcomes:
        status = status_of(o)
        row = dict(
            run_id=run_id,
            sync_id=sync_id,
            stream=stream,
            kr_id=kr_id,
            kind=o.check.kind,
            label=o.check.label,
            spec=_json(o.check.model_dump(mode="json")),
            severity=o.check.severity,
            status=status,
            element_count=o.element_count,
            unexpected_count=o.unexpected_count,
            observed=o.observed,
            sample=json.dumps((samples or {}).get(o.check.label, []), default=str),  # fields in source order
            result=_json(o.result),
            held_krs=_json(list(held_krs) if status == "blocked" else []),
            proposed_value=None if proposed_value is None or o.success else str(proposed_value),
            created_at=now,
        )
        ids.append(int(conn.execute(m.check_result.insert().values(**row)).inserted_primary_key[0]))  # type: ignore[index]
    return ids


@dataclass(frozen=True)
class CheckRow:
    id: int
    run_id: str
    sync_id: int | None
    stream: str | None
    kr_id: str | None
    kind: str
    label: str
    spec: dict[str, Any]
    severity: str
    status: str
    element_count: int
    unexpected_count: int
    observed: str | None
    sample: list[dict[str, Any]]
    result: dict[str, Any]
    held_krs: list[str]
    proposed_value: Decimal | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None

    @classmethod
    def of(cls, r: Any) -> CheckRow:
        return cls(
            r.id,
            r.run_id,
            r.sync_id,
            r.stream,
            r.kr_id,
            r.kind,
            r.label,
            json.loads(r.spec),
            r.severity,
            r.status,
            r.element_count,
            r.unexpected_count,
            r.observed,
            json.loads(r.sample),
            json.loads(r.result),
            json.loads(r.held_krs),
            None if r.proposed_value is None else Decimal(r.proposed_value),
            r.created_at,
            r.resolved_at,
            r.resolved_by,
        )


def list_checks(
    conn: sa.Connection, *, failed: bool = False, since: datetime | None = None, limit: int = 200
) -> list[CheckRow]:
    c = m.check_result.c
    q = sa.select(m.check_result).order_by(c.id.desc()).limit(limit)
    if failed:
        q = q.where(c.status.in_(["blocked", "warned", "accepted", "superseded"]))
    if since is not None:
        q = q.where(c.created_at >= since)
    return [CheckRow.of(r) for r in conn.execute(q)]


def get_check(conn: sa.Connection, check_id: int) -> CheckRow:
    row = conn.execute(sa.select(m.check_result).where(m.check_result.c.id == check_id)).first()
    if row is None:
        raise NotFound(f"no check result #{check_id}", hint="`okrsync checks --failed` lists them")
    return CheckRow.of(row)


def blocked_of_sync(conn: sa.Connection, sync_id: int) -> list[int]:
    c = m.check_result.c
    return list(conn.execute(sa.select(c.id).where(c.sync_id == sync_id, c.status == "blocked")).scalars())


def resolve(conn: sa.Connection, ids: Iterable[int], status: str, by: str | None) -> None:
    ids = list(ids)
    if ids:
        conn.execute(
            m.check_result.update()
            .where(m.check_result.c.id.in_(ids))
            .values(status=status, resolved_at=utcnow(), resolved_by=by)
        )


def supersede_blocked(conn: sa.Connection, stream: str, before_sync: int) -> list[int]:
    """Blocked checks of earlier syncs of ``stream`` no longer apply once a new sync starts."""
    c = m.check_result.c
    ids = list(
        conn.execute(
            sa.select(c.id).where(c.stream == stream, c.status == "blocked", c.sync_id < before_sync)
        ).scalars()
    )
    resolve(conn, ids, "superseded", f"sync {before_sync}")
    return ids


def decisions_for_kr(conn: sa.Connection, kr_id: str) -> list[dict[str, Any]]:
    """Admin decisions that affected a KR: on its own checks, or on checks that held it."""
    a, c = m.audit_event.c, m.check_result.c
    q = (
        sa.select(m.audit_event, c.label, c.held_krs, c.kr_id.label("check_kr"))
        .join(m.check_result, c.id == a.check_id)
        .order_by(a.id)
    )
    out = []
    for e in conn.execute(q):
        if e.kr_id == kr_id or e.check_kr == kr_id or kr_id in json.loads(e.held_krs):
            out.append(
                {
                    "at": e.at,
                    "actor": e.actor,
                    "action": e.action,
                    "check_id": e.check_id,
                    "check": e.label,
                    "reason": e.reason,
                }
            )
    return out


def accepted_difference(conn: sa.Connection, label: str, fingerprint: str) -> int | None:
    """The accepted check of reconciliation ``label`` that found this same difference (its id), if any:
    an accepted difference stays accepted while it stays the same."""
    c = m.check_result.c
    q = (sa.select(c.id, c.result).where(c.kind == "reconcile", c.label == label, c.status == "accepted")
         .order_by(c.id.desc()).limit(50))
    for r in conn.execute(q):
        if json.loads(r.result).get("fingerprint") == fingerprint:
            return int(r.id)
    return None


def supersede_label(conn: sa.Connection, kind: str, label: str, before_id: int) -> list[int]:
    """Blocked results of an earlier run of the same check (``kind``, ``label``) no longer apply."""
    c = m.check_result.c
    ids = list(conn.execute(sa.select(c.id).where(
        c.kind == kind, c.label == label, c.status == "blocked", c.id < before_id)).scalars())
    resolve(conn, ids, "superseded", f"check #{before_id}")
    return ids
