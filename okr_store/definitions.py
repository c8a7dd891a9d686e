"""Which definition each key result is registered with, and how it changes.

Every stored value keeps the hash of the definition it was computed with (``kr_value.definition_hash``,
its body in ``definition``), so a past value is always drilled and diffed as it was computed. On top of
that, ``key_result.definition_hash`` is the definition the KR is *registered* with: what
``okrsync plan`` compares the project file with. It is set

* by the first run that computes the KR;
* by ``okrsync plan --apply --reason …``, which audits each change (action ``definition.apply``);
* by a run that computes the KR with another definition than the registered one (the project file was
  edited and run without a plan): the run registers it too, and audits that (``definition.run``), so a
  change of meaning is never silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from okr_store import models as m
from okr_store.audit import audit
from okr_store.records import utcnow

RUN_ACTOR = "okrsync run"
APPLIED = "definition.apply"
CHANGED_BY_RUN = "definition.run"
CHANGED_REASON = "computed with a changed definition without `okrsync plan --apply`"


def short(digest: str | None) -> str:
    return "(none)" if digest is None else digest[:12]


def keep(conn: sa.Connection, kr_id: str, digest: str, body: str) -> None:
    """Store a definition's body under its hash (once)."""
    d = m.definition.c
    if conn.execute(sa.select(d.hash).where(d.hash == digest)).first() is None:
        conn.execute(m.definition.insert().values(hash=digest, kr_id=kr_id, body=body, created_at=utcnow()))


def registered(conn: sa.Connection, kr_ids: list[str] | None = None) -> dict[str, str | None]:
    """Each KR's registered definition hash (None: registered but never computed nor applied)."""
    k = m.key_result.c
    q = sa.select(k.id, k.definition_hash)
    if kr_ids is not None:
        q = q.where(k.id.in_(kr_ids))
    return {r.id: r.definition_hash for r in conn.execute(q)}


def register(
    conn: sa.Connection, kr_id: str, digest: str, *, actor: str, action: str, reason: str
) -> str | None:
    """Register ``digest`` for ``kr_id``; a change from another registered definition is audited.
    Returns the definition registered before."""
    k = m.key_result.c
    before = conn.execute(sa.select(k.definition_hash).where(k.id == kr_id)).scalar()
    if before == digest:
        return before
    conn.execute(m.key_result.update().where(k.id == kr_id).values(definition_hash=digest))
    if before is not None or action == APPLIED:
        audit(conn, actor=actor, action=action, kr_id=kr_id, reason=reason,
              target=f"definition {short(before)} → {short(digest)}")
    return before


def registered_by_run(conn: sa.Connection, kr_id: str, digest: str, *, backfill: bool) -> None:
    """What a run's recorded value means for the registration: the first value registers its
    definition; a later (not back-filled) value under another definition registers it, audited."""
    k = m.key_result.c
    before = conn.execute(sa.select(k.definition_hash).where(k.id == kr_id)).scalar()
    if before is None or (before != digest and not backfill):
        register(conn, kr_id, digest, actor=RUN_ACTOR, action=CHANGED_BY_RUN, reason=CHANGED_REASON)


def keep_all(conn: sa.Connection, bodies: Iterable[tuple[str, str, str]]) -> None:
    """:func:`keep` for many ``(kr_id, hash, body)`` at once: one lookup, one insert of the new ones."""
    want: dict[str, tuple[str, str]] = {}
    for kr_id, digest, body in bodies:
        want.setdefault(digest, (kr_id, body))
    if not want:
        return
    d = m.definition.c
    have = set(conn.execute(sa.select(d.hash).where(d.hash.in_(list(want)))).scalars())
    now = utcnow()
    new = [{"hash": h, "kr_id": k, "body": b, "created_at": now}
           for h, (k, b) in want.items() if h not in have]
    if new:
        conn.execute(m.definition.insert(), new)


def registered_by_runs(conn: sa.Connection, digests: Sequence[tuple[str, str]], *, backfill: bool) -> None:
    """:func:`registered_by_run` for a run's ``(kr_id, hash)`` pairs, in order: one lookup, the first
    registrations as one executemany (not audited), the (rare) changes one by one (audited)."""
    k = m.key_result.c
    kr_ids = list({kr_id for kr_id, _ in digests})
    before: dict[str, str | None] = dict(
        conn.execute(sa.select(k.id, k.definition_hash).where(k.id.in_(kr_ids))).tuples().all()
    )
    first: list[dict[str, str]] = []
    for kr_id, digest in digests:
        was = before.get(kr_id)
        if was is None:
            first.append({"kr": kr_id, "digest": digest})
        elif was != digest and not backfill:
            register(conn, kr_id, digest, actor=RUN_ACTOR, action=CHANGED_BY_RUN, reason=CHANGED_REASON)
        else:
            continue
        before[kr_id] = digest
    if first:
        conn.execute(m.key_result.update().where(k.id == sa.bindparam("kr"))
                     .values(definition_hash=sa.bindparam("digest")), first)
