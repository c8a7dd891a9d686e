"""The :class:`~connectors.horizon.Horizon` of a SQL database: its clock and the oldest transaction
still open on it, asked for at the start of each read (see :mod:`connectors.horizon`).

* PostgreSQL: ``clock_timestamp()`` and the oldest ``xact_start`` of the other client sessions of the
  same database in ``pg_stat_activity``. Sessions of other users are visible only to superusers and
  members of ``pg_read_all_stats``; when some are hidden, only the lookback covers them (and we say so).
* MySQL/MariaDB: ``UTC_TIMESTAMP(6)`` and the oldest ``trx_started`` of
  ``information_schema.innodb_trx`` (the server's local time, converted here). It needs the PROCESS
  privilege; without it, only the lookback covers open transactions (and we say so).
* SQLite: ``strftime('now')``. One writer at a time, and a writer's rows are invisible until it
  commits: the lookback covers rows it stamped before a read moved past them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from connectors.horizon import HELD_BACK_NOTE_SECONDS, Horizon

DEFAULT_LOOKBACK_SECONDS = 300

_PG = """
SELECT clock_timestamp() AT TIME ZONE 'UTC' AS now,
       min(xact_start) AT TIME ZONE 'UTC' AS oldest,
       (array_agg(pid ORDER BY xact_start) FILTER (WHERE xact_start IS NOT NULL))[1] AS pid,
       count(*) FILTER (WHERE state IS NULL) AS hidden
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""
# trx_started is in the server's own time zone, whatever the session's: measured as an age here.
_MYSQL = """
SELECT UTC_TIMESTAMP(6) AS now,
       TIMESTAMPDIFF(MICROSECOND, MIN(trx_started), CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', 'SYSTEM')) AS age,
       (SELECT trx_mysql_thread_id FROM information_schema.innodb_trx
        WHERE trx_mysql_thread_id <> CONNECTION_ID() ORDER BY trx_started LIMIT 1) AS pid
FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()
"""
_MYSQL_NOW = "SELECT UTC_TIMESTAMP(6)"
_SQLITE_NOW = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"
_MYSQL_NO_PROCESS = {1227, 1142, 1044}  # access denied (PROCESS privilege)


def source_horizon(conn: sa.Connection, backend: str, lookback_seconds: int) -> Horizon:
    """Ask the database behind ``conn`` for its horizon (``backend``: postgresql, mysql or sqlite)."""
    if backend == "postgresql":
        r = conn.exec_driver_sql(_PG).one()
        notes = []
        if r.hidden:
            notes.append(f"cannot see the transactions of {r.hidden} other session(s) (grant "
                         f"pg_read_all_stats to the okrsync user): only the {lookback_seconds} s lookback "
                         "covers their late commits")
        return _horizon(r.now, r.oldest, r.pid, lookback_seconds, notes)
    if backend == "mysql":
        try:
            r = conn.exec_driver_sql(_MYSQL).one()
        except sa.exc.DBAPIError as exc:
            code = exc.orig.args[0] if exc.orig is not None and getattr(exc.orig, "args", None) else None
            if code not in _MYSQL_NO_PROCESS:
                raise
            conn.rollback()
            now = conn.exec_driver_sql(_MYSQL_NOW).scalar_one()
            return Horizon(now, now, lookback_seconds, (
                "cannot see open transactions (information_schema.innodb_trx needs the PROCESS privilege: "
                f"GRANT PROCESS ON *.* TO the okrsync user): only the {lookback_seconds} s lookback covers "
                "their late commits",))
        oldest = None if r.age is None else r.now - timedelta(microseconds=int(r.age))
        # innodb_trx is a cache InnoDB refreshes at most every 0.1 s: a transaction younger than that
        # may be missing from it, so the horizon stays a second behind the clock.
        return _horizon(r.now, oldest, r.pid, lookback_seconds, [], margin=timedelta(seconds=1))
    now = datetime.fromisoformat(str(conn.exec_driver_sql(_SQLITE_NOW).scalar_one()))
    return Horizon(now, now, lookback_seconds)


def _horizon(now: datetime, oldest: datetime | None, pid: int | None, lookback_seconds: int,
             notes: list[str], margin: timedelta = timedelta(0)) -> Horizon:
    safe = now - margin if oldest is None else min(now - margin, oldest - timedelta(seconds=1))  # whole s
    if (now - safe).total_seconds() > HELD_BACK_NOTE_SECONDS:
        notes.append(f"a transaction open since {safe:%Y-%m-%d %H:%M} UTC (session {pid}) holds the re-read "
                     "window back: rows from then on are read again until it ends")
    return Horizon(now, safe, lookback_seconds, tuple(notes))
