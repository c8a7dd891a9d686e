"""The sessions of a sql source: read-only, each wait on the database bounded, and what a database error
means (:func:`failure_kind`). See :mod:`connectors.sql` for the decisions."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.sql_options import SqlOptions
from okrsync.errors import ConfigError

_SESSION_SQL = {"sqlite": ["PRAGMA query_only = ON"],
                "postgresql": ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"],
                "mysql": ["SET SESSION TRANSACTION READ ONLY", "SET time_zone = '+00:00'"]}
_PG_TRANSIENT = ("08", "40", "53", "57", "58")  # SQLSTATE classes: connection, rollback, resources…
_MYSQL_TRANSIENT = {1040, 1053, 1205, 1213, 1927, 3024}
_MYSQL_ACCESS = {1044, 1045, 1142, 1143, 1227, 1698}
_SQLITE_PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks (microseconds apart)
_READ_TIMEOUT_GRACE = 30  # pymysql gives up on a silent server this long after the statement timeout
STREAM = "okrsync_stream"  # execution option of streamed reads (see SqlConnector._bounded)


def read_only_engine(source: str, url: sa.URL, base_dir: Path,
                     options: SqlOptions) -> tuple[sa.Engine, Callable[[], Any] | None]:
    """The engine of one source (and, for SQLite, its connection factory): read-only sessions, statements
    and lock waits bounded by ``statement_timeout_seconds``, bound values kept out of logs."""
    backend, timeout = url.get_backend_name(), options.connect_timeout_seconds
    limit = options.statement_timeout_seconds
    creator: Callable[[], Any] | None = None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        if (url.database or ":memory:") == ":memory:" or str(url.database).startswith("file:"):
            raise ConfigError(f"source {source!r}: a SQLite source needs a file path",
                              hint="write sqlite:///relative/path.db or sqlite:////absolute/path.db")
        path = (base_dir / str(url.database)).resolve()
        if not path.is_file():
            raise ConfigError(f"source {source!r}: SQLite file {path} does not exist",
                              hint="check `url`; relative paths start at the project file's folder")
        url = url.set(database=str(path))
        # mode=ro: SQLite itself opens the file read-only, and never creates a missing one. The
        # timeout is how long a statement waits for a lock held by a writer.
        creator = partial(sqlite3.connect, path.as_uri() + "?mode=ro", uri=True, timeout=lock_wait(limit),
                          check_same_thread=False, factory=SqliteConnection)
        kwargs["creator"] = creator
    elif backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": timeout}
    elif backend in ("mysql", "mariadb"):
        kwargs["connect_args"] = {"connect_timeout": timeout, "read_timeout": limit + _READ_TIMEOUT_GRACE}
    else:
        raise ConfigError(f"source {source!r}: kind 'sql' does not support {backend!r}",
                          hint="use PostgreSQL, MySQL/MariaDB or SQLite (known read-only sessions)")
    try:
        # Bound values (watermarks, keys: source data) never reach logs or error text.
        engine = sa.create_engine(url, hide_parameters=True, **kwargs)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"source {source!r}: database driver {exc.name!r} is not installed",
                          hint="use postgresql+psycopg://, mysql+pymysql:// or sqlite:///") from None
    family = "mysql" if backend == "mariadb" else backend

    def read_only_session(dbapi_conn: Any, _record: Any) -> None:
        mariadb = family == "mysql" and "mariadb" in dbapi_conn.get_server_info().lower()
        cur = dbapi_conn.cursor()
        for sql in _SESSION_SQL[family] + limits_sql(family, limit, mariadb=mariadb):
            cur.execute(sql)
        cur.close()
        if backend != "sqlite":
            dbapi_conn.commit()  # a rollback would undo PostgreSQL's SET

    sa.event.listen(engine, "connect", read_only_session)
    if family == "sqlite":
        def start_clock(_conn: Any, cursor: Any, *_args: Any) -> None:
            cursor.connection.deadline.at = time.monotonic() + limit

        sa.event.listen(engine, "before_cursor_execute", start_clock)
    elif family == "mysql":
        def unbounded_stream(conn: sa.Connection, _cursor: Any, statement: str, parameters: Any,
                             context: Any, _many: bool) -> tuple[str, Any]:
            # max_statement_time would count the whole streamed read, the time spent on rows
            # already received included: streamed reads are bounded per wait (see SqlConnector._bounded).
            if getattr(conn.dialect, "is_mariadb", False) and context is not None \
                    and context.execution_options.get(STREAM):
                statement = f"SET STATEMENT max_statement_time = 0 FOR {statement}"
            return statement, parameters

        sa.event.listen(engine, "before_cursor_execute", unbounded_stream, retval=True)
    return engine, creator


def failure_kind(exc: sa.exc.DBAPIError) -> str:
    """``timeout`` (statement_timeout_seconds ran out), ``lock`` (a lock wait did), ``transient``
    (lost connection, deadlock, overload: retry), ``access`` or ``other``."""
    orig, text = exc.orig, str(exc.orig).lower()
    sqlstate, args = getattr(orig, "sqlstate", None), getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None  # MySQL error number
    if sqlstate == "55P03" or code == 1205 or (isinstance(orig, sqlite3.Error) and "locked" in text):
        return "lock"  # lock_timeout, lock_wait_timeout / innodb_lock_wait_timeout, SQLite busy timeout
    if (sqlstate == "57014" and "statement timeout" in text) or code in (1969, 3024) \
            or (isinstance(orig, sqlite3.Error) and "interrupted" in text):
        return "timeout"  # statement_timeout, max_statement_time / max_execution_time, progress handler
    if exc.connection_invalidated:
        transient, access = True, False
    elif isinstance(sqlstate, str):
        transient, access = sqlstate.startswith(_PG_TRANSIENT), sqlstate.startswith(("28", "42501"))
    elif "fatal:" in text:  # PostgreSQL answered but refused the connection (no SQLSTATE at connect time)
        transient = any(s in text for s in ("starting up", "shutting down", "too many", "recovery"))
        access = any(s in text for s in ("password", "authentication", "role", "pg_hba"))
    elif isinstance(orig, sqlite3.Error):
        transient, access = any(s in text for s in ("locked", "busy", "unable to open", "disk i/o")), False
    elif code is not None:  # MySQL; 2xxx are client-side connection errors
        transient, access = code in _MYSQL_TRANSIENT or 2000 <= code < 3000, code in _MYSQL_ACCESS
    else:
        transient, access = isinstance(exc, sa.exc.OperationalError), False
    return "transient" if transient else "access" if access else "other"


def lock_wait(limit: int) -> float:
    """How long a statement waits for a lock: a second less than the statement timeout (half of it
    at 1 s), or the statement timeout would fire first and the wait not be named as a lock wait."""
    return limit - 1 if limit > 1 else limit / 2


def limits_sql(family: str, limit: int, *, mariadb: bool) -> list[str]:
    """Session settings that bound statements and lock waits (SQLite: see SqliteConnection)."""
    lock = lock_wait(limit)
    if family == "postgresql":
        return [f"SET statement_timeout = {limit * 1000}", f"SET lock_timeout = {round(lock * 1000)}"]
    if family == "mysql":  # whole seconds; MySQL itself has no max_statement_time (streams: _bounded)
        waits = [f"SET SESSION lock_wait_timeout = {max(1, int(lock))}",
                 f"SET SESSION innodb_lock_wait_timeout = {max(1, int(lock))}"]
        return [*waits, f"SET SESSION max_statement_time = {limit}"] if mariadb else waits
    return []


class _Deadline:
    """SQLite's progress handler: a non-zero answer once ``at`` (``time.monotonic()``) has passed
    interrupts the running statement (``sqlite3.OperationalError: interrupted``)."""

    at = math.inf

    def __call__(self) -> int:
        return int(time.monotonic() > self.at)


class SqliteConnection(sqlite3.Connection):
    """A SQLite connection whose statements stop at ``deadline`` (set per statement and per batch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = _Deadline()
        self.set_progress_handler(self.deadline, _SQLITE_PROGRESS_STEPS)
