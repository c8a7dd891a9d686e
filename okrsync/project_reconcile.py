"""The ``reconciliations:`` section of the project file, checked against the metrics and streams it
names (see :mod:`metrics.reconcile` and docs/project-file.md, "Reconciliations")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metrics.reconcile import RECONCILE_MEASURES, ReconciliationSpec
from metrics.spec import SimpleMetric
from okrsync.project_problems import KeyPath, did_you_mean

if TYPE_CHECKING:
    from okrsync.project_build import _Builder


def reconciliations_of(b: _Builder, default_period: str | None) -> dict[str, ReconciliationSpec]:
    """Every valid reconciliation; each problem is added to the builder's, located."""
    out: dict[str, ReconciliationSpec] = {}
    declared = b._declared("metrics")
    for name, raw in b._section("reconciliations").items():
        path: KeyPath = ("reconciliations", name)
        if "name" in raw:
            b.problems.add((*path, "name"), "unknown key 'name': a reconciliation's name is its key")
            continue
        if isinstance(raw.get("period"), int) and not isinstance(raw.get("period"), bool):
            raw = {**raw, "period": str(raw["period"])}
        spec = b._validate(ReconciliationSpec, {**raw, "name": name}, path, hidden=("name",))
        if spec is None:
            continue
        ok = True
        for side in ("left", "right"):
            metric_name = getattr(spec, side)
            if metric_name not in declared:
                b._unknown((*path, side), "metric", metric_name, declared)
                ok = False
                continue
            metric = b.metrics.get(metric_name)
            if metric is None:  # the metric itself has problems, reported at its own line
                ok = False
            elif not isinstance(metric, SimpleMetric) or metric.measure.value not in RECONCILE_MEASURES:
                measure = "ratio" if not isinstance(metric, SimpleMetric) else metric.measure.value
                b.problems.add((*path, side), f"metric {metric_name!r} is a {measure}: a reconciliation "
                               f"compares records that add up, so each side is a "
                               f"{' or '.join(RECONCILE_MEASURES)} metric")
                ok = False
            else:
                ok = _fields(b, spec, side, metric, path) and ok
        period = spec.period or default_period
        if period is None:
            b.problems.add(path, "no period: set `period` on this reconciliation or settings.default_period")
            ok = False
        elif spec.period is not None and not b._period_ok(spec.period, (*path, "period")):
            ok = False
        if ok:
            out[name] = spec
    return out


def _fields(b: _Builder, spec: ReconciliationSpec, side: str, metric: SimpleMetric, path: KeyPath) -> bool:
    """The side's dimensions and match field: declared on the metric, kept by its stream, not sensitive."""
    ok = True
    dims = list(spec.dimensions) if side == "left" else list(spec.dimensions.values())
    for dim in dims:
        if dim not in metric.dimensions:
            allowed = ", ".join(metric.dimensions) or "none"
            b.problems.add((*path, "dimensions"), f"{side} metric {metric.name!r} has no dimension {dim!r}"
                           f"{did_you_mean(dim, metric.dimensions)} (its dimensions: {allowed}; the "
                           "mapping reads `left dimension: right dimension`)")
            ok = False
    stream = b.streams.get(metric.stream)
    key = getattr(spec.match, side) if spec.match is not None else None
    if stream is None or key is None:
        return ok
    kept = list(dict.fromkeys((*stream.primary_key, *(stream.fields or ()), *stream.cursor)))
    if stream.fields is not None and key not in kept:
        b.problems.add((*path, "match", side), f"stream {metric.stream!r} does not keep field {key!r}"
                       f"{did_you_mean(key, kept)} (its fields: {', '.join(kept)}; add it to "
                       f"streams.{metric.stream}.fields)")
        ok = False
    for field in [key, *dims]:
        if field in stream.sensitive:
            b.problems.add((*path, "match" if field == key else "dimensions"),
                           f"{field!r} is a sensitive field of stream {metric.stream!r}: a reconciliation "
                           "lists its values, so it cannot match or group on it")
            ok = False
    return ok


def match_problems(
    reconciliations: Any, metrics: Any, stream: str, names: list[str]
) -> list[tuple[KeyPath, str]]:
    """Match fields of reconciliations reading ``stream`` that its source does not have (``names``)."""
    out: list[tuple[KeyPath, str]] = []
    for spec in reconciliations.values():
        if spec.match is None:
            continue
        for side in ("left", "right"):
            field = getattr(spec.match, side)
            if metrics[getattr(spec, side)].stream == stream and field not in names:
                out.append((("reconciliations", spec.name, "match", side),
                            f"stream {stream!r} has no field {field!r}{did_you_mean(field, names)}"))
    return out
