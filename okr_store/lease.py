"""The project's run lease: one run at a time, and a stalled run can never overwrite a newer one.

A run takes the lease (row ``run_lease.name = 'project'``) before it touches anything and gets a
*fencing token*, a number that grows by one with every take. Every transaction that commits a sync
or records values first runs :meth:`Fence.check`: an UPDATE that renews the lease only where the token
and run are still this run's. If another run took the lease over (this one stalled past
``lease_seconds``: SIGSTOP, a long GC pause, a frozen network), the UPDATE matches nothing,
:class:`~okrsync.errors.LeaseLost` is raised and the transaction rolls back — nothing of the stalled
run lands, whatever it was about to write.

While a run works, a :class:`Heartbeat` thread renews the lease (and the stream leases of its syncs),
so a long read or compute keeps it. A run that cannot get the lease waits for the holder to finish
(runs of one project queue, they never split its streams), up to ``wait_seconds``. A holder that is
provably gone — on this host, with its process no longer running (``kill -9``, a lost worker) — is
taken over at once, and its run row and syncs are closed with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.records import utcnow
from okrsync.errors import LeaseBusy, LeaseLost

log = logging.getLogger("okrsync.lease")
NAME = "project"
HOST = socket.gethostname()[:255]


@dataclass(frozen=True)
class Fence:
    """What a run holds. Picklable: tasks in other processes check it in their own transactions."""

    run_id: str
    token: int
    lease_seconds: float

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def check(self, conn: sa.Connection) -> None:
        """Renew the lease if this run still holds it; else raise :class:`LeaseLost`, which rolls back
        the caller's transaction. Call it first in every transaction that changes shared state."""
        lease = m.run_lease.c
        renewed = conn.execute(
            m.run_lease.update()
            .where(lease.name == NAME, lease.generation == self.token, lease.run_id == self.run_id)
            .values(until=utcnow() + self.lease)
        ).rowcount
        if renewed != 1:
            holder = conn.execute(sa.select(lease.run_id, lease.generation).where(lease.name == NAME)).first()
            now_held = "nobody holds it now" if holder is None or holder.run_id is None else (
                f"run {holder.run_id[:8]} holds it now (token {holder.generation})"
            )
            raise LeaseLost(
                f"run {self.run_id[:8]} no longer holds the project's lease (its token {self.token}); "
                f"{now_held}. This run changes nothing more: the newer run's results stand",
                hint="the run stalled longer than settings.lease_seconds (a paused process, a frozen "
                "network); if that is normal for this project, raise lease_seconds",
            )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


def _holder_gone(row: Any) -> bool:
    """Provably gone: it ran on this host and its process no longer exists."""
    return bool(row.host == HOST and row.pid and row.pid != os.getpid() and not pid_alive(row.pid))


def abandon(conn: sa.Connection, run_id: str, why: str, *, status: str = "failed") -> None:
    """Close a run that will not finish by itself: its run row, its open syncs (their staged rows are
    dropped by the stream's next sync) and the stream leases they hold. Releases the project lease
    if that run holds it."""
    now = utcnow()
    r, sr, st = m.run.c, m.sync_run.c, m.stream_state.c
    conn.execute(
        m.run.update().where(r.id == run_id, r.status == "running").values(
            status=status, error=why, finished_at=now
        )
    )
    syncs = sa.select(sr.id).where(sr.run_id == run_id).scalar_subquery()
    conn.execute(
        m.stream_state.update().where(st.lease_sync_id.in_(syncs)).values(lease_sync_id=None,
                                                                          lease_until=None)
    )
    conn.execute(
        m.sync_run.update().where(sr.run_id == run_id, sr.status == "running").values(
            status="failed", error=why, finished_at=now
        )
    )
    lease = m.run_lease.c
    conn.execute(
        m.run_lease.update().where(lease.name == NAME, lease.run_id == run_id).values(
            run_id=None, host=None, pid=None, until=None
        )
    )


