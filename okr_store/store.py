"""Opening the store, migrating it, and the write paths of a run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event

from okr_store import current, definitions, lease
from okr_store import models as m
from okr_store.checks import supersede_blocked
from okr_store.lease import Fence
from okr_store.opening import cannot_write, open_error, read_only_engine, sqlite_path, writable
from okr_store.records import LEASE, RID, StreamRegistry, StreamTables, SyncWriter, utcnow, visible
from okrsync.errors import StoreError
from okrsync.schema import StreamSchema

if TYPE_CHECKING:
    import pandas as pd  # imported where a sync or a check needs it: `status` and `drill` never do

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str) -> sa.Engine:
    """An engine for the store. Parameters are never echoed into logs or exception text."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            if not writable(path):  # found here, not at the first write halfway through a run
                raise cannot_write(path, "this user may not write it or its folder")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    path.touch(mode=0o600)  # the store may hold business data: owner-only
            except OSError as exc:
                raise cannot_write(path, exc.strerror or exc) from None
        engine = sa.create_engine(parsed, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        # psycopg 3 is what okrsync ships with (and what its COPY staging uses).
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "postgresql" or parsed.drivername != "postgresql+psycopg":
        raise StoreError(
            f"unsupported store database or driver {parsed.drivername!r}",
            hint="use sqlite:///path/store.db or postgresql+psycopg://…",
        )
    return sa.create_engine(parsed, hide_parameters=True, pool_pre_ping=True)


@dataclass(frozen=True)
class ValueRecord:
    """One computed KR value, ready to be written."""

    kr_id: str
    value: Decimal | None
    reason: str | None
    records: int
    baseline: Decimal
    target: Decimal
    progress_raw: Decimal | None
    progress: Decimal | None
    expected: Decimal
    status: str
    definition_hash: str
    definition_body: str
    snapshot: Mapping[str, int | None]
    restates: int | None = None  # the close of its period (okr_store.closing): kept, never current


def _text(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _take_lease(
    conn: sa.Connection, stream: str, sync_id: int, now: datetime, fence: Fence | None = None
) -> bool:
    """Hold ``stream`` for ``sync_id`` unless a live sync holds it (an expired lease is taken over).

    A run holding the project's lease (``fence``, checked in this transaction) takes the stream
    whatever the state of its lease: any other holder is a run that lost the project, and is fenced."""
    st = m.stream_state.c
    q = m.stream_state.update().where(st.name == stream)
    if fence is None:
        q = q.where(sa.or_(st.lease_sync_id.is_(None), st.lease_until < now))
    else:
        fence.check(conn)
    until = now + (fence.lease if fence is not None else LEASE)
    taken = conn.execute(q.values(lease_sync_id=sync_id, lease_until=until, last_attempt_at=now)).rowcount
    return bool(taken)


class Store:
    """The OKR store at one URL. Cheap to open once migrated; safe to share between threads."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        """Open (and migrate) the store. With ``read_only`` (commands that only read), a store whose
        schema is current is opened without writing anything, and SQLite read-only, so it may lie in a
        directory this user cannot write (:mod:`okr_store.opening`)."""
        self.url = url
        engine = read_only_engine(url, create_engine) if read_only else None
        self.engine = engine if engine is not None else create_engine(url)
        if engine is None:
            self._migrate()
        self.streams = StreamRegistry(self.engine)

    def describe(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except sa.exc.OperationalError as exc:
            raise open_error(self.url, exc) from None

    def close(self) -> None:
        self.engine.dispose()

    # ---- definitions -------------------------------------------------------------------------
    def register_okrs(
        self,
        objectives: Iterable[Mapping[str, Any]],
        key_results: Iterable[Mapping[str, Any]],
        fence: Fence | None = None,
    ) -> None:
        """Replace the active objective tree; KRs no longer in the file stay (inactive) with history."""
        with self.engine.begin() as conn:
            if fence is not None:
                fence.check(conn)
            conn.execute(m.objective.update().values(active=False))
            conn.execute(m.key_result.update().values(active=False))
            for o in objectives:
                self._upsert(conn, m.objective, {**o, "active": True})
            for k in key_results:
                self._upsert(conn, m.key_result, {**k, "active": True})

    @staticmethod
    def _upsert(conn: sa.Connection, table: sa.Table, row: Mapping[str, Any]) -> None:
        pk = table.c.id
        if conn.execute(sa.select(pk).where(pk == row["id"])).first() is None:
            conn.execute(table.insert().values(**row))
        else:
            conn.execute(table.update().where(pk == row["id"]).values(**row))

    # ---- syncs -------------------------------------------------------------------------------
    def begin_sync(
        self,
        run_id: str,
        stream: str,
        source: str,
        primary_key: tuple[str, ...],
        schema: StreamSchema,
        *,
        reconcile: bool,
        fence: Fence | None = None,
    ) -> SyncWriter:
        """Start a sync of ``stream``; fails if another live sync holds it (without ``fence``)."""
        tables = self.streams.ensure(stream, source, primary_key, schema)
        now = utcnow()
        with self.engine.begin() as conn:
            wm = conn.execute(
                sa.select(m.stream_state.c.watermark).where(m.stream_state.c.name == stream)
            ).scalar()
            sync_id = conn.execute(
                m.sync_run.insert().values(
                    run_id=run_id,
                    stream=stream,
                    started_at=now,
                    status="running",
                    rows_read=0,
                    keys_read=0,
                    inserted=0,
                    updated=0,
                    deleted=0,
                    watermark_before=wm,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            st = m.stream_state.c
            if not _take_lease(conn, stream, sync_id, now, fence):
                holder = conn.execute(
                    sa.select(st.lease_sync_id, st.lease_until).where(st.name == stream)
                ).one()
                raise StoreError(
                    f"stream {stream!r} is being synced by sync {holder[0]} (lease until "
                    f"{holder[1]:%Y-%m-%d %H:%M} UTC)",
                    hint="wait for that run to finish; a crashed run's lease expires by itself",
                )
        # Leftovers of a sync that died without cleaning up, or that a check blocked, are never
        # applied once a newer sync of the stream starts: drop them.
        with self.engine.begin() as conn:
            sr = m.sync_run.c
            conn.execute(
                m.sync_run.update()
                .where(sr.stream == stream, sr.status == "blocked", sr.id < sync_id)
                .values(status="superseded")
            )
            supersede_blocked(conn, stream, sync_id)
            conn.execute(tables.stage.delete().where(tables.stage.c._sync < sync_id))
            conn.execute(tables.keys.delete().where(tables.keys.c._sync < sync_id))
            conn.execute(tables.gone.delete().where(tables.gone.c._sync < sync_id))
        return SyncWriter(self.engine, stream, int(sync_id), tables, reconcile, fence)

    def sync_writer(self, stream: str, sync_id: int, reconcile: bool, fence: Fence | None) -> SyncWriter:
        """Another writer of a sync that :meth:`begin_sync` opened (a partition task, any process)."""
        tables = self.streams.tables(stream)
        if tables is None:
            raise StoreError(f"stream {stream!r} has no tables in the store", hint="run again")
        return SyncWriter(self.engine, stream, sync_id, tables, reconcile, fence)

    def staged(self, stream: str, sync_id: int, chunk: int = 50_000) -> Iterator[pd.DataFrame]:
        """The rows a sync staged (``_rid`` and the fields), in chunks, as a check would see them."""
        import pandas as pd

        tables = self.streams.tables(stream)
        assert tables is not None
        stg = tables.stage
        cols = [stg.c[RID], *(stg.c[f.name] for f in tables.schema.fields)]
        q = sa.select(*cols).where(stg.c._sync == sync_id).order_by(stg.c[RID])
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=chunk).execute(q)
            for part in result.partitions(chunk):
                yield pd.DataFrame([tuple(r) for r in part], columns=[c.name for c in cols])

    def reconcile_due(self, stream: str, every_hours: float) -> bool:
        """Whether this sync of ``stream`` should compare every key with the source (deletions)."""
        if every_hours <= 0:
            return True
        st = m.stream_state.c
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(st.last_reconcile_at).where(st.name == stream)).scalar()
        return last is None or utcnow() - last >= timedelta(hours=every_hours)

    def resume_sync(self, sync_id: int, fence: Fence | None = None) -> tuple[SyncWriter, str | None]:
        """The writer of a sync a check blocked, to commit its staged rows after all (admin accept)."""
        sr = m.sync_run.c
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(m.sync_run).where(sr.id == sync_id)).first()
            if row is None or row.status != "blocked":
                state = "unknown" if row is None else row.status
                raise StoreError(
                    f"sync {sync_id} is {state}, not blocked: there is nothing to accept",
                    hint="`okrsync checks --failed` shows what is still blocked",
                )
            if not _take_lease(conn, row.stream, sync_id, now, fence):
                raise StoreError(
                    f"stream {row.stream!r} is being synced right now",
                    hint="wait for that run to finish, then accept again",
                )
        tables = self.streams.tables(row.stream)
        assert tables is not None
        with self.engine.connect() as conn:
            has_keys = (
                conn.execute(
                    sa.select(tables.keys.c._sync).where(tables.keys.c._sync == sync_id).limit(1)
                ).first()
                is not None
            )
        writer = SyncWriter(self.engine, row.stream, sync_id, tables, has_keys, fence)
        writer.rows_read, writer.keys_read = row.rows_read, row.keys_read
        return writer, row.watermark_after

    def watermark(self, stream: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(m.stream_state.c.watermark).where(m.stream_state.c.name == stream)
            ).scalar()

    def snapshot(self, streams: Iterable[str]) -> dict[str, int | None]:
        """The last committed sync of each stream: what a value computed now stands on."""
        names = list(streams)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(m.stream_state.c.name, m.stream_state.c.last_sync_id).where(
                    m.stream_state.c.name.in_(names)
                )
            ).all()
        found = {r.name: r.last_sync_id for r in rows}
        return {n: found.get(n) for n in names}

    def view(self, stream: str, sync_id: int | None) -> tuple[sa.FromClause, StreamTables] | None:
        """The records of ``stream`` visible at ``sync_id`` as a subquery (None: never synced)."""
        tables = self.streams.tables(stream)
        if tables is None:
            return None
        rec = tables.records
        return sa.select(rec).where(visible(rec, sync_id)).subquery(f"v_{rec.name}"), tables

    def blocked_streams(self) -> dict[str, str]:
        """Streams whose latest sync a check blocked, with the reason."""
        sr = m.sync_run.c
        latest = sa.select(sr.stream, sa.func.max(sr.id).label("id")).group_by(sr.stream).subquery()
        q = sa.select(sr.stream, sr.error).join(latest, latest.c.id == sr.id).where(sr.status == "blocked")
        with self.engine.connect() as conn:
            return {r.stream: r.error or "blocked by a failed check" for r in conn.execute(q)}

    def last_values(self, kr_ids: Iterable[str], as_of: datetime | None = None) -> dict[str, Decimal | None]:
        """Each KR's current value, or with ``as_of`` its value as of that time (a back-fill's
        neighbour). None: never computed, or no value."""
        found = self._values(kr_ids, as_of)
        return {k: None if r.value is None else Decimal(r.value) for k, r in found.items()}

    def last_statuses(self, kr_ids: Iterable[str], as_of: datetime | None = None) -> dict[str, str]:
        """The status (on_track, at_risk, …) of each KR's current value (or its value as of ``as_of``)."""
        return {k: r.status for k, r in self._values(kr_ids, as_of).items()}

    def _values(self, kr_ids: Iterable[str], as_of: datetime | None) -> dict[str, Any]:
        ids = list(kr_ids)
        with self.engine.connect() as conn:
            if as_of is not None:
                return current.values_as_of(conn, ids, as_of)
            k, v = m.key_result.c, m.kr_value.c
            q = sa.select(k.id.label("kr_id"), v.value, v.status).join(m.kr_value, v.id == k.last_value_id)
            return {r.kr_id: r for r in conn.execute(q.where(k.id.in_(ids)))}

    # ---- runs and values ---------------------------------------------------------------------
    def start_run(self, as_of: datetime, flow_run_id: str | None) -> str:
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                m.run.insert().values(
                    id=run_id, flow_run_id=flow_run_id, started_at=utcnow(), as_of=as_of, status="running"
                )
            )
        return run_id

    def begin_run(
        self,
        as_of: datetime,
        flow_run_id: str | None,
        *,
        lease_seconds: float,
        wait_seconds: float,
        on_wait: Callable[[str], None] | None = None,
    ) -> Fence:
        """Take the project's run lease (waiting for a live run to finish) and open a run row."""
        return lease.acquire(
            self.engine,
            uuid.uuid4().hex,
            as_of=as_of,
            flow_run_id=flow_run_id,
            lease_seconds=lease_seconds,
            wait_seconds=wait_seconds,
            on_wait=on_wait,
        )

    def end_run(self, fence: Fence, status: str, error: str | None = None) -> None:
        """Close the run row and give the lease back."""
        self.finish_run(fence.run_id, status, error)
        lease.release(self.engine, fence)

    def abandon_run(self, run_id: str, why: str, *, status: str = "failed") -> None:
        """Close a run that will not finish (interrupted, crashed, cancelled) and free what it held."""
        with self.engine.begin() as conn:
            lease.abandon(conn, run_id, why, status=status)

    def runs_of_flow_run(self, flow_run_id: str) -> list[str]:
        """The still-running runs a Prefect flow run opened."""
        r = m.run.c
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(r.id).where(r.flow_run_id == flow_run_id,
                                                           r.status == "running")).scalars())

    def finish_run(
        self, run_id: str, status: str, error: str | None = None, *, if_open: bool = False
    ) -> None:
        """Close the run row (``if_open``: unless something else closed it already, with its reason)."""
        with self.engine.begin() as conn:
            q = m.run.update().where(m.run.c.id == run_id)
            if if_open:
                q = q.where(m.run.c.status == "running")
            conn.execute(q.values(status=status, error=error, finished_at=utcnow()))

    def record_values(
        self,
        run_id: str,
        flow_run_id: str | None,
        as_of: datetime,
        values: Iterable[ValueRecord],
        held: Mapping[str, str],
        fence: Fence | None = None,
        then: Callable[[sa.Connection, list[int]], object] | None = None,
    ) -> list[int]:
        """Write all values of a run in one transaction; mark ``held`` KRs (kept at last good value).

        A value that ``restates`` a closed period is kept for its lineage but never made current.
        ``then`` runs last in the same transaction with the new value ids (closing due periods).

        A back-fill (a run as of an earlier time than another run of the store) records its values
        without making them current over newer ones and leaves held flags alone (see
        :mod:`okr_store.current`). With ``fence``, nothing is written unless the run still holds the
        project's lease."""
        now = utcnow()
        ids: list[int] = []
        with self.engine.begin() as conn:
            if fence is not None:
                fence.check(conn)
            backfill = current.is_backfill(conn, run_id, as_of)
            # in bulk: a few statements per run, not five per value (100 KRs: ~500 round trips)
            values = list(values)
            definitions.keep_all(conn, [(v.kr_id, v.definition_hash, v.definition_body) for v in values])
            definitions.registered_by_runs(conn, [(v.kr_id, v.definition_hash) for v in values],
                                           backfill=backfill)
            rows = [
                {
                    "kr_id": v.kr_id,
                    "run_id": run_id,
                    "flow_run_id": flow_run_id,
                    "value": _text(v.value),
                    "reason": v.reason,
                    "records": v.records,
                    "baseline": str(v.baseline),
                    "target": str(v.target),
                    "progress_raw": _text(v.progress_raw),
                    "progress": _text(v.progress),
                    "expected": str(v.expected),
                    "status": v.status,
                    "as_of": as_of,
                    "computed_at": now,
                    "definition_hash": v.definition_hash,
                    "snapshot": json.dumps(dict(v.snapshot), sort_keys=True),
                    "restates": v.restates,
                }
                for v in values
            ]
            if rows:
                insert = m.kr_value.insert().returning(m.kr_value.c.id, sort_by_parameter_order=True)
                ids = [int(i) for i in conn.execute(insert, rows).scalars()]
            current.promote_all(conn, [(v.kr_id, i) for v, i in zip(values, ids, strict=True)
                                       if v.restates is None], as_of)
            if not backfill and values:
                conn.execute(m.key_result.update().where(m.key_result.c.id.in_({v.kr_id for v in values}))
                             .values(held_reason=None, held_since=None))
            for kr_id, reason in ({} if backfill else held).items():
                kr = m.key_result.c
                conn.execute(
                    m.key_result.update()
                    .where(kr.id == kr_id)
                    .values(held_reason=reason, held_since=sa.func.coalesce(kr.held_since, now))
                )
            if then is not None:
                then(conn, ids)
        return ids
