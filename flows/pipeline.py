"""The steps of a run as plain functions (the Prefect flow in :mod:`flows.okr_flow` wraps them).

* :func:`sync_stream` — read a stream from its connector strictly after its watermark, stage the
  batches, reconcile keys, commit atomically (or drop everything staged on failure).

Computing the values from the synced streams is :mod:`flows.compute`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    SourceConnector,
    StreamSpec,
    Watermark,
    cursor_values,
    deletion_policy,
    record_ids,
    typed_watermark,
)
from connectors.horizon import FutureRows, Horizon, future_rows, next_watermark
from flows import progress
from flows.deletes import stage_deletes
from flows.gate import StreamGate
from okr_store.lease import Fence
from okr_store.order_index import ensure_order_index
from okr_store.ranking import order_fields
from okr_store.records import RID, SyncCounts, SyncWriter, Vetoed
from okr_store.store import Store
from okrsync.errors import CheckFailed, ConfigError, LeaseLost, OkrsyncError, SourceError
from okrsync.project import Project, metric_problems
from okrsync.project_bindings import effective_stream, kr_definitions
from okrsync.schema import Field, FieldType, StreamSchema

log = logging.getLogger("okrsync.pipeline")


@dataclass(frozen=True)
class StreamOutcome:
    stream: str
    ok: bool
    counts: SyncCounts | None
    error: str | None


@dataclass(frozen=True)
class SyncPlan:
    """One sync of one stream, decided once when it starts (picklable: partition tasks get it)."""

    stream: StreamSpec  # with the company timezone filled in
    kept: tuple[str, ...]
    kept_schema: StreamSchema
    since: Watermark | None
    spec: str
    reconcile: bool
    deletes: str
    sync_id: int
    run_id: str
    horizon: Horizon | None = None  # the source's clock and oldest open transaction, before reading
    digests: bool = False  # deletes found by key-range digests (flows.deletes), not by reading every key

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def cursor_type(self) -> FieldType | None:
        """The type of the stream's (first) cursor field, None without a cursor."""
        found = self.kept_schema.get(self.stream.cursor[0]) if self.stream.cursor else None
        return found.type if found is not None else None

    def part(self, index: int) -> StreamSpec:
        """The stream as partition ``index`` reads it."""
        assert self.stream.partitions is not None
        return self.stream.model_copy(update={"partition_range": self.stream.partitions.ranges()[index]})


@dataclass(frozen=True)
class PartRead:
    """What one read (a whole stream, or one partition) staged."""

    rows_read: int
    keys_read: int
    last: tuple[Any, tuple[Any, ...]] | None  # (cursor, key) of the last record read, if any
    future: FutureRows = FutureRows()  # records dated ahead of the source's clock


def plan_sync(
    project: Project, store: Store, connector: SourceConnector, run_id: str, name: str,
    fence: Fence | None = None,
) -> tuple[SyncPlan, SyncWriter]:
    """Decide what this sync reads (since where, whether it reconciles keys) and open it in the store."""
    stream = effective_stream(project, name)
    schema = connector.schema(stream)
    if problems := metric_problems(project, stream, schema):  # before reading, not a KeyError after
        raise ConfigError(
            f"stream {name!r}: nothing was read, its metrics use fields the source does not give: "
            + "; ".join(problems),
            hint="fix the project file; `okrsync validate --check-sources` checks it against the sources",
        )
    kept = stream.kept_fields(schema)
    # Sensitive fields are stored sealed (okrsync.pii): as text, whatever their type at the source.
    kept_schema = StreamSchema(tuple(Field(f.name, FieldType.STRING) if f.name in stream.sensitive else f
                                     for f in schema.fields if f.name in kept))
    if stream.partitions is not None:
        _check_partitions(connector, stream, kept_schema)
    deletes, every_hours = deletion_policy(stream, connector)
    since = typed_watermark(store.watermark(name), stream, kept_schema)
    spec = extraction_spec(stream)
    if since is not None and since.spec not in (None, spec):
        since = None  # what is extracted changed (object, filter, fields): read everything again
    # A full read lists every live record itself: reconciling against it costs nothing more. After
    # that, a source that computes key digests compares them on every sync (flows.deletes).
    digests = deletes == "reconcile" and since is not None and connector.key_digests(stream) is not None
    reconcile = deletes != "none" and not digests and (
        since is None or store.reconcile_due(name, every_hours))
    if reconcile and since is not None and connector.needs_full_refresh(stream):
        since = None  # values that change without moving the cursor (formulas): re-read them all
    # Asked before reading: what commits after this may carry a cursor older than rows read now.
    horizon = connector.horizon(stream) if stream.cursor else None
    writer = store.begin_sync(
        run_id, name, stream.source, stream.primary_key, kept_schema, reconcile=reconcile, fence=fence
    )
    plan = SyncPlan(stream, kept, kept_schema, since, spec, reconcile, deletes, writer.sync_id, run_id,
                    horizon, digests)
    return plan, writer


