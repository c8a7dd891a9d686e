"""The audit log of admin decisions: append-only by convention, tamper-evident by its hash chain."""

from __future__ import annotations

import sqlalchemy as sa

from okr_store import checks
from okr_store.store import Store


def test_the_audit_chain_detects_an_edited_or_removed_event(store: Store) -> None:
    with store.engine.begin() as conn:
        for i in range(3):
            checks.audit(conn, actor="alice", action="accept", reason=f"reason {i}", check_id=i + 1)
        assert checks.verify_audit_chain(conn) is None
        first, second, _ = checks.audit_log(conn)
        conn.execute(
            sa.text("UPDATE audit_event SET reason = 'nothing to see' WHERE id = :i"), {"i": second.id}
        )
        assert checks.verify_audit_chain(conn) == second.id
        conn.execute(sa.text("UPDATE audit_event SET reason = 'reason 1' WHERE id = :i"), {"i": second.id})
        assert checks.verify_audit_chain(conn) is None
        conn.execute(sa.text("DELETE FROM audit_event WHERE id = :i"), {"i": first.id})
        assert checks.verify_audit_chain(conn) == second.id
