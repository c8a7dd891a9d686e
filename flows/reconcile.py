"""The project's reconciliations in a run: compare both sides on the run's snapshot, record the
finding as a check, and hold the key results on either side while a blocking difference stands.

An admin accepts a difference like any other failed check (:mod:`flows.review`); it stays accepted
while it stays the same difference (same records, same amounts): a new or changed one holds again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from metrics.definition import KrDefinition
from metrics.evaluate import StreamView
from metrics.quality import RECONCILE
from metrics.reconcile import compare, side_rows
from okr_store import checks
from okr_store.store import Store
from okrsync.errors import ConfigError
from okrsync.project import Project
from okrsync.project_bindings import reconciliation_definitions

log = logging.getLogger("okrsync.reconcile")


def streams_of(project: Project) -> set[str]:
    """The streams the project's reconciliations read."""
    return {project.metrics[getattr(r, side)].stream  # type: ignore[union-attr]
            for r in project.reconciliations.values() for side in ("left", "right")}


def holds_of(kr_defs: Mapping[str, KrDefinition], metrics: set[str]) -> list[str]:
    """The key results computed from any of ``metrics`` (directly, or as a ratio's part)."""
    return [kr for kr, d in kr_defs.items() if {m.name for m in d.parts.values()} & metrics]


def reconcile(
    project: Project,
    store: Store,
    run_id: str,
    as_of: datetime,
    views: Mapping[str, StreamView],
    kr_defs: Mapping[str, KrDefinition],
) -> dict[str, str]:
    """Run every reconciliation whose streams are in ``views``; returns the KRs to hold, with why."""
    held: dict[str, str] = {}
    for name, (spec, left, right) in reconciliation_definitions(project).items():
        sides = ((left, spec.match.left if spec.match else None, list(spec.dimensions)),
                 (right, spec.match.right if spec.match else None, list(spec.dimensions.values())))
        if any(d.metric is None or d.metric.stream not in views for d, _, _ in sides):
            log.info("reconciliation %r skipped: a stream it reads did not sync", name)
            continue
        rows = []
        with store.engine.connect() as conn:
            for d, key, dims in sides:
                assert d.metric is not None
                view = views[d.metric.stream]
                missing = [f for f in [key, *dims] if f is not None and f not in view.schema]
                if missing:
                    raise ConfigError(
                        project.locate(("reconciliations", name),
                                       f"stream {d.metric.stream!r} has no field {missing[0]!r}"),
                        hint="fix the project file; `okrsync validate --check-sources` checks it")
                rows.append(side_rows(conn, view, d, as_of, key, dims))
        finding = compare(spec, rows[0], rows[1])
        outcome = finding.outcome()
        hold = holds_of(kr_defs, {spec.left, spec.right}) if outcome.blocking else []
        with store.engine.begin() as conn:
            accepted = checks.accepted_difference(conn, spec.label, finding.fingerprint()) if hold else None
            (check_id,) = checks.record_outcomes(conn, run_id, [outcome], held_krs=hold)
            checks.supersede_label(conn, RECONCILE, spec.label, check_id)
            if accepted is not None:  # the same difference an admin accepted: it does not hold again
                checks.resolve(conn, [check_id], "accepted", f"check #{accepted}")
        if hold and accepted is None:
            why = (f"held by reconciliation check #{check_id} {name}: {outcome.observed} "
                   f"(accept with `okrsync checks accept {check_id}`)")
            held |= {kr: why for kr in hold if kr not in held}
    return held