def _check_partitions(connector: SourceConnector, stream: StreamSpec, schema: StreamSchema) -> None:
    parts = stream.partitions
    assert parts is not None
    if not connector.supports_partitions:
        raise ConfigError(
            f"stream {stream.name!r}: source kind {connector.kind!r} cannot read partitions",
            hint="remove `partitions` from the stream (kind sql supports them)",
        )
    if parts.field not in schema:
        raise ConfigError(
            f"stream {stream.name!r}: partitions.field {parts.field!r} is not one of the stream's fields",
            hint=f"use one of: {', '.join(schema.names)}",
        )
    if parts.field in stream.sensitive:
        raise ConfigError(f"stream {stream.name!r}: partitions.field {parts.field!r} is sensitive",
                          hint="partition on a key or a date field")


def read_part(
    project: Project,
    plan: SyncPlan,
    connector: SourceConnector,
    writer: SyncWriter,
    gate: StreamGate | None = None,
    stream: StreamSpec | None = None,
) -> PartRead:
    """Read ``stream`` (the plan's, or one partition of it) strictly after the plan's watermark and
    stage what it returns, with the live keys when the sync reconciles."""
    stream = stream or plan.stream
    vault = project.vault() if stream.sensitive else None
    rows, keys = writer.rows_read, writer.keys_read
    last: tuple[Any, tuple[Any, ...]] | None = None
    future = FutureRows()
    rereading = plan.since is not None and plan.since.reread_from is not None
    for batch in connector.read(stream, plan.since):
        if batch.empty:
            continue
        batch = batch[list(plan.kept)]
        if stream.cursor:
            row = batch.iloc[-1]
            last = (cursor_values(batch.tail(1), stream).iloc[0], tuple(row[k] for k in stream.primary_key))
            if plan.horizon is not None and plan.cursor_type in (FieldType.DATETIME, FieldType.DATE):
                future += future_rows(cursor_values(batch, stream), plan.horizon)
        staged = batch.assign(**{RID: record_ids(batch, stream.primary_key)})
        sealed = vault.seal_frame(staged, stream.sensitive) if vault is not None else staged
        if rereading:  # rows read again that did not change: not staged, counted or re-judged by checks
            fresh = writer.changed(sealed).to_numpy()
            staged, sealed = staged[fresh], sealed[fresh]
        if gate is not None and not staged.empty:
            gate.observe(staged)  # checks see clear values; their samples mask sensitive ones
        writer.stage(sealed)
        if plan.reconcile and plan.since is None:
            writer.stage_keys(staged[RID])
        progress.reporter.stream_rows(plan.name, writer.rows_read)
    if plan.reconcile and plan.since is not None:
        for found in connector.keys(stream):
            writer.stage_keys(record_ids(found, stream.primary_key))
    return PartRead(writer.rows_read - rows, writer.keys_read - keys, last, future)


def latest(parts: list[PartRead]) -> tuple[Any, tuple[Any, ...]] | None:
    """The furthest (cursor, key) any part read: the watermark of the whole sync."""
    marks = [p.last for p in parts if p.last is not None]
    return max(marks, key=lambda m: (m[0], m[1])) if marks else None


