"""SQL databases (PostgreSQL, MySQL/MariaDB, SQLite) as sources: read-only, through SQLAlchemy Core.

Decisions worth knowing:

* Sessions are read-only (SQLite files are also opened ``mode=ro``), so even a data-modifying CTE or
  function in a ``query`` fails. Give okrsync a read-only database user as well.
* MySQL sessions use ``time_zone = '+00:00'`` so TIMESTAMP values arrive in UTC. Naive values
  (PostgreSQL ``timestamp``, MySQL DATETIME, SQLite text without offset) are in the stream's
  timezone; an ambiguous local time (DST fall-back) is taken as its first occurrence.
* NUMERIC without a declared scale is DECIMAL with :data:`UNSCALED_DECIMAL_SCALE` places (finer
  values round half-even): declare the scale of money columns.
* MySQL ``TINYINT(1)`` is BOOLEAN (MySQL's spelling of it). Types outside :class:`FieldType` (JSON,
  UUID, intervals…) are read as STRING; binary ones (BLOB, bytea) as ``sha256:<hex>`` of their bytes.
  NUMERIC values a driver hands back as bytes (Tryton on SQLite) are read as exact decimals.
* SQLite keeps no type for computed query columns: they are typed from sampled values (INTEGER,
  FLOAT or STRING). SQLite dates and datetimes compare through ``julianday()``, as stored.
* Rows whose effective cursor is NULL sort first: full reads return them; incremental reads only
  while the watermark is still among them.
* An incremental read's condition is a range on the cursor (``cursor >= w AND (cursor, key) > (w, k)``,
  :mod:`connectors.sql_range`), so an index on the cursor serves it on every database.
* ``statement_timeout_seconds`` bounds each wait on the database: a statement, and in a streamed read
  each batch, but not the time spent on rows already received. Lock waits give up a second earlier
  (:func:`~connectors.sql_session.lock_wait`), so they are reported as such. PostgreSQL:
  ``statement_timeout`` (per FETCH of the server-side cursor) and ``lock_timeout``. MariaDB:
  ``max_statement_time``, except on streamed reads (it would count the whole read), whose waits a timer
  ends with ``KILL QUERY``;
  ``lock_wait_timeout``/``innodb_lock_wait_timeout``; pymysql's ``read_timeout`` as a backstop
  (MySQL: the lock waits, the timer and the backstop). SQLite: the busy timeout, and a progress
  handler that interrupts a statement past its deadline.
* Deleted rows are found by key-range digests the database computes (:mod:`connectors.sql_digest`,
  :mod:`flows.deletes`): only the keys of ranges that differ from the store are read. ``key_digests:
  false`` on the source, or a key of other than integer/text columns, reads every key instead.
* Each sync first asks the database for its clock and its oldest open transaction
  (:mod:`connectors.sql_horizon`); the watermark stays behind them, less ``lookback_seconds``
  (default :data:`~connectors.sql_horizon.DEFAULT_LOOKBACK_SECONDS`), so a row stamped with the start
  of a transaction that commits after the read is still read next time.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel

from connectors.base import SourceConnector, StreamSpec, Watermark, stream_zone
from connectors.horizon import Horizon, lookback
from connectors.kit.cursor import Incremental
from connectors.kit.options import validated
from connectors.secrets import env_value, secret_value
from connectors.sql_digest import SqlKeyDigests, digestible, register_h32
from connectors.sql_horizon import DEFAULT_LOOKBACK_SECONDS, source_horizon
from connectors.sql_options import SqlOptions, SqlStreamOptions
from connectors.sql_range import after_watermark, lex_after
from connectors.sql_session import STREAM, SqliteConnection, failure_kind, lock_wait, read_only_engine
from connectors.sql_values import (
    BAD_VALUE,
    Col,
    converter,
    dbapi_col,
    first_bad,
    native,
    sa_col,
    sampled_col,
    series,
)
from connectors.sql_values import UNSCALED_DECIMAL_SCALE as UNSCALED_DECIMAL_SCALE  # re-exported
from okrsync.errors import ConfigError, SourceError, close_matches
from okrsync.schema import FieldType, StreamSchema

if TYPE_CHECKING:  # imported where a read builds frames: loading a project file needs no pandas
    import pandas as pd

SAMPLE_ROWS = 1000  # rows sampled to type SQLite columns that declare no type
VALIDATE = "the source may have changed since the stream was declared: run `okrsync validate --check-sources`"
_T = FieldType
_TEXT_BINDS = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # what sa.text() would take for a bind parameter
_LOCK_HINTS = {"postgresql": "pg_locks joined with pg_stat_activity",
               "mysql": "SHOW FULL PROCESSLIST: a LOCK TABLES or a long transaction",
               "sqlite": "the process with a write transaction open on the file"}


@dataclass(frozen=True)
class _Plan:
    source: sa.FromClause  # untyped columns: raw driver values, converted here rather than by SQLAlchemy
    cols: dict[str, Col]


class SqlConnector(SourceConnector):
    """Reads tables and SELECT queries of one database. Cheap to create; connects on first use."""

    kind: ClassVar[str] = "sql"
    # Typed as the protocol declares them (invariant ClassVars); the models are SqlOptions/SqlStreamOptions.
    Options: ClassVar[type[BaseModel]] = SqlOptions
    StreamOptions: ClassVar[type[BaseModel]] = SqlStreamOptions
    options_hint: ClassVar[str] = "see `sources` in the docs"
    supports_partitions = True  # a stream's `partitions` read as parallel tasks
    default_lookback_seconds = DEFAULT_LOOKBACK_SECONDS
    options: SqlOptions

    def __init__(self, name: str, options: SqlOptions | Mapping[str, Any], base_dir: Path) -> None:
        super().__init__(name, options, base_dir)
        self._engine: sa.Engine | None = None
        self._sqlite_creator: Callable[[], Any] | None = None
        self._password: str | None = None
        self._plans: dict[str, _Plan] = {}

    @property
    def engine(self) -> sa.Engine:
        """The read-only engine, created on first use."""
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included)."""
        return "mysql" if self.engine.dialect.name == "mariadb" else self.engine.dialect.name

    def check(self) -> None:
        """Connect and run a trivial query; SourceError (transient if worth a retry) otherwise."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.literal(1)))
        except sa.exc.DBAPIError as exc:
            raise self._source_error(exc, None) from None

    def schema(self, stream: StreamSpec) -> StreamSchema:
        """The table's (or query's) columns, reflected afresh; checks the stream's declared fields."""
        self._plans.pop(_plan_key(stream), None)
        return StreamSchema(tuple(c.field for c in self._plan(stream).cols.values()))

    def horizon(self, stream: StreamSpec) -> Horizon:
        """The database's clock and oldest open transaction, now (see :mod:`connectors.horizon`)."""
        try:
            with self.engine.connect() as conn:
                return source_horizon(conn, self.backend, lookback(stream, self))
        except sa.exc.DBAPIError as exc:
            raise self._source_error(exc, stream) from None

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """Kept fields ordered by (cursor, primary key), strictly after ``since`` (from its
        ``reread_from`` on, inclusive, when it has one); a frame per batch."""
        plan = self._plan(stream)
        kept = stream.kept_fields(StreamSchema(tuple(c.field for c in plan.cols.values())))
        keys = [self._comparable(plan, k) for k in stream.primary_key]
        stmt, order = sa.select(*(plan.source.c[n] for n in kept)), keys
        if stream.cursor:
            cursor = self._comparable(plan, *stream.cursor)
            order = [cursor, *keys]
            if all(plan.cols[c].nullable for c in stream.cursor):  # NULLs first, on every database
                order.insert(0, sa.case((cursor.is_(None), 0), else_=1))
            if since is not None:
                stmt = stmt.where(self._after(plan, stream, since, cursor, keys))
        yield from self._frames(stream, plan, self._partition(plan, stream, stmt).order_by(*order), kept)

    def filter_needs_keys(self, stream: StreamSpec) -> bool:
        """A ``query`` stream's filter is the user's SQL (a WHERE, a join): nothing can read around it,
        so a row edited out of it is found only by comparing keys, which its streams do on every sync."""
        return stream.options.get("query") is not None

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        """The primary-key columns of every row, in batches of ``stream.batch_size``."""
        plan = self._plan(stream)
        stmt = self._partition(plan, stream, sa.select(*(plan.source.c[k] for k in stream.primary_key)))
        yield from self._frames(stream, plan, stmt, stream.primary_key)

    def key_digests(self, stream: StreamSpec) -> SqlKeyDigests | None:
        """Key-range digests computed by the database (:mod:`connectors.sql_digest`); None when the
        source turns them off (``key_digests: false``) or the key is not of INTEGER/STRING columns."""
        plan = self._plan(stream)
        cols = [plan.cols[k] for k in stream.primary_key]
        if not self.options.key_digests or not digestible([(c.field.type, c.binary) for c in cols]):
            return None
        positional = len(cols) == 1 and cols[0].field.type is FieldType.INTEGER
        return SqlKeyDigests(self.engine, self.backend, plan.source, stream, positional,
                             lambda stmt: self._frames(stream, plan, stmt, stream.primary_key),
                             lambda exc: self._source_error(exc, stream))

    def _partition(self, plan: _Plan, stream: StreamSpec, stmt: sa.Select[Any]) -> sa.Select[Any]:
        """Only the rows of the partition being read (``stream.partition_range``): lower bound
        included, upper excluded, NULLs with the first partition. Date and time bounds are UTC."""
        if stream.partition_range is None or stream.partitions is None:
            return stmt
        name = stream.partitions.field
        if name not in plan.cols:
            raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: partitions.field {name!r} "
                              "is not a column", hint=f"available fields: {', '.join(plan.cols)}")
        col, tz = self._comparable(plan, name), stream_zone(self.name, stream)
        lower, upper = stream.partition_range
        try:
            if lower is not None:
                stmt = stmt.where(col >= self._param(plan, name, lower, tz))
            if upper is not None:
                below = col < self._param(plan, name, upper, tz)
                stmt = stmt.where(below if lower is not None else sa.or_(col.is_(None), below))
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: partition bound "
                              f"{lower if lower is not None else upper!r} does not fit field {name!r} "
                              f"({plan.cols[name].field.type}): {exc}",
                              hint="give bounds of the field's type (numbers, or ISO dates/times, UTC)"
                              ) from None
        return stmt

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        """Plain databases have no web page per record."""
        return None

    def close(self) -> None:
        """Close the pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- connecting -------------------------------------------------------------------------------

    def _make_engine(self) -> sa.Engine:
        engine, self._sqlite_creator = read_only_engine(self.name, self._resolve_url(), self.base_dir,
                                                        self.options)
        if engine.dialect.name == "sqlite":  # the hash of key digests (connectors.sql_digest)
            sa.event.listen(engine, "connect", lambda dbapi_conn, _record: register_h32(dbapi_conn))
        return engine

    def _resolve_url(self) -> sa.URL:
        o = self.options
        if o.url_env is not None:
            raw, where = (env_value(self.name, o.url_env, "the database URL"),
                          f"environment variable {o.url_env}")
        elif o.url_secret is not None:
            raw, where = (secret_value(self.name, o.url_secret, "the database URL"),
                          f"Prefect Secret block {o.url_secret!r}")
        else:
            raw, where = str(o.url), "`url`"
        try:
            url = sa.make_url(raw)
        except (sa.exc.ArgumentError, ValueError):
            raise ConfigError(f"source {self.name!r}: {where} does not hold a database URL",
                              hint="expected e.g. postgresql+psycopg://user:password@host:5432/db") from None
        if o.password_env is not None:
            url = url.set(password=env_value(self.name, o.password_env, "the database password"))
        if url.drivername in ("mysql", "mariadb"):  # the default driver (mysqlclient) is not installed
            url = url.set(drivername=f"{url.drivername}+pymysql")
        self._password = str(url.password) if url.password else None
        return url

    # -- describing streams -----------------------------------------------------------------------

    def _plan(self, stream: StreamSpec) -> _Plan:
        so = self._stream_options(stream)
        plan = self._plans.get(key := _plan_key(stream))
        if plan is None:
            plan = self._plans[key] = self._build_plan(stream, so)
        cols, where = plan.cols, "the query" if so.query else f"table {so.table!r}"
        if missing := list(dict.fromkeys(f for f in (*(stream.fields or ()), *stream.primary_key,
                                                     *stream.cursor) if f not in cols)):
            raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: no field(s) "
                              f"{', '.join(map(repr, missing))} in {where}",
                              hint=f"available fields: {', '.join(cols)}")
        if len({(cols[c].field.type, cols[c].utc) for c in stream.cursor}) > 1:
            kinds = ", ".join(f"{c} ({cols[c].field.type})" for c in stream.cursor)
            raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: cursor fields differ in type: "
                              f"{kinds}", hint="COALESCE needs cursor fields of one type")
        return plan

    def _stream_options(self, stream: StreamSpec) -> SqlStreamOptions:
        return validated(SqlStreamOptions, stream.options,
                         where=f"source {self.name!r}, stream {stream.name!r}",
                         hint="a sql stream takes `table` (and optional `schema`) or `query`")

    def _build_plan(self, stream: StreamSpec, so: SqlStreamOptions) -> _Plan:
        try:
            with self.engine.connect() as conn:
                if so.table is not None:
                    described = self._table_columns(conn, stream, so.table, so.db_schema)
                    source: sa.FromClause = sa.table(so.table, *map(sa.column, described),
                                                     schema=so.db_schema)
                else:
                    query = sa.text(_TEXT_BINDS.sub(r"\\:\1", str(so.query)))
                    probe = sa.select(sa.text("*")).select_from(query.columns().subquery("q")).limit(0)
                    described = (self._sqlite_query_columns(str(so.query)) if self.backend == "sqlite"
                                 else self._described(stream, conn.execute(probe).cursor.description))
                    source = query.columns(*(sa.column(n) for n in described)).subquery("q")
                untyped = [n for n, c in described.items() if c is None]
                sample: Sequence[Any] = []
                if untyped:
                    sample = conn.execute(sa.select(*(source.c[n] for n in untyped)).limit(SAMPLE_ROWS)).all()
        except sa.exc.DBAPIError as exc:
            raise self._source_error(exc, stream, query=so.query is not None) from None
        for i, n in enumerate(untyped):
            described[n] = sampled_col(n, next((r[i] for r in sample if r[i] is not None), None))
        return _Plan(source, {n: c for n, c in described.items() if c is not None})

    def _table_columns(self, conn: sa.Connection, stream: StreamSpec, table: str,
                       db_schema: str | None) -> dict[str, Col | None]:
        insp = sa.inspect(conn)
        try:
            columns = insp.get_columns(table, schema=db_schema)
        except sa.exc.NoSuchTableError:
            known = insp.get_table_names(schema=db_schema) + insp.get_view_names(schema=db_schema)
            close = close_matches(table, known, n=5, cutoff=0.5)
            raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: no table {table!r}"
                              + (f" in schema {db_schema!r}" if db_schema else ""),
                              hint=f"did you mean {', '.join(close)}?" if close
                              else f"tables: {', '.join(sorted(known)[:30]) or 'none'}") from None
        return {c["name"]: sa_col(c["name"], c["type"], bool(c.get("nullable", True)), self.backend)
                for c in columns}

    def _described(self, stream: StreamSpec, description: Sequence[Sequence[Any]]) -> dict[str, Col | None]:
        """Result columns from the DB-API description: (name, type code, _, size, _, scale, ...)."""
        out: dict[str, Col | None] = {}
        for name, code, _, size, _, scale, *_ in description:
            if name in out:
                raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: the query returns column "
                                  f"{name!r} twice",
                                  hint="give each result column its own name (AS ...)")
            out[name] = dbapi_col(self.backend, name, code, size, scale)
        return out

    def _sqlite_query_columns(self, query: str) -> dict[str, Col | None]:
        # SQLite reports no result types, but a TEMP view over the query has the declared types of the
        # columns it selects. A separate connection (the file still opened mode=ro) may write TEMP.
        probe = sa.create_engine(self.engine.url, creator=self._sqlite_creator, poolclass=sa.pool.NullPool)
        try:
            with probe.connect() as conn:
                conn.exec_driver_sql(f"CREATE TEMP VIEW okrsync_probe AS {query}")
                columns = sa.inspect(conn).get_columns("okrsync_probe", schema="temp")
        finally:
            probe.dispose()
        return {c["name"]: sa_col(c["name"], c["type"], True, self.backend) for c in columns}

    # -- reading ----------------------------------------------------------------------------------

    def _comparable(self, plan: _Plan, *names: str) -> sa.ColumnElement[Any]:
        """A column (or the COALESCE of several) as compared and sorted; SQLite dates as instants."""
        cols = [plan.source.c[n] for n in names]
        expr: sa.ColumnElement[Any] = cols[0] if len(cols) == 1 else sa.func.coalesce(*cols)
        if self.backend == "sqlite" and plan.cols[names[0]].field.type.temporal:
            expr = sa.func.julianday(expr)
        return expr

    def _param(self, plan: _Plan, name: str, value: Any, tz: ZoneInfo) -> Any:
        """A watermark value as a bound parameter comparable with the column (see _comparable)."""
        col = plan.cols[name]
        v = native(value, col.field.type)
        if isinstance(v, datetime):  # watermarks are naive UTC; the column may hold local times
            v = v.replace(tzinfo=UTC) if col.utc and self.backend == "postgresql" else v if col.utc \
                else v.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
        if self.backend == "sqlite" and isinstance(v, date):
            return sa.func.julianday(v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat())
        return v

    def _after(self, plan: _Plan, stream: StreamSpec, since: Watermark, cursor: sa.ColumnElement[Any],
               keys: list[sa.ColumnElement[Any]]) -> sa.ColumnElement[bool]:
        if len(since.key) != len(stream.primary_key):
            raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: the watermark key has "
                              f"{len(since.key)} part(s), the primary key {len(stream.primary_key)}",
                              hint="the primary key changed: reset the stream's watermark (full refresh)")
        tz, first = stream_zone(self.name, stream), stream.cursor[0]
        window = Incremental.of(stream, since, plan.cols[first].field.type)
        key_values = [self._param(plan, k, v, tz)
                      for k, v in zip(stream.primary_key, window.key, strict=True)]
        if window.null_cursor:  # still among the NULL cursors (sorted first)
            return sa.or_(cursor.is_not(None), sa.and_(cursor.is_(None), lex_after(keys, key_values)))
        if window.rereads:  # late rows (reread_from, lookback); the store drops re-read duplicates
            return cursor >= self._param(plan, first, window.start, tz)
        return after_watermark(cursor, keys, self._param(plan, first, window.cursor, tz), key_values)

    def _frames(self, stream: StreamSpec, plan: _Plan, stmt: sa.Select[Any],
                names: Sequence[str]) -> Iterator[pd.DataFrame]:
        tz, position, killed = stream_zone(self.name, stream), 0, threading.Event()
        try:
            with self.engine.connect() as conn:
                conn.execution_options(stream_results=True, yield_per=stream.batch_size, **{STREAM: True})
                with self._bounded(conn, killed):
                    result = conn.execute(stmt)
                # The result closes before the connection: MySQL's unbuffered cursor must be drained
                # first when a reader stops early.
                with result:
                    batches = result.partitions()
                    while True:
                        with self._bounded(conn, killed):
                            rows = next(batches, None)
                        if rows is None:
                            break
                        yield self._frame(stream, plan, names, rows, position, tz)
                        position += len(rows)
        except sa.exc.DBAPIError as exc:
            raise self._source_error(exc, stream, killed=killed.is_set()) from None

    @contextmanager
    def _bounded(self, conn: sa.Connection, killed: threading.Event) -> Iterator[None]:
        """One wait on the database in a streamed read (executing, or fetching the next batch), ended
        after ``statement_timeout_seconds``; the time the caller spends on a batch does not count."""
        limit = self.options.statement_timeout_seconds
        dbapi_conn: Any = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, SqliteConnection):
            dbapi_conn.deadline.at = time.monotonic() + limit
            try:
                yield
            finally:
                dbapi_conn.deadline.at = math.inf
        elif self.backend == "mysql":
            timer = threading.Timer(limit, self._kill_query, (dbapi_conn.thread_id(), killed))
            timer.daemon = True
            timer.start()
            try:
                yield
            finally:
                timer.cancel()
                timer.join()  # a kill under way lands on this wait, never on a later statement
        else:
            yield  # PostgreSQL: statement_timeout bounds the DECLARE and each FETCH of the cursor

    def _kill_query(self, thread_id: int, killed: threading.Event) -> None:
        killed.set()
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(f"KILL QUERY {int(thread_id)}")
        except sa.exc.SQLAlchemyError:
            pass  # pymysql's read_timeout still ends the wait

    def _frame(self, stream: StreamSpec, plan: _Plan, names: Sequence[str], rows: Sequence[Any],
               position: int, tz: ZoneInfo) -> pd.DataFrame:
        import pandas as pd

        where = f"source {self.name!r}, stream {stream.name!r}"
        data: dict[str, pd.Series] = {}
        for name, values in zip(names, zip(*rows, strict=True) if rows else [()] * len(names), strict=True):
            col = plan.cols[name]
            try:
                data[name] = series(values, col, tz)
            except BAD_VALUE as exc:
                bad = first_bad(values, converter(col, tz))
                at = f"row {position + bad[0] + 1} holds {bad[1]!r:.60}" if bad else f"a value fails ({exc})"
                raise SourceError(f"{where}: field {name!r}: {at}, not a {col.field.type.value}",
                                  hint=f"fix the value at the source or leave the field out of `fields`; "
                                  f"{VALIDATE}") from None
        frame = pd.DataFrame(data, columns=list(names))
        if len(null := frame[list(stream.primary_key)].isna().any(axis=1).to_numpy().nonzero()[0]):
            raise SourceError(f"{where}: row {position + null[0] + 1} of this read has a NULL primary key "
                              f"({', '.join(stream.primary_key)})",
                              hint="fix the row at the source, or leave such rows out with a `query`")
        return frame

    def _source_error(self, exc: sa.exc.DBAPIError, stream: StreamSpec | None, *,
                      query: bool = False, killed: bool = False) -> SourceError:
        kind = failure_kind(exc)
        if killed and kind != "lock":  # our timer ended the wait (KILL QUERY): a statement timeout
            kind = "timeout"
        reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        if self._password:
            reason = reason.replace(self._password, "***")
        where = f"source {self.name!r}" + (f", stream {stream.name!r}" if stream else "")
        db = self.engine.url.render_as_string(hide_password=True)
        limit = self.options.statement_timeout_seconds
        raise_it = (f"raise statement_timeout_seconds (now {limit}) on source {self.name!r} in the "
                    "project file")
        if kind == "timeout":
            query = query or (stream is not None and "query" in stream.options)
            return SourceError(f"{where}: the statement timed out after {limit} s ({db}: {reason})",
                               transient=True,
                               hint=f"{raise_it}, or make the {'query' if query else 'read'} cheaper "
                               "(an index on the cursor and key columns); okrsync retries transient failures")
        if kind == "lock":
            wait = lock_wait(limit)
            return SourceError(f"{where}: waited {wait:g} s for a lock on the source table, then gave up "
                               f"({db}: {reason})", transient=True,
                               hint=f"find what holds the lock ({_LOCK_HINTS[self.backend]}), or {raise_it}; "
                               "okrsync retries transient failures")
        if kind == "transient":
            return SourceError(f"{where}: cannot reach {db}: {reason}", transient=True,
                               hint="check that the server is up and reachable from here (host, port, "
                               "firewall, VPN); okrsync retries transient failures")
        hint = ("check the user name and password (url_env / password_env) and the user's grants"
                if kind == "access" else "fix the stream's `query`" if query else VALIDATE)
        return SourceError(f"{where}: {db} refused the request: {reason}", hint=hint)


def _plan_key(stream: StreamSpec) -> str:
    return stream.name + json.dumps(stream.options, sort_keys=True, default=str)
