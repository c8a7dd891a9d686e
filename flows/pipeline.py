"""The steps of a run as plain functions (the Prefect flow in :mod:`flows.okr_flow` wraps them).

* :func:`sync_stream` — read a stream from its connector strictly after its watermark, stage the
  batches, reconcile keys, commit atomically (or drop everything staged on failure).
* :func:`compute_values` — evaluate every KR whose streams are healthy against the store's snapshot,
  score it, and record all values of the run in one transaction; the others are held at their last
  good value with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.base import Connector, StreamSpec, Watermark, cursor_values, record_ids, typed_watermark
from flows import progress
from metrics.definition import KrDefinition, build_definition
from metrics.evaluate import Evaluation, StreamView, evaluate
from metrics.score import score
from okr_store.records import RID, SyncCounts
from okr_store.store import Store, ValueRecord
from okrsync.errors import OkrsyncError, SourceError
from okrsync.project import Project
from okrsync.schema import StreamSchema


@dataclass(frozen=True)
class StreamOutcome:
    stream: str
    ok: bool
    counts: SyncCounts | None
    error: str | None


def effective_stream(project: Project, name: str) -> StreamSpec:
    """The stream spec with the company timezone filled in for naive source datetimes."""
    spec = project.streams[name]
    return spec if spec.timezone else spec.model_copy(update={"timezone": project.settings.timezone})


def sync_stream(project: Project, store: Store, connector: Connector, run_id: str, name: str) -> SyncCounts:
    """Sync one stream; raises :class:`SourceError` (transient or not) after cleaning up."""
    stream = effective_stream(project, name)
    schema = connector.schema(stream)
    kept = stream.kept_fields(schema)
    kept_schema = StreamSchema(tuple(f for f in schema.fields if f.name in kept))
    reconcile = stream.deletes == "reconcile" and store.reconcile_due(name, stream.reconcile_every_hours)
    writer = store.begin_sync(
        run_id, name, stream.source, stream.primary_key, kept_schema, reconcile=reconcile
    )
    progress.reporter.stream_started(name)
    since = typed_watermark(store.watermark(name), stream, kept_schema)
    last: Any = None
    cursor_of_last: Any = None
    try:
        for batch in connector.read(stream, since):
            if batch.empty:
                continue
            batch = batch[list(kept)]
            writer.stage(batch.assign(**{RID: record_ids(batch, stream.primary_key)}))
            last = batch.iloc[-1]
            cursor_of_last = cursor_values(batch.tail(1), stream).iloc[0] if stream.cursor else None
            progress.reporter.stream_rows(name, writer.rows_read)
        if reconcile:
            for keys in connector.keys(stream):
                writer.stage_keys(record_ids(keys, stream.primary_key))
        watermark = None
        if last is not None and stream.cursor:
            watermark = Watermark(cursor_of_last, tuple(last[k] for k in stream.primary_key)).to_json()
        counts = writer.commit(watermark)
    except OkrsyncError as exc:
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
    progress.reporter.stream_finished(
        name,
        f"{counts.rows_read} rows read · {counts.inserted} new · {counts.updated} changed · "
        f"{counts.deleted} deleted",
        True,
    )
    return counts


def register_okrs(project: Project, store: Store) -> None:
    """Write the project's objective tree and KR settings into the store (ids are stable keys)."""
    objectives: list[dict[str, Any]] = []

    def walk(objs: Any, parent: str | None) -> None:
        for o in objs:
            objectives.append(
                dict(
                    id=o.id,
                    parent_id=parent,
                    title=o.title,
                    owner=o.owner,
                    weight=str(o.weight),
                    position=len(objectives),
                )
            )
            walk(o.objectives, o.id)

    walk(project.objectives, None)
    krs = []
    for i, b in enumerate(project.key_results()):
        k = b.spec
        metric = project.metrics[k.metric]
        krs.append(
            dict(
                id=k.id,
                objective_id=b.objective_id,
                title=k.title,
                owner=k.owner,
                metric=k.metric,
                period_label=b.period.label,
                baseline=str(k.baseline),
                target=str(k.target),
                direction=k.direction,
                weight=str(k.weight),
                unit=k.unit or metric.unit,
                streams=json.dumps(sorted(project.streams_of(k.metric))),
                position=i,
            )
        )
    store.register_okrs(objectives, krs)


def definitions(project: Project) -> dict[str, KrDefinition]:
    return {
        b.spec.id: build_definition(
            b.spec.id, project.metrics[b.spec.metric], project.metrics, b.spec.dimensions, b.period
        )
        for b in project.key_results()
    }


def compute_values(
    project: Project,
    store: Store,
    run_id: str,
    flow_run_id: str | None,
    as_of: datetime,
    failed_streams: Mapping[str, str],
) -> tuple[dict[str, Evaluation], dict[str, str]]:
    """Evaluate and record every KR whose streams synced; hold the rest. Returns (values, held)."""
    defs = definitions(project)
    bound = {b.spec.id: b for b in project.key_results()}
    held: dict[str, str] = {}
    ready: list[KrDefinition] = []
    for kr_id, d in defs.items():
        bad = [s for s in d.streams if s in failed_streams]
        if bad:
            held[kr_id] = f"stream {bad[0]!r} failed to sync: {failed_streams[bad[0]]}"
        else:
            ready.append(d)
    snapshot = store.snapshot({s for d in ready for s in d.streams})
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
    progress.reporter.metrics_started(len(computable))
    with store.engine.connect() as conn:
        results = evaluate(conn, views, computable, as_of)
    records = []
    s = project.settings
    for d in computable:
        e, k = results[d.kr_id], bound[d.kr_id]
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
    store.record_values(run_id, flow_run_id, as_of, records, held)
    return results, held
