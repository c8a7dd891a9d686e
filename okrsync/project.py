"""The project: settings, sources, streams, metrics and the objective tree, validated as a whole.

:func:`load_project` parses ``okrsync.yaml`` (and its includes) at the edge: every problem, from an
unknown key to a key result pinning a dimension its metric does not declare, is collected and raised
as one :class:`~okrsync.project_problems.ProjectFileError` naming ``file:line: key.path``. Code that
holds a :class:`Project` trusts it. :func:`check_sources` goes further and asks the sources.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from connectors.base import SourceConnector, StreamSpec, deletion_policy
from metrics.spec import SimpleMetric
from okrsync.errors import ConfigError, OkrsyncError, SourceError
from okrsync.project_build import build_project
from okrsync.project_file import load_document
from okrsync.project_model import (
    BoundKeyResult,
    Project,
    RoleSpec,
    Settings,
    SourceSpec,
    check_timezone,
    walk_key_results,
)
from okrsync.project_problems import KeyPath, did_you_mean
from okrsync.project_reconcile import match_problems
from okrsync.schema import StreamSchema

__all__ = ["BoundKeyResult", "Project", "RoleSpec", "Settings", "SourceSpec", "check_sources",
           "check_timezone", "load_project", "metric_problems", "walk_key_results"]


def load_project(path: str | Path) -> Project:
    """Read and validate the project file; raises ConfigError listing every problem found."""
    doc, marks = load_document(path)
    return build_project(doc, marks)


def check_sources(project: Project) -> list[str]:
    """Connect to every source and compare what streams and metrics use with the real schemas.

    Returns one human-readable line per problem (empty: all fine). Connectors are always closed.
    """
    problems: list[str] = []
    for source in project.sources.values():
        where = ("sources", source.name)
        try:
            connector = project.connector(source.name)
        except OkrsyncError as exc:
            problems.append(project.locate(where, _one_line(exc)))
            continue
        try:
            connector.check()
            for stream in project.streams.values():
                if stream.source == source.name:
                    problems += _check_stream(project, connector, stream)
        except (ConfigError, SourceError) as exc:
            problems.append(project.locate(where, _one_line(exc)))
        finally:
            with suppress(Exception):  # a failing close must not hide the problems found
                connector.close()
    return problems


def _one_line(exc: OkrsyncError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


def _check_stream(project: Project, connector: SourceConnector, stream: StreamSpec) -> list[str]:
    here: KeyPath = ("streams", stream.name)
    # Declared fields, cursor and `where` are checked below, each at its own line of the file.
    options = {k: v for k, v in stream.options.items() if k != "where"}
    bare = {"fields": None, "cursor": (), "options": options}
    try:
        schema = connector.schema(stream.model_copy(update=bare))
    except (ConfigError, SourceError) as exc:
        return [project.locate(here, _one_line(exc))]
    out = []
    for name in stream.fields or ():
        if "." in name and name not in schema:  # a related record's field (Account.Name): ask for it
            try:
                found = connector.schema(stream.model_copy(update={**bare, "fields": (name,)})).get(name)
            except (ConfigError, SourceError) as exc:
                out.append(project.locate((*here, "fields"), _one_line(exc)))
                continue
            if found is not None:
                schema = StreamSchema((*schema.fields, found))
    if "where" in stream.options:
        try:
            connector.schema(stream.model_copy(update={"fields": None, "cursor": ()}))
        except (ConfigError, SourceError) as exc:
            out.append(project.locate((*here, "where"), _one_line(exc)))
    names = list(schema.names)
    shown = ", ".join(names[:30]) + (", …" if len(names) > 30 else "")
    for key in ("primary_key", "cursor", "fields"):
        for name in getattr(stream, key) or ():
            if name not in schema and not (key == "fields" and "." in name):  # dotted: reported above
                out.append(project.locate((*here, key), f"the source has no field {name!r}"
                                          f"{did_you_mean(name, names)} (fields: {shown})"))
    try:  # a cadence the stream cannot have (an sql query), tombstones the source cannot report
        deletion_policy(stream, connector)
    except ConfigError as exc:
        key = "reconcile_every_hours" if stream.reconcile_every_hours is not None else "deletes"
        out.append(project.locate((*here, key), _one_line(exc)))
    return out + metric_problems(project, stream, schema)


def metric_problems(project: Project, stream: StreamSpec, schema: StreamSchema) -> list[str]:
    """What the metrics on ``stream`` use that its source does not give or it does not keep (and
    measures on fields of the wrong type), one located line each, given the source's ``schema``."""
    names = list(schema.names)
    shown = ", ".join(names[:30]) + (", …" if len(names) > 30 else "")
    kept = stream.kept_fields(schema)
    out = []
    for metric in project.metrics.values():
        if isinstance(metric, SimpleMetric) and metric.stream == stream.name:
            out += _check_metric(project, metric, schema, kept, shown)
    for path, why in match_problems(project.reconciliations, project.metrics, stream.name, list(kept)):
        out.append(project.locate(path, why))
    return out


