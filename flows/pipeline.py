"""The steps of a run as plain functions (the Prefect flow in :mod:`flows.okr_flow` wraps them).

* :func:`sync_stream` — read a stream from its connector strictly after its watermark, stage the
  batches, reconcile keys, commit atomically (or drop everything staged on failure).
* :func:`compute_values` — evaluate every KR whose streams are healthy against the store's snapshot,
  score it, and record all values of the run in one transaction; the others are held at their last
  good value with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

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
from flows import closing, progress, reconcile
from flows.deletes import stage_deletes
from flows.gate import StreamGate
from metrics.definition import KrDefinition
from metrics.evaluate import Evaluation, StreamView, evaluate
from metrics.quality import max_jump
from metrics.score import score
from okr_store.checks import record_outcomes
from okr_store.lease import Fence
from okr_store.ranking import Ranked, record_ranks
from okr_store.records import RID, SyncCounts, SyncWriter, Vetoed
from okr_store.store import Store, ValueRecord
from okrsync.errors import CheckFailed, ConfigError, LeaseLost, OkrsyncError, SourceError
from okrsync.project import Project, metric_problems
from okrsync.project_bindings import effective_stream, kr_definitions, okr_rows
from okrsync.schema import Field, FieldType, StreamSchema
from okrsync.small_groups import personal_streams

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
        return writer.commit(watermark)
    return _gated_commit(project, store, plan.run_id, writer, gate, watermark, since, future.message())


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


def _jump_hold(
    project: Project,
    store: Store,
    run_id: str,
    kr_id: str,
    metric: str,
    previous: Decimal | None,
    value: Decimal | None,
    acknowledged: frozenset[str],
) -> str | None:
    """Judge the metric's KR checks; the reason to hold the value, or None to record it."""
    checks = [c for c in project.metrics[metric].checks if c.kind == "max_jump_percent"]
    if not checks or kr_id in acknowledged:
        return None
    outcomes = [max_jump(c, previous, value) for c in checks]
    if all(o.success for o in outcomes):
        return None
    with store.engine.begin() as conn:
        ids = record_outcomes(conn, run_id, outcomes, kr_id=kr_id, held_krs=[kr_id], proposed_value=value)
    blocking = [(i, o) for i, o in zip(ids, outcomes, strict=True) if o.blocking]
    if not blocking:
        return None
    i, o = blocking[0]
    observed = o.observed
    if personal_streams(project) & project.streams_of(metric):
        # Every role reads the hold's reason; values over people may be small groups (okrsync.small_groups)
        observed = "the values are withheld (personal data); the check's reviewers see them"
    return f"value held by check #{i} {o.check.label}: {observed} (accept with `okrsync checks accept {i}`)"


def register_okrs(project: Project, store: Store, fence: Fence | None = None) -> None:
    """Write the project's objective tree and KR settings into the store (ids are stable keys)."""
    objectives, krs = okr_rows(project)
    store.register_okrs(objectives, krs, fence)


def compute_values(
    project: Project,
    store: Store,
    run_id: str,
    flow_run_id: str | None,
    as_of: datetime,
    failed_streams: Mapping[str, str],
    acknowledged: frozenset[str] = frozenset(),
    fence: Fence | None = None,
) -> tuple[dict[str, Evaluation], dict[str, str]]:
    """Evaluate and record every KR whose streams synced; hold the rest. Returns (values, held).

    A KR whose metric has a ``max_jump_percent`` check is held when its value jumps further than
    that, unless an admin acknowledged the jump (``acknowledged``)."""
    defs = kr_definitions(project)
    bound = {b.spec.id: b for b in project.key_results()}
    held: dict[str, str] = {}
    ready: list[KrDefinition] = []
    for kr_id, d in defs.items():
        bad = [s for s in d.streams if s in failed_streams]
        if bad:
            why = failed_streams[bad[0]]
            held[kr_id] = why if why.startswith(f"stream {bad[0]!r}") else f"stream {bad[0]!r} failed: {why}"
        else:
            ready.append(d)
    reconciled = {s for s in reconcile.streams_of(project) if s not in failed_streams}
    snapshot = store.snapshot({s for d in ready for s in d.streams} | reconciled)
    views: dict[str, StreamView] = {}
    for stream in snapshot:
        found = store.view(stream, snapshot[stream])
        if found is not None:
            views[stream] = StreamView(stream, found[0], found[1].schema)
    computable = []
    for d in ready:
        missing = [s for s in d.streams if s not in views]
        if missing:
            held[d.kr_id] = f"stream {missing[0]!r} has never synced successfully"
        else:
            computable.append(d)
    for kr, why in reconcile.reconcile(project, store, run_id, as_of, views, defs).items():
        held.setdefault(kr, why)  # a failed stream says so first
    computable = [d for d in computable if d.kr_id not in held]
    progress.reporter.metrics_started(len(computable))
    with store.engine.connect() as conn:
        results = evaluate(conn, views, computable, as_of)
    records = []
    s = project.settings
    previous = store.last_values([d.kr_id for d in computable], as_of)  # a back-fill: its neighbour
    for d in computable:
        e, k = results[d.kr_id], bound[d.kr_id]
        jump = _jump_hold(
            project, store, run_id, k.spec.id, k.spec.metric, previous.get(d.kr_id), e.value, acknowledged
        )
        if jump is not None:
            held[d.kr_id] = jump
            continue
        sc = score(
            e.value,
            baseline=k.spec.baseline,
            target=k.spec.target,
            period=k.period,
            as_of=as_of,
            pace=k.spec.pace,
            at_risk_gap=Decimal(s.at_risk_gap),
            off_track_gap=Decimal(s.off_track_gap),
        )
        records.append(
            ValueRecord(
                d.kr_id,
                e.value,
                e.reason,
                e.records,
                k.spec.baseline,
                k.spec.target,
                sc.progress_raw,
                sc.progress,
                sc.expected,
                sc.status,
                d.hash,
                d.canonical_json(),
                {st: snapshot[st] for st in d.streams},
            )
        )
        progress.reporter.metric_done(d.kr_id, f"{e.value if e.value is not None else '—'} ({sc.status})")
    ids, records = closing.record(store, run_id, flow_run_id, as_of, records, held, fence)
    # Each new value's first drill positions, from the same snapshot (values never change afterwards).
    by_kr = {d.kr_id: d for d in computable}
    ranked = [Ranked(i, by_kr[r.kr_id], r.records) for i, r in zip(ids, records, strict=True)]
    try:
        record_ranks(store, views, ranked, as_of)
    except sa.exc.SQLAlchemyError as exc:  # only a speed-up: the values stand, their drills run live
        log.warning("could not store the first drill positions of this run's values (%s); drill-down "
                    "works without them, more slowly", type(exc).__name__)
    return results, held
