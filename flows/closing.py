"""Recording a run's values with closing periods (:mod:`okr_store.closing`).

A KR whose period is closed keeps its final value: a run's value for it is recorded only when it
differs from the value the period has now (the closed value, or the latest restated one), and then as a
restatement, never as current. Every other value is recorded as usual, and the periods whose closing
time has come by the run's **as-of time** close with it, in the same transaction (fenced: a run that
lost the project's lease closes nothing). A back-fill never closes a period. Restatements get their
records (the diff against the closed value) right after.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa

from okr_store import closing, current, restating
from okr_store.lease import Fence
from okr_store.store import Store, ValueRecord


def record(
    store: Store,
    run_id: str,
    flow_run_id: str | None,
    as_of: datetime,
    records: Sequence[ValueRecord],
    held: Mapping[str, str],
    fence: Fence | None = None,
) -> tuple[list[int], list[ValueRecord]]:
    """Record a run's values; returns the new value ids and the records they belong to (values of
    closed periods that did not move are left out)."""
    with store.engine.connect() as conn:
        backfill = current.is_backfill(conn, run_id, as_of)
        closes = closing.active_closes(conn, [r.kr_id for r in records])
        kept: list[ValueRecord] = []
        for r in records:
            closed = closes.get(r.kr_id)
            if closed is None or as_of < closed.as_of:  # open, or history from before the close
                kept.append(r)
            elif not closing.same(r.value, closing.latest_value(conn, closed)):
                kept.append(replace(r, restates=closed.id))

    def close_due(conn: sa.Connection, ids: list[int]) -> None:
        if not backfill:
            due = [(r.kr_id, i) for r, i in zip(kept, ids, strict=True) if r.restates is None]
            closing.close_due(conn, due, as_of, run_id)

    ids = store.record_values(run_id, flow_run_id, as_of, kept, held, fence, then=close_due)
    restating.restate_pending(store, fence)  # also any value a crashed run left without its records
    return ids, kept
