"""Which value of a key result is current, and what a back-fill run may change.

Every value is recorded for its run's as-of time. A KR's *current* value — what ``status``, the web
tree, ``drill`` and ``diff`` start from — is the one with the latest as-of (ties: the later computed).
A run for an earlier as-of than the store already holds (``okrsync run --as-of …``: a back-fill) adds
its values to the history, with their lineage, but never replaces a newer current value, and it
leaves the KRs' held flags alone: they describe the latest run, not the back-filled past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from okr_store import models as m


def as_of_order() -> tuple[sa.ColumnElement[Any], ...]:
    """History order: by as-of, then computed-at (then id, for values computed in the same instant)."""
    v = m.kr_value.c
    return (v.as_of, v.computed_at, v.id)


def newest_first() -> tuple[sa.ColumnElement[Any], ...]:
    """The reverse of :func:`as_of_order`: the current value first."""
    v = m.kr_value.c
    return (v.as_of.desc(), v.computed_at.desc(), v.id.desc())


def counted() -> sa.ColumnElement[bool]:
    """Values that take part in a KR's history: not those restating a closed period
    (:mod:`okr_store.closing`), which are listed as restatements instead."""
    return m.kr_value.c.restates.is_(None)


def is_backfill(conn: sa.Connection, run_id: str, as_of: datetime) -> bool:
    """Whether run ``run_id`` back-fills history: another run of this store is as of a later time."""
    r = m.run.c
    later = sa.select(r.id).where(r.id != run_id, r.as_of > as_of).limit(1)
    return conn.execute(later).first() is not None


def promote(conn: sa.Connection, kr_id: str, value_id: int, as_of: datetime) -> None:
    """Make ``value_id`` (computed now, as of ``as_of``) the KR's current value, unless the current
    one is as of a later time."""
    k, v = m.key_result.c, m.kr_value.c
    current_as_of = sa.select(v.as_of).where(v.id == k.last_value_id).scalar_subquery()
    conn.execute(
        m.key_result.update()
        .where(k.id == kr_id, sa.or_(current_as_of.is_(None), current_as_of <= as_of))
        .values(last_value_id=value_id)
    )


def promote_all(conn: sa.Connection, values: Sequence[tuple[str, int]], as_of: datetime) -> None:
    """:func:`promote` for many ``(kr_id, value_id)``, in order, as one executemany."""
    if not values:
        return
    k, v = m.key_result.c, m.kr_value.c
    current_as_of = sa.select(v.as_of).where(v.id == k.last_value_id).scalar_subquery()
    stmt = (
        m.key_result.update()
        .where(k.id == sa.bindparam("kr"), sa.or_(current_as_of.is_(None), current_as_of <= as_of))
        .values(last_value_id=sa.bindparam("vid"))
    )
    conn.execute(stmt, [{"kr": kr_id, "vid": value_id} for kr_id, value_id in values])


def values_as_of(conn: sa.Connection, kr_ids: Iterable[str], at: datetime) -> dict[str, Any]:
    """Each KR's value as of ``at`` (naive UTC): the latest as-of at or before it, ties to the later
    computed. KRs without such a value are missing from the result."""
    v = m.kr_value.c
    rank = sa.func.row_number().over(partition_by=v.kr_id, order_by=newest_first()).label("rank")
    ranked = sa.select(m.kr_value, rank).where(v.kr_id.in_(list(kr_ids)), v.as_of <= at, counted()).subquery()
    return {r.kr_id: r for r in conn.execute(sa.select(ranked).where(ranked.c.rank == 1))}