def finish_sync(
    project: Project,
    store: Store,
    plan: SyncPlan,
    connector: SourceConnector,
    writer: SyncWriter,
    gate: StreamGate | None,
    last: tuple[Any, tuple[Any, ...]] | None,
    future: FutureRows = FutureRows(),
) -> SyncCounts:
    """Tombstones, then the commit (through the stream's checks, if any) with the new watermark: it
    stays behind what the source may still commit (``plan.horizon``, see connectors.horizon)."""
    stream, since = plan.stream, plan.since
    if plan.digests:
        stage_deletes(connector, stream, writer)
    if plan.deletes == "tombstones" and since is not None and connector.reports_deletions:
        for gone in connector.deleted(stream, since):
            writer.stage_deleted(record_ids(gone, stream.primary_key))
    if since is not None and not plan.reconcile:
        # Edited out of a pushed-down filter: not returned any more, so closed here (a reconciling
        # sync closes them anyway, as keys the source no longer lists).
        for left in connector.excluded(stream, since):
            writer.stage_deleted(record_ids(left, stream.primary_key))
    writer.api_calls = connector.api_calls
    watermark = None
    if last is not None and stream.cursor:
        watermark = next_watermark(last, plan.spec, plan.horizon, plan.cursor_type).to_json()
    notes = [*(plan.horizon.notes if plan.horizon else ()), future.message()]
    writer.warning = "; ".join(n for n in notes if n) or None
    if gate is None:
        counts = writer.commit(watermark)
    else:
        counts = _gated_commit(project, store, plan.run_id, writer, gate, watermark, since, future.message())
    _order_indexes(project, store, plan.name)
    return counts


def _order_indexes(project: Project, store: Store, stream: str) -> None:
    """After a commit, the indexes of the stream's shared drill orders (:mod:`okr_store.order_index`):
    built once, on the first sync's loaded table (a bulk build, cheaper than keeping an index up to date
    row by row while the first sync copies), so that the first compute walks them instead of scanning
    every record. An existence check on later syncs."""
    try:
        fields = order_fields(kr_definitions(project).values(), stream)
    except OkrsyncError:
        return  # a KR the compute will report on; ranking creates the index it needs then
    tables = store.streams.tables(stream)
    if tables is None:
        return
    for field in sorted(fields):
        ensure_order_index(store.engine, tables.records, field)


@contextmanager
def guarded(plan: SyncPlan, writer: SyncWriter, connector: SourceConnector) -> Iterator[None]:
    """Whatever fails, the stream is left as it was (staged rows dropped) and the error says why."""
    name = plan.name
    try:
        yield
    except CheckFailed as exc:
        progress.reporter.stream_finished(name, f"blocked: {exc.message}", False)
        raise
    except LeaseLost as exc:  # a newer run holds the stream: its state is not ours to touch
        writer.end_lost(str(exc))
        progress.reporter.stream_finished(name, f"stopped: {exc.message}", False)
        raise
    except OkrsyncError as exc:
        writer.api_calls = connector.api_calls
        writer.fail(str(exc))
        progress.reporter.stream_finished(name, f"failed: {exc.message}", False)
        raise
    except Exception as exc:  # an unexpected failure must still leave the stream untouched
        writer.fail(f"{type(exc).__name__}: {exc}")
        progress.reporter.stream_finished(name, f"failed: {type(exc).__name__}", False)
        raise SourceError(
            f"stream {name!r}: unexpected {type(exc).__name__}: {exc}",
            hint="run again with --debug for the traceback",
        ) from exc


def _finished(name: str, counts: SyncCounts) -> SyncCounts:
    calls = "" if counts.api_calls is None else f" · {counts.api_calls} API calls"
    progress.reporter.stream_finished(
        name,
        f"{counts.rows_read} rows read · {counts.inserted} new · {counts.updated} changed · "
        f"{counts.deleted} deleted{calls}" + (f" · ⚠ {counts.warning}" if counts.warning else ""),
        True,
    )
    return counts


def sync_stream(
    project: Project, store: Store, connector: SourceConnector, run_id: str, name: str,
    fence: Fence | None = None,
) -> SyncCounts:
    """Sync one stream; raises :class:`SourceError` (transient or not) after cleaning up.

    With ``fence`` (the run's lease), the commit changes nothing unless the run still holds it. A
    stream with ``partitions`` is read one range after another here; :mod:`flows.run` reads them in
    parallel."""
    plan, writer = plan_sync(project, store, connector, run_id, name, fence)
    progress.reporter.stream_started(name)
    gate = StreamGate(plan.stream, tuple(plan.stream.checks)) if plan.stream.checks else None
    try:
        with guarded(plan, writer, connector):
            if plan.stream.partitions is None:
                whole = read_part(project, plan, connector, writer, gate)
                last, future = whole.last, whole.future
            else:
                parts = [read_part(project, plan, connector, writer, gate, plan.part(i))
                         for i in range(len(plan.stream.partitions.ranges()))]
                last, future = latest(parts), sum((p.future for p in parts), FutureRows())
            counts = finish_sync(project, store, plan, connector, writer, gate, last, future)
    finally:
        if gate is not None:
            gate.close()
    return _finished(name, counts)


