"""Restatements: what moved a closed period's value, recorded once per restated value.

A run that computes a different value for a closed period records it with ``kr_value.restates`` (see
:mod:`okr_store.closing`). :func:`restate_pending` then gives each such value its restatement: a diff
(:func:`okr_store.lineage.diff`) of the closed value against it, kept as the records that moved it —
stream, record id, kind, contributions before and after, why, and the *names* of the fields that
changed (never their values: the list is PII-free). It runs after every compute and picks up any value
a crashed run left without its restatement; a restatement is written once per value (unique).
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa

from okr_store import lineage, queries
from okr_store import models as m
from okr_store.lease import Fence
from okr_store.records import utcnow
from okr_store.store import Store

log = logging.getLogger("okrsync.closing")
MAX_CHANGES = 10_000  # records kept per restatement (total_changes counts them all)


def _text(x: object) -> str | None:
    return None if x is None else str(x)


def restate_pending(store: Store, fence: Fence | None = None) -> list[int]:
    """Write the restatement of every restated value that has none yet; returns their ids."""
    v, r, c = m.kr_value.c, m.kr_restatement.c, m.kr_close.c
    missing = (
        sa.select(m.kr_value, c.value_id.label("closed_value_id"))
        .join(m.kr_close, c.id == v.restates)
        .where(v.restates.is_not(None), ~sa.exists().where(r.value_id == v.id))
        .order_by(v.id)
    )
    with store.engine.connect() as conn:
        rows = list(conn.execute(missing))
        closed = {row.closed_value_id: queries.value_by_id(conn, row.closed_value_id) for row in rows}
    made: list[int] = []
    for row in rows:
        before, after = closed[row.closed_value_id], queries.StoredValue.of(row)
        d = lineage.diff(store, before, after, limit=MAX_CHANGES)
        changes = [
            {
                "stream": ch.stream,
                "record_id": ch.record_id,
                "kind": ch.kind,
                "before": _text(ch.before),
                "after": _text(ch.after),
                "delta": str(ch.delta),
                "why": ch.why,
                "fields": sorted(ch.field_changes),
            }
            for ch in d.changes
        ]
        try:
            with store.engine.begin() as conn:
                if fence is not None:
                    fence.check(conn)
                if conn.execute(sa.select(r.id).where(r.value_id == after.id)).first() is not None:
                    continue  # another run wrote it meanwhile
                made.append(
                    int(
                        conn.execute(  # type: ignore[index]
                            m.kr_restatement.insert().values(
                                close_id=row.restates,
                                kr_id=after.kr_id,
                                value_id=after.id,
                                closed_value_id=before.id,
                                value=_text(after.value),
                                closed_value=_text(before.value),
                                changes=json.dumps(changes, sort_keys=True),
                                total_changes=d.total_changes,
                                as_of=after.as_of,
                                created_at=utcnow(),
                                run_id=after.run_id,
                            )
                        ).inserted_primary_key[0]
                    )
                )  # type: ignore[index]
        except sa.exc.IntegrityError:  # a concurrent writer won the unique value_id: its row stands
            log.info("restatement of value #%s was written by another run", after.id)
    return made