def _check_metric(
    project: Project, metric: SimpleMetric, schema: StreamSchema, kept: tuple[str, ...], shown: str
) -> list[str]:
    here: KeyPath = ("metrics", metric.name)
    out = []
    stream = metric.stream
    for name in sorted(metric.fields_used()):
        key = next((k for k in ("field", "time_field") if getattr(metric, k) == name), None)
        if key is None and metric.days_between and name in metric.days_between:
            key = "days_between"
        key = key or ("dimensions" if name in metric.dimensions else "filter")
        if name in schema and name not in kept:
            why = f"stream {stream!r} does not keep field {name!r} (add it to streams.{stream}.fields)"
        elif name not in schema:
            why = f"stream {stream!r} has no field {name!r}{did_you_mean(name, kept)} (fields: {shown})"
        else:
            continue
        out.append(project.locate((*here, key), why))
    measured = schema.get(metric.field) if metric.field else None
    if metric.measure.aggregation.needs_numeric and measured is not None and not measured.type.numeric:
        out.append(project.locate((*here, "field"), f"measure {metric.measure.value!r} needs a numeric "
                                  f"field; {metric.field!r} is {measured.type.value}"))
    if metric.days_between is not None and all(n in schema for n in metric.days_between):
        from metrics.compile import days_between_problem

        if problem := days_between_problem(metric.days_between, schema):
            out.append(project.locate((*here, "days_between"), problem))
    timed = schema.get(metric.time_field) if metric.time_field else None
    if timed is not None and not timed.type.temporal:
        why = f"time_field {metric.time_field!r} must be a date or datetime field; it is {timed.type.value}"
        out.append(project.locate((*here, "time_field"), why))
    return out


def check_declarations(project: Project, *, with_sources: bool = False) -> list[str]:
    """Problems with the declared data-quality checks: unknown expectation names, arguments GX
    rejects, columns (and sensitive fields) the stream does not have — with the file line of each."""
    streams = [s for s in project.streams.values() if s.checks or s.sensitive]
    if not streams:
        return []
    from metrics.gx import check_problems

    problems: list[str] = []
    for stream in streams:
        fields: tuple[str, ...] | None = stream.fields
        if with_sources:
            connector = project.connector(stream.source)
            try:
                fields = stream.kept_fields(connector.schema(stream))
            except OkrsyncError:
                fields = None  # check_sources reports the stream itself
            finally:
                with suppress(Exception):
                    connector.close()
        for i, text in check_problems(tuple(stream.checks), fields):
            problems.append(project.locate(("streams", stream.name, "checks", i), text))
        for name in stream.sensitive:
            if fields is not None and name not in fields:
                problems.append(project.locate(("streams", stream.name, "sensitive"),
                                               f"the stream has no field {name!r}"))
    return problems
