"""An admin's decisions on failed checks: accept a blocked batch (or a KR jump) once, with a reason
that goes to the audit log, and let the held-back key results update."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flows import compute
from okr_store import checks
from okr_store.store import Store
from okrsync.errors import ConfigError
from okrsync.project import Project


@dataclass(frozen=True)
class Accepted:
    check_ids: list[int]
    stream: str | None
    rows_committed: int
    run_id: str
    values: dict[str, str | None]
    held: dict[str, str]


def accept(project: Project, store: Store, check_id: int, *, reason: str, actor: str) -> Accepted:
    """Accept what check ``check_id`` blocked, audit it, and recompute the key results."""
    if len(reason.strip()) < 3:
        raise ConfigError("accepting a failed check needs a reason", hint='add --reason "why this is fine"')
    with store.engine.connect() as conn:
        row = checks.get_check(conn, check_id)
    if row.status != "blocked":
        raise ConfigError(
            f"check #{check_id} is {row.status}, not blocked: there is nothing to accept",
            hint="`okrsync checks --failed` shows what is still blocked",
        )
    ids, committed = [check_id], 0
    ack: frozenset[str] = frozenset()
    now = datetime.now(UTC).replace(tzinfo=None)
    # Like any run, an accept holds the project's lease: it never interleaves with a scheduled run.
    s = project.settings
    # An admin waits at most half a minute (a page is waiting too), then is told to try again.
    fence = store.begin_run(now, None, lease_seconds=s.lease_seconds,
                            wait_seconds=min(30, s.wait_for_run_seconds))
    run_id = fence.run_id
    try:
        if row.sync_id is not None:
            writer, watermark = store.resume_sync(row.sync_id, fence)
            try:
                counts = writer.commit(watermark)
            except Exception:
                writer.block(watermark, f"accept of check #{check_id} failed")
                raise
            committed = counts.inserted + counts.updated + counts.deleted
            with store.engine.connect() as conn:
                ids = checks.blocked_of_sync(conn, row.sync_id)
        else:
            ack = frozenset({row.kr_id}) if row.kr_id else frozenset()
        with store.engine.begin() as conn:
            checks.resolve(conn, ids, "accepted", actor)
            for i in ids:
                checks.audit(conn, actor=actor, action="accept", reason=reason, check_id=i, kr_id=row.kr_id)
        # Streams still blocked by other checks keep their KRs held.
        values, held = compute.compute_values(
            project, store, run_id, None, now, store.blocked_streams(), acknowledged=ack, fence=fence
        )
    except BaseException as exc:
        store.end_run(fence, "failed", getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        raise
    store.end_run(fence, "partial" if held else "succeeded")
    return Accepted(
        ids,
        row.stream,
        committed,
        run_id,
        {k: None if e.value is None else str(e.value) for k, e in values.items()},
        held,
    )