def sync_partition(
    project: Project, store: Store, connector: SourceConnector, plan: SyncPlan, index: int,
    fence: Fence | None,
) -> PartRead:
    """Read and stage partition ``index`` of a sync that :func:`plan_sync` opened (any process)."""
    writer = store.sync_writer(plan.name, plan.sync_id, plan.reconcile, fence)
    return read_part(project, plan, connector, writer, None, plan.part(index))


def finish_partitioned(
    project: Project, store: Store, connector: SourceConnector, plan: SyncPlan, parts: list[PartRead],
    fence: Fence | None,
) -> SyncCounts:
    """Commit every partition's staged rows as one snapshot. The stream's checks judge the staged
    rows of all partitions together, read back from the store (sensitive fields as sealed there)."""
    writer = store.sync_writer(plan.name, plan.sync_id, plan.reconcile, fence)
    writer.rows_read = sum(p.rows_read for p in parts)
    writer.keys_read = sum(p.keys_read for p in parts)
    gate = StreamGate(plan.stream, tuple(plan.stream.checks)) if plan.stream.checks else None
    try:
        with guarded(plan, writer, connector):
            if gate is not None:
                for staged in store.staged(plan.name, plan.sync_id):
                    gate.observe(staged)
            counts = finish_sync(project, store, plan, connector, writer, gate, latest(parts),
                                 sum((p.future for p in parts), FutureRows()))
    finally:
        if gate is not None:
            gate.close()
    return _finished(plan.name, counts)


def fail_partitioned(store: Store, plan: SyncPlan, fence: Fence | None, error: str) -> None:
    """A partition failed: drop everything the sync staged; the stream stays as it was."""
    writer = store.sync_writer(plan.name, plan.sync_id, plan.reconcile, fence)
    try:
        writer.fail(error)
    except LeaseLost:
        pass
    progress.reporter.stream_finished(plan.name, f"failed: {error}", False)


def extraction_spec(stream: StreamSpec) -> str:
    """A digest of what a stream extracts (connector options such as a pushed-down filter, the kept
    fields, key and cursor). Kept with the watermark: when it changes, the next sync reads everything
    again, so records the old extraction left out are not missing for good."""
    body = json.dumps([stream.options, stream.fields, stream.primary_key, stream.cursor], sort_keys=True,
                      default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _gated_commit(
    project: Project,
    store: Store,
    run_id: str,
    writer: SyncWriter,
    gate: StreamGate,
    watermark: str | None,
    since: Watermark | None,
    future: str | None = None,
) -> SyncCounts:
    """Commit only if no blocking check failed; otherwise keep the staged rows for review."""
    name = writer.stream
    held = [kr for kr, d in kr_definitions(project).items() if name in d.streams]
    outcomes = gate.outcomes(datetime.now(UTC).replace(tzinfo=None), since.cursor if since else None, future)
    counts = None
    if not any(o.blocking for o in outcomes):
        try:
            counts = writer.commit(watermark, gate=gate.volume_gate())
        except Vetoed:
            pass
    if gate.volume is not None:
        outcomes.append(gate.volume)
    ids = gate.record(store, run_id, writer.sync_id, outcomes, held)
    if counts is not None:
        return counts
    failed = [(i, o) for i, o in zip(ids, outcomes, strict=True) if o.blocking]
    why = "; ".join(f"check #{i} {o.check.label}: {o.observed or 'failed'}" for i, o in failed)
    writer.block(watermark, why)
    raise CheckFailed(
        f"stream {name!r} blocked by {len(failed)} failed check(s): {why}",
        hint=f"see `okrsync checks show {failed[0][0]}`; fix the source and run again, or "
        f"`okrsync checks accept {failed[0][0]} --reason …`",
    )
