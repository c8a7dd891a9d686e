"""``okrsync plan``: what the project file's definitions would change, as the CLI's role sees it, and
applying them (registration, audit, optional restatement of history).

The comparison itself is :mod:`okr_store.plan`; this module feeds it the project's definitions
(:func:`okrsync.project_bindings.kr_definitions`), applies the role rules to what it shows (sensitive
fields masked or opened, small groups over personal data withheld, no records for a role without
``records``), scores restated values with each KR's binding, and takes the run lease to restate.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from metrics.definition import KrDefinition
from metrics.evaluate import Evaluation
from metrics.score import score
from okr_store import plan as store_plan
from okr_store.store import Store, ValueRecord
from okrsync.errors import ConfigError, MetricError
from okrsync.pii import MASK, reveal
from okrsync.project_bindings import kr_definitions
from okrsync.small_groups import SeesAll, SmallGroups, small_groups

EXIT_CHANGES = 3  # definitions differ from the registered ones (2 is a bad project file or option)


def make_plan(project: Any, store: Store, now: datetime, *, limit: int = 20) -> store_plan.Plan:
    """Compare the project's definitions with the store's registered ones (nothing is written)."""
    defs = kr_definitions(project)
    try:
        return store_plan.compare(store, defs, now, limit=limit)
    except MetricError as exc:  # a metric the store's records cannot answer: the new file is wrong
        raise ConfigError(f"the project file's definitions cannot be evaluated: {exc.message}",
                          hint=exc.hint or "fix the project file; nothing was changed") from None


def as_seen(project: Any, role: Any, p: store_plan.Plan) -> store_plan.Plan:
    """The plan as the CLI's role may see it: record fields masked (or opened with ``sensitive``), no
    records without ``records``, values from small groups over personal data withheld."""
    hidden = project.sensitive()
    vault = project.vault() if role.sensitive and hidden else None
    seen = small_groups(project, role)
    out = []
    for c in p.changes:
        records = [] if not role.records else [
            replace(r, fields=reveal(r.fields, hidden.get(r.stream, ()), vault)) for r in c.records
        ]
        out.append(replace(  # what changes is decided on the values, before any is withheld
            c, records=records, moves=c.value_changes,
            before=_value(seen, c.before, c.snapshot), after=_value(seen, c.after, c.snapshot),  # type: ignore[arg-type]
            past=[replace(x, value=seen.value(x.value), new=_value(seen, x.new, x.value.snapshot),
                          moved=x.changes) for x in c.past],
        ))
    return replace(p, changes=out)


def _value(seen: SmallGroups, e: Evaluation | None, snapshot: dict[str, int | None]) -> Evaluation | None:
    if e is None or isinstance(seen, SeesAll) or not 0 < e.records < seen.min_size:
        return e
    if not any(s in seen.personal or s not in seen.known for s in snapshot):
        return e
    return Evaluation(None, seen.label, 0, {})


def restatements(project: Any, p: store_plan.Plan) -> list[store_plan.Restatement]:
    """Every live past value of a changed KR not computed with its new definition, recomputed with it
    (at the value's own snapshot and as-of) and scored with the KR's binding in the project file."""
    s = project.settings
    bound = {b.spec.id: b for b in project.key_results()}
    out = []
    for c in p.changes:
        k = bound[c.kr_id]
        for x in c.past:
            if x.new is None or x.value.definition_hash == c.new.hash:
                continue
            sc = score(x.new.value, baseline=k.spec.baseline, target=k.spec.target, period=k.period,
                       as_of=x.value.as_of, pace=k.spec.pace, at_risk_gap=Decimal(s.at_risk_gap),
                       off_track_gap=Decimal(s.off_track_gap))
            snapshot = {st: x.value.snapshot.get(st) for st in c.new.streams}
            record = ValueRecord(c.kr_id, x.new.value, x.new.reason, x.new.records, k.spec.baseline,
                                 k.spec.target, sc.progress_raw, sc.progress, sc.expected, sc.status,
                                 c.new.hash, c.new.canonical_json(), snapshot)
            out.append(store_plan.Restatement(x.value.id, x.value.as_of, record))
    return out


def apply_plan(
    project: Any, store: Store, p: store_plan.Plan, *, reason: str, actor: str, restate: bool
) -> tuple[dict[str, str | None], int]:
    """Register the changed definitions with ``reason`` (audited); with ``restate``, record every
    past value recomputed under them, holding the run lease so no run writes meanwhile. Returns
    (KR → previous definition hash, restated values)."""
    if not reason.strip():
        raise ConfigError("--reason is empty", hint='say why the definitions change: --reason "…"')
    defs: list[KrDefinition] = [c.new for c in p.changes]
    if not restate:
        return store_plan.apply(store, defs, reason=reason, actor=actor), 0
    restated = restatements(project, p)
    s = project.settings
    fence = store.begin_run(_latest_as_of(store), None, lease_seconds=s.lease_seconds,
                            wait_seconds=s.wait_for_run_seconds)
    try:
        before = store_plan.apply(store, defs, reason=reason, actor=actor, restatements=restated, fence=fence)
    except BaseException as exc:
        store.end_run(fence, "failed", f"restatement failed: {type(exc).__name__}")
        raise
    store.end_run(fence, "succeeded")
    return before, len(restated)


def _latest_as_of(store: Store) -> datetime:
    """The as-of of the restating run's row: the store's latest, so it changes no back-fill rule."""
    import sqlalchemy as sa

    from okr_store import models as m
    from okr_store.records import utcnow

    with store.engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(m.run.c.as_of))).scalar()
    return latest or utcnow()


def _eval_json(e: Evaluation | None) -> dict[str, Any] | None:
    return None if e is None else {"value": e.value, "reason": e.reason, "records": e.records}


def plan_json(p: store_plan.Plan) -> dict[str, Any]:
    """The plan for scripts (see docs/plan.md; decimals as strings, times UTC)."""

    def kr(c: store_plan.KrChange) -> dict[str, Any]:
        return {
            "kr": c.kr_id,
            "changed": list(c.changed),
            "old_definition": c.old.hash if c.old else None,
            "new_definition": c.new.hash,
            "as_of": c.as_of,
            "snapshot": c.snapshot,
            "before": _eval_json(c.before),
            "after": _eval_json(c.after),
            "delta": c.delta,
            "summary": {k: {"records": n, "delta": d} for k, (n, d) in c.summary.items()},
            "records_moved": c.total_moved,
            "records": [
                {"kind": r.kind, "stream": r.stream, "record_id": r.record_id, "before": r.before,
                 "after": r.after, "delta": r.delta, "fields": r.fields}
                for r in c.records
            ],
            "past_values": [
                {"value_id": x.value.id, "as_of": x.value.as_of, "stored": x.value.value,
                 "new": None if x.new is None else x.new.value,
                 "delta": None if x.new is None or x.new.value is None or x.value.value is None
                 else x.new.value - x.value.value,
                 "changes": x.changes, "definition": x.value.definition_hash,
                 "restated_from": x.value.restated_from}
                for x in c.past
            ],
        }

    return {
        "changes": bool(p.changes),
        "affected": [kr(c) for c in p.affected],
        "same_values": [{"kr": c.kr_id, "changed": list(c.changed), "records_moved": c.total_moved}
                        for c in p.same_values],
        "new": p.new,
        "retired": p.retired,
    }


def definition_text(d: KrDefinition | None, path: str, hidden: set[str]) -> str:
    """One changed part of a definition, as compact JSON (for the table); values on the ``hidden``
    (sensitive) fields masked: the definition holds them sealed, and sealed text links records."""
    if d is None:
        return "—"
    node: Any = _masked(json.loads(d.canonical_json()), hidden)
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return json.dumps(node, separators=(",", ":")) if node is not None else "—"


def _masked(node: Any, hidden: set[str]) -> Any:
    if isinstance(node, list):
        return [_masked(x, hidden) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _masked(v, hidden) for k, v in node.items()}
    if out.get("field") in hidden and out.get("value") is not None:
        out["value"] = MASK
    if isinstance(node.get("dimensions"), dict):
        out["dimensions"] = {k: (MASK if k in hidden else v) for k, v in node["dimensions"].items()}
    return out
