"""Versioned copies of source records: the ground lineage stands on.

Each stream has a record table ``rec_<stream>`` with one row per *version* of a source record:
``_rid`` (record id), ``_from`` (the sync that made it current), ``_to`` (the sync that replaced or
deleted it, NULL while current), ``_hash`` (of its kept fields), then the fields in typed columns.
A KR value stores, per stream, the sync id it was computed at (its *snapshot*); the records visible at
snapshot ``s`` are those with ``_from <= s < coalesce(_to, ∞)``. A record is stored again only when it
changes, so an hourly run over 10M unchanged rows adds nothing, and any past value can still be drilled
into after the source changes or deletes its records.

A sync stages its batches (short transactions, so several streams can read concurrently) and applies
them in one transaction: close changed and deleted versions, insert new ones, advance the watermark.
A sync that fails before ``commit`` changes nothing visible.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.arrow_text import row_hashes
from okr_store.columns import column_type
from okr_store.digests import StoreKeyDigests, apply_commit
from okr_store.staging import RID, among, write_staged
from okr_store.statistics import refresh_statistics
from okrsync.errors import LeaseLost, StoreError
from okrsync.schema import Field, StreamSchema

if TYPE_CHECKING:
    import pandas as pd  # at run time only where a sync needs it: `status` and `drill` never do

    from okr_store.lease import Fence

LEASE = timedelta(minutes=15)
FROM, TO, HASH = "_from", "_to", "_hash"  # and RID, from okr_store.staging


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def table_name(prefix: str, stream: str) -> str:
    """A safe, bounded SQL identifier for a stream's table (never user text in SQL as such)."""
    slug = re.sub(r"[^a-z0-9_]", "_", stream.lower())[:40]
    digest = hashlib.sha1(stream.encode()).hexdigest()[:8]
    return f"{prefix}_{slug}_{digest}"


def record_table(name: str, schema: StreamSchema, metadata: sa.MetaData | None = None) -> sa.Table:
    md = metadata or sa.MetaData()
    cols = [sa.Column(f.name, column_type(f)) for f in schema.fields]
    return sa.Table(
        name,
        md,
        sa.Column(RID, sa.String(512), primary_key=True),
        sa.Column(FROM, sa.BigInteger, primary_key=True),
        sa.Column(TO, sa.BigInteger, nullable=True),
        sa.Column(HASH, sa.String(16), nullable=False),
        *cols,
        sa.Index(f"ix_{name}_to", TO),
        sa.Index(f"ix_{name}_from", FROM),
    )


# Staged rows live for one sync and are rebuilt from the source after a crash: on PostgreSQL their
# tables skip the write-ahead log.
def _scratch(unlogged: bool) -> dict[str, Any]:
    return {"prefixes": ["UNLOGGED"]} if unlogged else {}


def stage_table(
    name: str, schema: StreamSchema, metadata: sa.MetaData | None = None, *, unlogged: bool = False
) -> sa.Table:
    md = metadata or sa.MetaData()
    cols = [sa.Column(f.name, column_type(f)) for f in schema.fields]
    return sa.Table(
        name,
        md,
        sa.Column("_sync", sa.BigInteger, primary_key=True),
        sa.Column(RID, sa.String(512), primary_key=True),
        sa.Column(HASH, sa.String(16), nullable=False),
        *cols,
        **_scratch(unlogged),
    )


def keys_table(name: str, metadata: sa.MetaData | None = None, *, unlogged: bool = False) -> sa.Table:
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        sa.Column("_sync", sa.BigInteger, primary_key=True),
        sa.Column(RID, sa.String(512), primary_key=True),
        **_scratch(unlogged),
    )


def visible(table: sa.Table, sync_id: int | None) -> sa.ColumnElement[bool]:
    """Versions current at snapshot ``sync_id`` (nothing when the stream never synced)."""
    if sync_id is None:
        return sa.false()
    return sa.and_(table.c[FROM] <= sync_id, sa.or_(table.c[TO].is_(None), table.c[TO] > sync_id))


@dataclass(frozen=True)
class SyncCounts:
    rows_read: int
    keys_read: int
    inserted: int
    updated: int
    deleted: int
    api_calls: int | None = None  # for sources that count calls against a budget
    # What the user should know about this read: records dated in the future, open transactions the
    # source would not show (see connectors.horizon). Kept on the stream until the next commit.
    warning: str | None = None


