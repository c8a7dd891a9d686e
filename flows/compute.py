"""The compute step of a run: every KR whose streams are healthy, evaluated against the store's
snapshot, scored and recorded with all values of the run in one transaction; the others are held at their
last good value with the reason (:func:`compute_values`). The sync steps are :mod:`flows.pipeline`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from flows import closing, progress, reconcile
from metrics.definition import KrDefinition
from metrics.evaluate import Evaluation, StreamView, evaluate
from metrics.quality import max_jump
from metrics.score import score
from okr_store.checks import record_outcomes
from okr_store.lease import Fence
from okr_store.ranking import Ranked, record_ranks
from okr_store.store import Store, ValueRecord
from okrsync.project import Project
from okrsync.project_bindings import kr_definitions, okr_rows
from okrsync.small_groups import personal_streams

log = logging.getLogger("okrsync.pipeline")


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
    # Each new value's first drill positions, from the same snapshot (values never change afterwards);
    # a value on records unchanged since its KR's previous value copies that one's positions.
    by_kr = {d.kr_id: d for d in computable}
    ranked = [Ranked(i, by_kr[r.kr_id], r.records, r.snapshot) for i, r in zip(ids, records, strict=True)]
    try:
        record_ranks(store, views, ranked, as_of)
    except sa.exc.SQLAlchemyError as exc:  # only a speed-up: the values stand, their drills run live
        log.warning("could not store the first drill positions of this run's values (%s); drill-down "
                    "works without them, more slowly", type(exc).__name__)
    return results, held
