"""What a validated project means to the layers below it: the translation the flows hand over.

* :func:`effective_stream` — a stream as its connector reads it (the company timezone filled in);
* :func:`kr_definitions` — every key result as the metric layer evaluates it
  (:class:`~metrics.definition.KrDefinition`), filters and pins on sensitive fields sealed;
* :func:`okr_rows` — the objective tree and KR settings as the store registers them;
* :func:`with_bindings` — the project with the key results bound in the store (``okrsync kr add``).

The flows wire these to connectors, metrics and the store; none of them reads the project file itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from connectors.base import StreamSpec
from metrics.definition import KrDefinition, build_definition
from metrics.reconcile import ReconciliationSpec
from metrics.spec import KeyResultSpec, ObjectiveSpec
from okrsync.errors import ConfigError
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


# ---- key results bound in the store (okr_store.bindings): the project's KRs plus these ----------------
def pinnable(project: Project, metric_name: str) -> list[str]:
    """The dimensions a KR may pin on a metric (both parts' for a ratio), sensitive fields left out."""
    from metrics.spec import SimpleMetric

    if metric_name not in project.metrics:
        raise ConfigError(f"no metric {metric_name!r} in the project's library",
                          hint=f"metrics: {', '.join(project.metrics) or 'none'}")
    parts = [project.metrics[metric_name]]
    if not isinstance(parts[0], SimpleMetric):
        parts = [project.metrics[parts[0].numerator], project.metrics[parts[0].denominator]]  # type: ignore[union-attr]
    dims = set.intersection(*(set(p.dimensions) for p in parts if isinstance(p, SimpleMetric)))
    hidden = {f for s in project.streams_of(metric_name) for f in project.sensitive().get(s, ())}
    return sorted(dims - hidden)


def objective_ids(objectives: Any) -> list[str]:
    out: list[str] = []
    for o in objectives:
        out.append(o.id)
        out += objective_ids(o.objectives)
    return out


def check_binding(project: Project, kr_id: str, objective_id: str, spec: Mapping[str, Any],
                  bound_objectives: Any = ()) -> KeyResultSpec:
    """The bound KR as a :class:`KeyResultSpec`, or a :class:`ConfigError` saying what is wrong: an id
    the project file defines, an unknown objective or metric, a dimension the metric does not offer
    (sensitive fields are never offered), a period that does not parse."""
    if kr_id in {b.spec.id for b in project.key_results()}:
        raise ConfigError(f"key result {kr_id!r} is defined in {project.path.name}: a bound key result "
                          "needs an id of its own", hint="choose another id (ids are stable keys)")
    known = objective_ids(project.objectives) + [o.id for o in bound_objectives]
    if objective_id not in known:
        raise ConfigError(f"no objective {objective_id!r}", hint=f"objectives: {', '.join(known) or 'none'}")
    try:
        kr = KeyResultSpec.model_validate({**spec, "id": kr_id})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "key result"
        raise ConfigError(f"key result {kr_id!r}: {where}: {first['msg']}",
                          hint="see docs/binding.md for every field") from None
    allowed = pinnable(project, kr.metric)
    for dim in kr.dimensions:
        if dim not in allowed:
            raise ConfigError(f"key result {kr_id!r}: metric {kr.metric!r} offers no dimension {dim!r} "
                              "to pin",
                              hint=f"pinnable: {', '.join(allowed) or 'none'} (sensitive fields never are)")
    if kr.period is None and project.settings.default_period is None:
        raise ConfigError(f"key result {kr_id!r} needs a period", hint="e.g. --period 2026-Q4")
    try:
        project.period(kr.period or project.settings.default_period or "")
    except ValueError as exc:
        raise ConfigError(f"key result {kr_id!r}: period: {exc}") from None
    return kr


def with_bindings(project: Project, bindings: Any, bound_objectives: Any = ()) -> Project:
    """The project with the store's active bindings (``okr_store.bindings``) in its objective tree:
    runs register, compute and record them like the project file's KRs. Objectives created for them
    hang under their parents. An id clash with the project file is a :class:`ConfigError`."""
    if not bindings and not bound_objectives:
        return project
    file_objectives = set(objective_ids(project.objectives))
    for o in bound_objectives:
        if o.id in file_objectives:
            raise ConfigError(f"objective {o.id!r} was created for bound key results and is now also "
                              f"defined in {project.path.name}", hint="rename one of them")
    krs: dict[str, list[KeyResultSpec]] = {}
    for b in bindings:
        if b.status != "active":
            continue
        kr = check_binding(project, b.id, b.objective_id, b.spec, bound_objectives)
        krs.setdefault(b.objective_id, []).append(kr)
    children: dict[str, list[Any]] = {}
    for o in bound_objectives:
        children.setdefault(o.parent_id, []).append(o)

    def grown(o: Any) -> ObjectiveSpec:
        extra = tuple(grown(ObjectiveSpec(id=c.id, title=c.title, owner=c.owner))
                      for c in children.get(o.id, ()))
        return o.model_copy(update={
            "key_results": (*o.key_results, *krs.get(o.id, ())),
            "objectives": (*(grown(c) for c in o.objectives), *extra),
        })

    return replace(project, objectives=tuple(grown(o) for o in project.objectives))


def stored_bindings(project: Project, conn: Any) -> Project:
    """:func:`with_bindings` with what the store at ``conn`` holds."""
    from okr_store import bindings

    return with_bindings(project, bindings.listed(conn, retired=False), bindings.objectives(conn))