@dataclass(frozen=True)
class StreamTables:
    records: sa.Table
    stage: sa.Table
    keys: sa.Table  # ids of every live source record (reconciliation)
    gone: sa.Table  # ids the source reported deleted (tombstones)
    schema: StreamSchema


def _ensure_columns(
    conn: sa.Connection, table: sa.Table, old: StreamSchema, new: StreamSchema, stream: str
) -> None:
    """Schema evolution: a new source field becomes a new nullable column; old versions keep theirs."""
    for f in new.fields:
        before = old.get(f.name)
        if before is None:
            col = sa.Column(f.name, column_type(f))
            ddl = sa.schema.CreateColumn(col).compile(dialect=conn.dialect)
            conn.execute(
                sa.text(f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table.name)} ADD COLUMN {ddl}")
            )
        elif before.type != f.type or (before.scale or 0) > (f.scale or 0):
            raise StoreError(
                f"stream {stream!r}: field {f.name!r} changed type at the source ({before.type}"
                f"{'' if before.scale is None else f'({before.scale})'} → {f.type})",
                hint="keep the old column under a new name in a query stream, or rename the stream "
                "to start a fresh history for it",
            )


def merge_schema(old: StreamSchema, new: StreamSchema) -> StreamSchema:
    """Fields ever seen, in first-seen order: old versions keep the columns of dropped fields."""
    extra = tuple(f for f in new.fields if f.name not in old)
    kept = tuple(new.get(f.name) or f for f in old.fields)
    return StreamSchema(tuple(Field(f.name, f.type, f.scale) for f in kept + extra))


class StreamRegistry:
    """Creates and finds the per-stream tables, recording their layout in ``stream_state``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.unlogged = engine.dialect.name == "postgresql"
        self._cache: dict[str, StreamTables] = {}

    def tables(self, stream: str) -> StreamTables | None:
        if stream in self._cache:
            return self._cache[stream]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(m.stream_state).where(m.stream_state.c.name == stream)).first()
        if row is None:
            return None
        return self._build(stream, row.record_table, StreamSchema.from_json(json.loads(row.schema)))

    def _build(self, stream: str, name: str, schema: StreamSchema) -> StreamTables:
        md = sa.MetaData()
        t = StreamTables(
            record_table(name, schema, md),
            stage_table("stg" + name[3:], schema, md, unlogged=self.unlogged),
            keys_table("key" + name[3:], md, unlogged=self.unlogged),
            keys_table("del" + name[3:], md, unlogged=self.unlogged),
            schema,
        )
        self._cache[stream] = t
        return t

    def ensure(
        self, stream: str, source: str, primary_key: tuple[str, ...], schema: StreamSchema
    ) -> StreamTables:
        """Create the stream's tables on first sync; add columns for new source fields later."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(m.stream_state).where(m.stream_state.c.name == stream)).first()
            if row is None:
                name = table_name("rec", stream)
                conn.execute(
                    m.stream_state.insert().values(
                        name=stream,
                        source=source,
                        record_table=name,
                        primary_key=json.dumps(primary_key),
                        schema=json.dumps(schema.to_json()),
                    )
                )
                merged = schema
            else:
                name = row.record_table
                old = StreamSchema.from_json(json.loads(row.schema))
                if json.loads(row.primary_key) != list(primary_key):
                    raise StoreError(
                        f"stream {stream!r}: primary key changed from {json.loads(row.primary_key)} "
                        f"to {list(primary_key)}",
                        hint="record ids would no longer match their history; rename the stream to "
                        "start a fresh history",
                    )
                merged = merge_schema(old, schema)
                if merged != old:
                    tables = self._build(stream, name, old)
                    for t in (tables.records, tables.stage):
                        _ensure_columns(conn, t, old, merged, stream)
                    conn.execute(
                        m.stream_state.update()
                        .where(m.stream_state.c.name == stream)
                        .values(schema=json.dumps(merged.to_json()))
                    )
            self._cache.pop(stream, None)
            tables = self._build(stream, name, merged)
            tables.records.metadata.create_all(conn)
        return tables