def acquire(
    engine: sa.Engine,
    run_id: str,
    *,
    as_of: datetime,
    flow_run_id: str | None,
    lease_seconds: float,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    poll_seconds: float = 1.0,
) -> Fence:
    """Take the project's lease for ``run_id`` and open its run row in the same transaction.

    Waits while a live run holds it (``on_wait`` is told once, with who holds it); raises
    :class:`LeaseBusy` after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    told = False
    lease = m.run_lease.c
    while True:
        now = utcnow()
        with engine.begin() as conn:
            row = conn.execute(sa.select(m.run_lease).where(lease.name == NAME)).one()
            gone = row.run_id is not None and _holder_gone(row)
            if row.run_id is None or row.until is None or row.until < now or gone:
                token = row.generation + 1
                taken = conn.execute(
                    m.run_lease.update()
                    .where(lease.name == NAME, lease.generation == row.generation)  # compare-and-swap
                    .values(generation=token, run_id=run_id, host=HOST, pid=os.getpid(), acquired_at=now,
                            until=now + timedelta(seconds=lease_seconds))
                ).rowcount
                if taken == 1:
                    if row.run_id is not None:
                        why = (
                            f"abandoned: its process {row.pid} on {row.host} ended without finishing"
                            if gone else f"abandoned: its lease expired at {row.until:%Y-%m-%d %H:%M:%S} "
                            f"UTC and run {run_id[:8]} took over"
                        )
                        abandon(conn, row.run_id, why)
                        log.warning("run %s took over the project from run %s (%s)", run_id[:8],
                                    row.run_id[:8], why)
                    conn.execute(
                        m.run.insert().values(id=run_id, flow_run_id=flow_run_id, started_at=now, as_of=as_of,
                                              status="running", host=HOST, pid=os.getpid())
                    )
                    return Fence(run_id, token, lease_seconds)
                continue  # another run won the swap: look again
            holder = (f"run {row.run_id[:8]} (process {row.pid} on {row.host}, lease until "
                      f"{row.until:%Y-%m-%d %H:%M:%S} UTC)")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LeaseBusy(
                f"another run of this project is still going: {holder}; this run waited "
                f"{wait_seconds:g} s and changed nothing",
                hint="let that run finish (it keeps its lease only while alive), or raise "
                "settings.wait_for_run_seconds",
            )
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        time.sleep(min(poll_seconds, remaining))


def release(engine: sa.Engine, fence: Fence) -> None:
    """Give the lease back (only if this run still holds it)."""
    lease = m.run_lease.c
    with engine.begin() as conn:
        conn.execute(
            m.run_lease.update()
            .where(lease.name == NAME, lease.generation == fence.token, lease.run_id == fence.run_id)
            .values(run_id=None, host=None, pid=None, until=None)
        )


def renew_streams(conn: sa.Connection, fence: Fence) -> None:
    """Keep the stream leases of this run's open syncs alive."""
    sr, st = m.sync_run.c, m.stream_state.c
    mine = sa.select(sr.id).where(sr.run_id == fence.run_id, sr.status == "running").scalar_subquery()
    conn.execute(
        m.stream_state.update().where(st.lease_sync_id.in_(mine)).values(lease_until=utcnow() + fence.lease)
    )


class Heartbeat:
    """Renews a run's leases every third of ``lease_seconds`` while the run works."""

    def __init__(self, engine: sa.Engine, fence: Fence) -> None:
        self.engine, self.fence = engine, fence
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"okrsync-heartbeat-{fence.run_id[:8]}",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        every = max(0.5, self.fence.lease_seconds / 3)
        while not self._stop.wait(every):
            try:
                with self.engine.begin() as conn:
                    self.fence.check(conn)
                    renew_streams(conn, self.fence)
            except LeaseLost as exc:
                self.lost = exc
                log.warning("%s", exc.message)
                return
            except sa.exc.SQLAlchemyError as exc:  # the next beat tries again; the lease outlives a few
                log.warning("could not renew the run's lease (%s); trying again", type(exc).__name__)
