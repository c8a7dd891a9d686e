"""Access events in the audit log: they join the same hash chain as check decisions, their target and
address are covered by it, appenders never fork it, and a store made before them upgrades in place."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import sqlalchemy as sa

from okr_store import audit
from okr_store.store import Store
from tests.store_templates import store_at_revision


def test_target_and_address_are_covered_by_the_chain(store: Store) -> None:
    with store.engine.begin() as conn:
        audit.audit(conn, actor="alice", action="accept", reason="looks fine", check_id=1)
        audit.audit(
            conn,
            actor="ada",
            action="user.add",
            reason="added with role viewer",
            target="vera",
            address="203.0.113.9",
        )
        assert audit.verify_audit_chain(conn) is None
        _, added = audit.audit_log(conn)
        conn.execute(
            sa.text("UPDATE audit_event SET address = '198.51.100.1' WHERE id = :i"), {"i": added.id}
        )
        assert audit.verify_audit_chain(conn) == added.id
        conn.execute(
            sa.text("UPDATE audit_event SET address = '203.0.113.9', target = 'hugo' WHERE id = :i"),
            {"i": added.id},
        )
        assert audit.verify_audit_chain(conn) == added.id
    with store.engine.connect() as conn:
        assert [e.action for e in audit.recent(conn, access_only=True)] == ["user.add"]


def test_concurrent_appenders_never_fork_the_chain(store: Store) -> None:
    def append(i: int) -> None:
        for _ in range(5):
            with store.engine.begin() as conn:
                audit.audit(
                    conn,
                    actor=f"u{i}",
                    action="signin.ok",
                    reason="session started",
                    target=f"u{i}",
                    address="127.0.0.1",
                )

    threads = [threading.Thread(target=append, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.engine.connect() as conn:
        assert len(audit.audit_log(conn)) == 20
        assert audit.verify_audit_chain(conn) is None


def test_a_store_from_before_0009_keeps_its_chain_and_its_tokens_get_an_expiry(store_url: str) -> None:
    at = datetime(2026, 11, 30, 12, 0)
    with store_at_revision(store_url, "0008") as conn:
        # an event as 0008's code wrote it: its hash covers seven fields
        digest = audit._event_hash(audit.GENESIS, at, "alice", "accept", 7, None, "fine")
        conn.execute(
            sa.text(
                "INSERT INTO audit_event (at, actor, action, check_id, reason, prev_hash, hash) "
                "VALUES (:at, 'alice', 'accept', 7, 'fine', :prev, :hash)"
            ),
            {"at": at, "prev": audit.GENESIS, "hash": digest},
        )
        conn.execute(
            sa.text(
                "INSERT INTO api_token (token_hash, user_name, label, created_at) "
                "VALUES ('ab', 'lea', 'old script', :at)"
            ),
            {"at": at},
        )
    upgraded = Store(store_url)
    with upgraded.engine.begin() as conn:
        assert audit.verify_audit_chain(conn) is None
        audit.audit(
            conn,
            actor="ada",
            action="user.role",
            reason="role viewer → hr",
            target="vera",
            address="127.0.0.1",
        )
        assert audit.verify_audit_chain(conn) is None
        expires = conn.execute(sa.text("SELECT expires_at FROM api_token")).scalar_one()
    upgraded.close()
    if isinstance(expires, str):  # SQLite hands back text through a raw query
        expires = datetime.fromisoformat(expires)
    assert expires > datetime.now() + timedelta(days=80)
