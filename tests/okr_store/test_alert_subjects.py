"""What a check's alerts are about: its KR, its stream, or (a reconciliation, which has neither) the
check itself — never ``stream:None``; and a store from before 0016 keeps the state it had seen."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from metrics.quality import RECONCILE, CheckSpec, Outcome
from okr_store import alerts
from okr_store.checks import record_outcomes
from okr_store.store import Store
from tests.store_templates import store_at_revision

LABEL = "reconcile(revenue-vs-invoices)"


def _failing_reconciliation(conn: sa.Connection) -> None:
    check = CheckSpec(kind=RECONCILE, kwargs={"name": "revenue-vs-invoices"})
    assert check.label == LABEL
    failed = Outcome(check=check, success=False, element_count=10, unexpected_count=2)
    record_outcomes(conn, "run-1", [failed])


def test_a_failing_reconciliation_is_announced_once_under_its_own_name(store: Store) -> None:
    with store.engine.begin() as conn:
        _failing_reconciliation(conn)
        events = alerts.detect(conn, "run-1")
    assert [(e.kind, e.subject) for e in events] == [("check_failed", LABEL)]
    assert events[0].facts["status"] == "blocked" and events[0].facts["stream"] is None
    with store.engine.begin() as conn:
        assert alerts.detect(conn, "run-2") == []


def test_a_store_from_before_0016_moves_the_seen_state_and_does_not_announce_again(store_url: str) -> None:
    at = datetime(2026, 12, 7, 12, 0)
    with store_at_revision(store_url, "0015") as conn:
        _failing_reconciliation(conn)
        # what 0015's code stored for it
        conn.execute(sa.text("INSERT INTO alert_state (kind, subject, state, updated_at) "
                             "VALUES ('check_failed', :s, 'failing', :at)"),
                     {"s": f"stream:None:{LABEL}", "at": at})
        conn.execute(sa.text("INSERT INTO alert_event (kind, subject, run_id, kr_ids, facts, created_at) "
                             "VALUES ('check_failed', :s, 'run-1', '[]', '{}', :at)"),
                     {"s": f"stream:None:{LABEL}", "at": at})
    upgraded = Store(store_url)
    try:
        with upgraded.engine.begin() as conn:
            assert conn.execute(sa.text("SELECT subject FROM alert_state")).scalars().all() == [LABEL]
            assert conn.execute(sa.text("SELECT subject FROM alert_event")).scalars().all() == [LABEL]
            assert alerts.detect(conn, "run-2") == []
    finally:
        upgraded.close()