# The re-read rows whose live version has another hash, or none. One index probe per row (LATERAL):
# an IN list or a join of a few thousand ids made PostgreSQL scan the whole record table, and a
# re-read (the lookback) costs in proportion to the rows re-read, not to the stream. Only the
# changed ids come back.
_FRESH_PG = """SELECT t.rid FROM unnest(CAST(:ids AS text[]), CAST(:hashes AS text[])) AS t(rid, h)
LEFT JOIN LATERAL (SELECT r._hash FROM {table} AS r WHERE r._rid = t.rid AND r._to IS NULL LIMIT 1)
AS live ON true WHERE live._hash IS DISTINCT FROM t.h"""


def _quoted(conn: sa.Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.quote(table.name)


class Vetoed(Exception):
    """A commit gate refused the change; nothing was applied."""


class SyncWriter:
    """One sync of one stream: stage batches, then ``commit`` (atomic) or ``fail``."""

    def __init__(
        self,
        engine: sa.Engine,
        stream: str,
        sync_id: int,
        tables: StreamTables,
        reconcile: bool,
        fence: Fence | None = None,
    ) -> None:
        self.engine, self.stream, self.sync_id, self.tables = engine, stream, sync_id, tables
        self.reconcile = reconcile
        self.fence = fence  # the run's lease: checked in the commit's own transaction
        self.lease = fence.lease if fence is not None else LEASE
        self.rows_read = 0
        self.keys_read = 0
        self.tombstones_read = 0
        self._nothing_live: bool | None = None  # no live version when keys were first staged
        self.api_calls: int | None = None  # set by the caller before commit/block/fail
        self.warning: str | None = None  # set by the caller before commit (SyncCounts.warning)
        self.keys_compared = False  # set by the caller: every key was compared by digests (deletes)

    def _lost(self, conn: sa.Connection) -> LeaseLost:
        holder = conn.execute(
            sa.select(m.stream_state.c.lease_sync_id).where(m.stream_state.c.name == self.stream)
        ).scalar()
        return LeaseLost(
            f"stream {self.stream!r}: sync {self.sync_id} no longer holds the stream"
            + (f" (sync {holder} does now)" if holder else "") + "; it changes nothing more",
            hint="the run stalled past its lease and a newer run took over; the newer run's data stands",
        )

    def _renew_lease(self, conn: sa.Connection) -> None:
        """Keep the stream while staging; a sync that lost it stops here instead of reading on."""
        renewed = conn.execute(
            m.stream_state.update()
            .where(m.stream_state.c.name == self.stream)
            .where(m.stream_state.c.lease_sync_id == self.sync_id)
            .values(lease_until=utcnow() + self.lease)
        ).rowcount
        if renewed != 1:
            raise self._lost(conn)

    def stage(self, batch: pd.DataFrame) -> None:
        """Stage a batch: columns ``_rid`` plus the stream's fields."""
        if batch.empty:
            return
        fields = tuple(c for c in batch.columns if c != RID)
        staged = batch.assign(**{HASH: row_hashes(batch, fields), "_sync": self.sync_id})
        with self.engine.begin() as conn:
            write_staged(conn, self.tables.stage, staged, replace=True)
            self._renew_lease(conn)
        self.rows_read += len(batch)

    def changed(self, batch: pd.DataFrame) -> pd.Series:
        """Which rows of a batch (``_rid`` plus fields, as :meth:`stage` takes it) differ from their
        live version or have none: a re-read (lookback, open transactions) stages only those."""
        import pandas as pd

        hashes = row_hashes(batch, tuple(c for c in batch.columns if c != RID))
        rec, ids = self.tables.records, batch[RID].tolist()
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                fresh = set(conn.execute(sa.text(_FRESH_PG.format(table=_quoted(conn, rec))),
                                         {"ids": ids, "hashes": hashes.tolist()}).scalars().all())
                return pd.Series(batch[RID].isin(fresh).to_numpy(), index=batch.index)
            live: dict[str, str] = {}
            for listed in among(rec.c[RID], ids, conn.dialect.name, 5000):
                current = sa.and_(rec.c[TO].is_(None), listed)
                live.update(conn.execute(sa.select(rec.c[RID], rec.c[HASH]).where(current)).tuples().all())
        before = batch[RID].map(live).to_numpy(dtype=object)  # None/NaN where no live version
        return pd.Series(hashes.to_numpy(dtype=object) != before, index=batch.index)

    def stage_keys(self, rids: pd.Series) -> None:
        """Stage the ids of every live source record (for hard-delete detection). While the stream has
        no live version (its first sync) there is nothing a key could keep from deletion: the keys are
        counted, not written (a first sync wrote every id twice, for nothing)."""
        if rids.empty:
            return
        import pandas as pd

        if self._nothing_live is None:
            rec = self.tables.records
            with self.engine.connect() as conn:  # this sync's own versions appear only at its commit
                live = conn.execute(sa.select(rec.c[RID]).where(rec.c[TO].is_(None)).limit(1)).first()
            self._nothing_live = live is None
        if self._nothing_live:
            with self.engine.begin() as conn:
                self._renew_lease(conn)
            self.keys_read += len(rids.drop_duplicates())
            return
        keys = pd.DataFrame({"_sync": self.sync_id, RID: rids.drop_duplicates().to_numpy()})
        with self.engine.begin() as conn:
            write_staged(conn, self.tables.keys, keys, replace=False)
            self._renew_lease(conn)
        self.keys_read += len(keys)

    def key_digests(self, positional: bool) -> StoreKeyDigests:
        """Digests of the live records plus the new ones this sync staged (:mod:`okr_store.digests`)."""
        return StoreKeyDigests(self.engine, self.stream, self.tables.records, self.tables.stage, self.sync_id,
                               positional)

    def stage_deleted(self, rids: pd.Series) -> None:
        """Stage the ids of records the source reports deleted since the last sync (tombstones)."""
        if rids.empty:
            return
        import pandas as pd

        gone = pd.DataFrame({"_sync": self.sync_id, RID: rids.drop_duplicates().to_numpy()})
        with self.engine.begin() as conn:
            write_staged(conn, self.tables.gone, gone, replace=False)
            self._renew_lease(conn)
        self.tombstones_read += len(gone)

    def commit(self, watermark: str | None, gate: Callable[[int, int], bool] | None = None) -> SyncCounts:
        """Apply the staged rows in one transaction and advance the watermark with them.

        ``gate(live_before, live_after)`` sees the stream's live record count before and after the
        change, inside the transaction; if it returns False nothing is applied and :class:`Vetoed`
        is raised (the staged rows stay)."""
        rec, stg, keys, gone, s = (self.tables.records, self.tables.stage, self.tables.keys, self.tables.gone,
                                   self.sync_id)
        staged = sa.select(stg).where(stg.c._sync == s).subquery()
        with self.engine.begin() as conn:
            # Fencing: first, in this very transaction, check that the run still holds the project and
            # this sync the stream; a run that stalled past its lease changes nothing.
            if self.fence is not None:
                self.fence.check(conn)
            self._renew_lease(conn)
            live_before = 0
            if gate is not None:
                count_live = sa.select(sa.func.count()).select_from(rec).where(rec.c[TO].is_(None))
                live_before = conn.execute(count_live).scalar_one()
            changed = sa.exists().where(
                stg.c._sync == s, stg.c[RID] == rec.c[RID], stg.c[HASH] != rec.c[HASH]
            )
            updated = conn.execute(rec.update().where(rec.c[TO].is_(None), changed).values({TO: s})).rowcount
            current = sa.exists().where(rec.c[RID] == staged.c[RID], rec.c[TO].is_(None))
            names = [f.name for f in self.tables.schema.fields]
            new_rows = sa.select(
                staged.c[RID], sa.literal(s, sa.BigInteger), staged.c[HASH], *[staged.c[n] for n in names]
            ).where(~current)
            # Counted before inserting: INSERT … SELECT reports no row count on some drivers.
            inserted = conn.execute(sa.select(sa.func.count()).select_from(new_rows.subquery())).scalar_one()
            conn.execute(rec.insert().from_select([RID, FROM, HASH, *names], new_rows))
            deleted = 0
            if self.reconcile:
                live = sa.exists().where(keys.c._sync == s, keys.c[RID] == rec.c[RID])
                deleted = conn.execute(
                    rec.update().where(rec.c[TO].is_(None), rec.c[FROM] < s, ~live).values({TO: s})
                ).rowcount
            # Tombstones close the current version, unless this sync read the record again (undeleted).
            reported = sa.exists().where(gone.c._sync == s, gone.c[RID] == rec.c[RID])
            deleted += conn.execute(
                rec.update().where(rec.c[TO].is_(None), rec.c[FROM] < s, reported).values({TO: s})
            ).rowcount
            apply_commit(conn, self.stream, rec, s)  # the stored key digests follow, in this transaction
            if gate is not None and not gate(live_before, live_before + inserted - updated - deleted):
                raise Vetoed()  # leaving the block rolls everything above back
            conn.execute(stg.delete().where(stg.c._sync == s))
            conn.execute(keys.delete().where(keys.c._sync == s))
            conn.execute(gone.delete().where(gone.c._sync == s))
            now = utcnow()
            values: dict[str, object] = dict(
                last_sync_id=s,
                last_success_at=now,
                last_attempt_at=now,
                last_error=None,
                lease_sync_id=None,
                lease_until=None,
                read_warning=self.warning,
            )
            if watermark is not None:
                values["watermark"] = watermark
            if self.reconcile or self.keys_compared:
                values["last_reconcile_at"] = now
            st = m.stream_state.c
            if conn.execute(
                m.stream_state.update().where(st.name == self.stream, st.lease_sync_id == s).values(**values)
            ).rowcount != 1:
                raise self._lost(conn)
            counts = SyncCounts(self.rows_read, self.keys_read, inserted - updated, updated, deleted,
                                self.api_calls, self.warning)
            conn.execute(
                m.sync_run.update()
                .where(m.sync_run.c.id == s)
                .values(
                    status="committed",
                    finished_at=now,
                    rows_read=counts.rows_read,
                    keys_read=counts.keys_read,
                    inserted=counts.inserted,
                    updated=counts.updated,
                    deleted=counts.deleted,
                    api_calls=counts.api_calls,
                    watermark_after=watermark,
                )
            )
        refresh_statistics(self.engine, rec, inserted + updated + deleted)  # versions added and closed
        return counts

    def block(self, watermark: str | None, reason: str) -> None:
        """A blocking check failed: keep the staged rows (an admin may accept them), change nothing
        visible, and leave the watermark where it was."""
        with self.engine.begin() as conn:
            self._end(conn, "blocked", reason, watermark_after=watermark)

    def fail(self, error: str) -> None:
        """Drop what was staged; the stream's visible records and watermark stay as they were."""
        stg, keys, gone, s = self.tables.stage, self.tables.keys, self.tables.gone, self.sync_id
        with self.engine.begin() as conn:
            conn.execute(stg.delete().where(stg.c._sync == s))
            conn.execute(keys.delete().where(keys.c._sync == s))
            conn.execute(gone.delete().where(gone.c._sync == s))
            self._end(conn, "failed", error)

    def end_lost(self, error: str) -> None:
        """This sync lost its stream to a newer one: close its own row, touch nothing shared (the
        newer sync drops the staged rows of older ones)."""
        with self.engine.begin() as conn:
            conn.execute(
                m.sync_run.update().where(m.sync_run.c.id == self.sync_id).values(
                    status="failed", finished_at=utcnow(), error=error, rows_read=self.rows_read
                )
            )

    def _end(self, conn: sa.Connection, status: str, error: str, **sync_values: Any) -> None:
        """Release the stream and record how this sync ended (without committing its rows)."""
        now = utcnow()
        conn.execute(  # only while this sync still holds the stream: a newer sync's state is not ours
            m.stream_state.update()
            .where(m.stream_state.c.name == self.stream, m.stream_state.c.lease_sync_id == self.sync_id)
            .values(last_attempt_at=now, last_error=error, lease_sync_id=None, lease_until=None)
        )
        conn.execute(
            m.sync_run.update()
            .where(m.sync_run.c.id == self.sync_id)
            .values(
                status=status,
                finished_at=now,
                rows_read=self.rows_read,
                keys_read=self.keys_read,
                api_calls=self.api_calls,
                error=error,
                **sync_values,
            )
        )
