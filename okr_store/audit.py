"""The audit log: one append-only, hash-chained table of what people did — admins' decisions on checks
and every change of access (users, roles, passwords, API tokens, sign-ins), each with its actor, time,
target and source address. Each event's hash covers its content and its predecessor's hash, so an
edited or removed event breaks the chain (:func:`verify_audit_chain`)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.records import utcnow

GENESIS = "0" * 64
# The access events (okrsync.web, okrsync users); check decisions are "accept" and the like.
ACCESS_ACTIONS = (
    "user.add",
    "user.remove",
    "user.role",
    "user.password",
    "token.add",
    "token.revoke",
    "signin.ok",
    "signin.fail",
    "signin.throttled",
)
_CHAIN_LOCK = 0x6F6B7273_61756474  # PostgreSQL advisory lock key: "okrsaudt"


def _hold_chain(conn: sa.Connection) -> None:
    """Serialise appenders until this transaction ends, so two events never chain to one predecessor.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write (matching no row) takes the
    database's single write lock now, before the predecessor is read."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK)))
    else:
        conn.execute(m.audit_event.delete().where(sa.false()))


def _event_hash(
    prev: str,
    at: datetime,
    actor: str,
    action: str,
    check_id: int | None,
    kr_id: str | None,
    reason: str,
    target: str | None = None,
    address: str | None = None,
) -> str:
    fields: list[Any] = [prev, at.isoformat(), actor, action, check_id, kr_id, reason]
    if target is not None or address is not None:  # events from before 0009 hash as they did
        fields += [target, address]
    body = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def audit(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    reason: str,
    check_id: int | None = None,
    kr_id: str | None = None,
    target: str | None = None,
    address: str | None = None,
) -> str:
    """Append an event chained to the previous one (in the caller's transaction); returns its hash."""
    _hold_chain(conn)
    a = m.audit_event.c
    prev = conn.execute(sa.select(a.hash).order_by(a.id.desc()).limit(1)).scalar() or GENESIS
    at = utcnow()
    digest = _event_hash(prev, at, actor, action, check_id, kr_id, reason, target, address)
    conn.execute(
        m.audit_event.insert().values(
            at=at,
            actor=actor,
            action=action,
            check_id=check_id,
            kr_id=kr_id,
            reason=reason,
            target=target,
            address=address,
            prev_hash=prev,
            hash=digest,
        )
    )
    return digest


def audit_log(conn: sa.Connection, *, check_id: int | None = None, kr_id: str | None = None) -> list[Any]:
    """Events in order, those of one check or one KR when asked."""
    a = m.audit_event.c
    q = sa.select(m.audit_event).order_by(a.id)
    if check_id is not None:
        q = q.where(a.check_id == check_id)
    if kr_id is not None:
        q = q.where(a.kr_id == kr_id)
    return list(conn.execute(q))


def recent(
    conn: sa.Connection,
    *,
    limit: int = 100,
    before: int | None = None,
    access_only: bool = False,
    actor: str | None = None,
    target: str | None = None,
) -> list[Any]:
    """The newest events first (``before``: only those with a smaller id, for paging back)."""
    a = m.audit_event.c
    q = sa.select(m.audit_event).order_by(a.id.desc()).limit(limit)
    if before is not None:
        q = q.where(a.id < before)
    if access_only:
        q = q.where(a.action.in_(ACCESS_ACTIONS))
    if actor is not None:
        q = q.where(a.actor == actor)
    if target is not None:
        q = q.where(a.target == target)
    return list(conn.execute(q))


def verify_audit_chain(conn: sa.Connection) -> int | None:
    """The id of the first event whose hash does not follow from its content and predecessor, or None."""
    prev = GENESIS
    for e in conn.execute(sa.select(m.audit_event).order_by(m.audit_event.c.id)):
        expected = _event_hash(
            prev, e.at, e.actor, e.action, e.check_id, e.kr_id, e.reason, e.target, e.address
        )
        if e.prev_hash != prev or e.hash != expected:
            return int(e.id)
        prev = e.hash
    return None
