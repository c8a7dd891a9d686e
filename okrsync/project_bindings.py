"""What a validated project means to the layers below it: the translation the flows hand over.

* :func:`effective_stream` — a stream as its connector reads it (the company timezone filled in);
* :func:`kr_definitions` — every key result as the metric layer evaluates it
  (:class:`~metrics.definition.KrDefinition`), filters and pins on sensitive fields sealed;
* :func:`okr_rows` — the objective tree and KR settings as the store registers them.

The flows wire these to connectors, metrics and the store; none of them reads the project file itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.base import StreamSpec
from metrics.definition import KrDefinition, build_definition
from metrics.reconcile import ReconciliationSpec
from okrsync.project_model import Project


def effective_stream(project: Project, name: str) -> StreamSpec:
    """The stream spec with the company timezone filled in for naive source datetimes."""
    spec = project.streams[name]
    return spec if spec.timezone else spec.model_copy(update={"timezone": project.settings.timezone})


def _metrics(project: Project) -> tuple[Mapping[str, Any], Any]:
    """The project's metrics as evaluated (filters on sensitive fields sealed) and the vault, if any."""
    hidden = project.sensitive()
    vault = project.vault() if hidden else None
    if vault is not None:  # compare sealed fields with sealed values (okrsync.pii)
        return _sealed_metrics(project, hidden, vault), vault
    return project.metrics, None


def reconciliation_definitions(
    project: Project,
) -> dict[str, tuple[ReconciliationSpec, KrDefinition, KrDefinition]]:
    """Each reconciliation with the definitions of its two sides over its period."""
    if not project.reconciliations:
        return {}
    metrics, _ = _metrics(project)
    out = {}
    for name, spec in project.reconciliations.items():
        period = project.period(spec.period or project.settings.default_period or "")
        left, right = (build_definition(f"{spec.label}:{side}", metrics[getattr(spec, side)], metrics, {},
                                        period) for side in ("left", "right"))
        out[name] = (spec, left, right)
    return out


def kr_definitions(project: Project) -> dict[str, KrDefinition]:
    """Every key result's definition, by id, in the project's order."""
    hidden = project.sensitive()
    metrics, vault = _metrics(project)

    def sealed_dims(metric: str, dims: Any) -> Any:
        """The KR's pinned values, those on sensitive fields sealed."""
        if vault is None or not dims:
            return dims
        fields = {f for s in project.streams_of(metric) for f in hidden.get(s, ())}
        return type(dims)({k: (vault.seal(k, v) if k in fields else v) for k, v in dims.items()})

    return {
        b.spec.id: build_definition(
            b.spec.id,
            metrics[b.spec.metric],
            metrics,
            sealed_dims(b.spec.metric, b.spec.dimensions),
            b.period,
        )
        for b in project.key_results()
    }


def _sealed_metrics(project: Project, hidden: Mapping[str, tuple[str, ...]], vault: Any) -> dict[str, Any]:
    from okrsync.pii import sealed_filter

    out: dict[str, Any] = {}
    for name, m in project.metrics.items():
        fields = set(hidden.get(getattr(m, "stream", ""), ()))
        sealed = sealed_filter(getattr(m, "filter", None), fields, vault) if fields else None
        out[name] = m.model_copy(update={"filter": sealed}) if sealed is not None else m
    return out


def okr_rows(project: Project) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(objectives, key results)`` as the store's ``register_okrs`` takes them (ids are stable keys)."""
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
        grace = project.close_after_days(b)
        closes_on, closes_at = b.period.closes_at(grace) if grace is not None else (None, None)
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
                period_end=b.period.end_utc(),
                closes_at=closes_at,
                closes_on=closes_on,
            )
        )
    return objectives, krs
