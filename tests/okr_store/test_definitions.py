"""Registered definitions (migration 0012): a store from before it registers each KR with its current
value's definition; a run registers the first definition it computes and audits a later change."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from okr_store import audit
from okr_store import models as m
from okr_store.store import Store, ValueRecord
from tests.store_templates import store_at_revision

AT = datetime(2026, 11, 30, 12, 0)


def test_a_store_from_before_0012_registers_each_kr_with_its_current_definition(store_url: str) -> None:
    with store_at_revision(store_url, "0009") as conn:
        for kr, last in (("KR-A", 2), ("KR-B", None)):
            conn.execute(sa.text(
                "INSERT INTO key_result (id, objective_id, title, metric, period_label, baseline, target, "
                "direction, weight, streams, position, active, last_value_id) VALUES (:id, 'O', 't', 'm', "
                "'2026-Q4', '0', '1', 'increase', '1', '[]', 0, true, :last)"), {"id": kr, "last": last})
        for vid, digest in ((1, "a" * 64), (2, "b" * 64)):
            conn.execute(sa.text(
                "INSERT INTO kr_value (id, kr_id, run_id, value, records, baseline, target, expected, "
                "status, as_of, computed_at, definition_hash, snapshot) VALUES (:id, 'KR-A', 'r', '1', 1, "
                "'0', '1', '0', 'on_track', :at, :at, :h, '{}')"), {"id": vid, "at": AT, "h": digest})
    store = Store(store_url)
    with store.engine.connect() as conn:
        got = dict(conn.execute(sa.select(m.key_result.c.id, m.key_result.c.definition_hash)).all())
        restated = conn.execute(sa.select(m.kr_value.c.restated_from)).scalars().all()
    store.close()
    assert got == {"KR-A": "b" * 64, "KR-B": None}
    assert restated == [None, None]


def _record(store: Store, digest: str, as_of: datetime) -> None:
    run_id = store.start_run(as_of, None)
    value = ValueRecord("KR", Decimal(1), None, 1, Decimal(0), Decimal(9), None, None, Decimal(0), "on_track",
                        digest, "{}", {})
    store.record_values(run_id, None, as_of, [value], {})
    store.finish_run(run_id, "succeeded")


def test_runs_register_the_first_definition_and_audit_a_change(store: Store) -> None:
    store.register_okrs([{"id": "O", "parent_id": None, "title": "o", "owner": None, "weight": "1",
                          "position": 0}],
                        [{"id": "KR", "objective_id": "O", "title": "k", "owner": None, "metric": "m",
                          "period_label": "2026-Q4", "baseline": "0", "target": "9", "direction": "increase",
                          "weight": "1", "unit": None, "streams": "[]", "position": 0}])
    _record(store, "a" * 64, AT)
    _record(store, "a" * 64, AT)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(m.key_result.c.definition_hash)).scalar() == "a" * 64
        assert audit.audit_log(conn) == []  # a first registration is no change
    _record(store, "b" * 64, datetime(2026, 11, 1))  # a back-fill leaves the registration alone
    _record(store, "c" * 64, datetime(2026, 12, 1))
    with store.engine.begin() as conn:
        assert conn.execute(sa.select(m.key_result.c.definition_hash)).scalar() == "c" * 64
        (event,) = audit.audit_log(conn)
        assert (event.actor, event.action, event.kr_id, event.target) == (
            "okrsync run", "definition.run", "KR", f"definition {'a' * 12} → {'c' * 12}")
        assert audit.verify_audit_chain(conn) is None
