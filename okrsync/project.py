"""The project: settings, sources, streams, metrics and the objective tree, validated as a whole.

:func:`load_project` parses ``okrsync.yaml`` (and its includes) at the edge: every problem, from an
unknown key to a key result pinning a dimension its metric does not declare, is collected and raised
as one :class:`~okrsync.project_problems.ProjectFileError` naming ``file:line: key.path``. Code that
holds a :class:`Project` trusts it. :func:`check_sources` goes further and asks the sources.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import SourceConnector, StreamSpec, connector_kind, deletion_policy
from metrics.periods import Period, parse_period
from metrics.spec import KeyResultSpec, ObjectiveSpec, RatioMetric, SimpleMetric, parse_number
from okrsync.errors import ConfigError, NotFound, OkrsyncError, SourceError
from okrsync.project_file import load_document
from okrsync.project_problems import KeyPath, Marks, Problem, did_you_mean, display_path
from okrsync.schema import StreamSchema

__all__ = ["BoundKeyResult", "Project", "Settings", "SourceSpec", "check_sources", "load_project",
           "metric_problems"]


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA timezone, else a ValueError suggesting the closest one."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        guess = did_you_mean(name, _zones())
        raise ValueError(f"unknown timezone {name!r}{guess}: use an IANA name like Europe/Berlin") from None
    return name


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class RoleSpec(BaseModel):
    """What a role sees: ``records`` (drill-down and diff: record ids and fields), ``sensitive`` (the
    clear values of streams' ``sensitive`` fields; everyone else sees •••), ``admin`` (the web app's
    check review and user management)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: bool = True
    sensitive: bool = False
    admin: bool = False


DEFAULT_ROLES = {
    "viewer": RoleSpec(records=False),
    "leadership": RoleSpec(),
    "hr": RoleSpec(sensitive=True),
    # Check review and users, not HR fields in clear; so it cannot grant hr (okrsync.accounts).
    "admin": RoleSpec(admin=True),
    # Both: the one default role that may grant hr (and manage hr users).
    "owner": RoleSpec(admin=True, sensitive=True),
}


class Settings(BaseModel):
    """The ``settings:`` section (see docs/project-file.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    fiscal_year_named_by: Literal["end", "start"] = "end"
    store_url_env: str = Field(default="OKRSYNC_STORE_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    default_period: str | None = None
    at_risk_gap: Decimal = Field(default=Decimal("0.10"), ge=0)
    off_track_gap: Decimal = Field(default=Decimal("0.25"), ge=0)
    # The key sealing sensitive fields (okrsync.pii): this variable, else .okrsync/pii.key (SQLite store).
    pii_key_env: str = Field(default="OKRSYNC_PII_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    roles: dict[str, RoleSpec] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    # Where each KR value links to the flow run that produced it (else PREFECT_UI_URL, else no link).
    prefect_ui_url: str | None = Field(default=None, pattern=r"^https?://")
    # Where the web app (okrsync serve) is reached, for links from Prefect's run artifacts to each KR.
    web_url: str | None = Field(default=None, pattern=r"^https?://")
    role: str = "leadership"  # the CLI's role; the environment variable OKRSYNC_ROLE overrides it
    # Runs (README, "Run on a schedule"): the project's name in Prefect run names, tags and artifacts
    # (default: the project file's folder); how long a run's lease lasts without a heartbeat; how long a
    # run waits for another run of the project to finish; how long one task (a stream's sync, the
    # compute) may take.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    lease_seconds: int = Field(default=600, ge=5, le=86400)
    wait_for_run_seconds: int = Field(default=3600, ge=0, le=86400)
    task_timeout_seconds: int = Field(default=7200, ge=10, le=86400)

    _timezone = field_validator("timezone")(check_timezone)
    _numbers = field_validator("at_risk_gap", "off_track_gap", mode="before")(parse_number)

    @field_validator("default_period", mode="before")
    @classmethod
    def _year_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # `default_period: 2026`

    @model_validator(mode="after")
    def _gaps_ordered(self) -> Settings:
        if self.at_risk_gap > self.off_track_gap:
            raise ValueError("at_risk_gap must not exceed off_track_gap")
        if self.role not in self.roles:
            raise ValueError(f"role {self.role!r} is not one of the roles: {', '.join(self.roles)}")
        return self


@dataclass(frozen=True)
class SourceSpec:
    """A source: its name, connector kind and the options that kind's ``Options`` model validated."""

    name: str
    kind: str
    options: BaseModel


@dataclass(frozen=True)
class BoundKeyResult:
    """A key result with its enclosing objective and resolved period."""

    spec: KeyResultSpec
    objective_id: str
    period: Period


@dataclass(frozen=True)
class Project:
    """A validated project file. ``marks`` locates keys (for messages about a valid file)."""

    path: Path
    base_dir: Path
    settings: Settings
    sources: Mapping[str, SourceSpec]
    streams: Mapping[str, StreamSpec]
    metrics: Mapping[str, SimpleMetric | RatioMetric]
    objectives: tuple[ObjectiveSpec, ...]
    marks: Marks = field(default_factory=Marks, repr=False, compare=False)

    def key_results(self) -> list[BoundKeyResult]:
        """Every key result, depth-first in file order (an objective's KRs before its children's)."""
        out = []
        for kr, objective, period_text, _ in walk_key_results(self.objectives, self.settings.default_period):
            if period_text is None:  # load_project rejects this; a hand-built Project may not
                raise ConfigError(f"key result {kr.id!r} has no period and settings.default_period is unset")
            out.append(BoundKeyResult(kr, objective.id, self.period(period_text)))
        return out

    def key_result(self, kr_id: str) -> BoundKeyResult:
        """The key result ``kr_id``; :class:`NotFound` lists close matches."""
        bound = self.key_results()
        for b in bound:
            if b.spec.id == kr_id:
                return b
        known = [b.spec.id for b in bound]
        raise NotFound(f"no key result {kr_id!r} in {display_path(self.path)}", hint=_known(known, kr_id))

    def period(self, text: str) -> Period:
        """``text`` parsed with this project's timezone and fiscal-year settings (ValueError if bad)."""
        s = self.settings
        return parse_period(
            text, timezone=s.timezone, fiscal_year_start_month=s.fiscal_year_start_month,
            fiscal_year_named_by=s.fiscal_year_named_by,
        )

    @property
    def name(self) -> str:
        """``settings.name``, else the name of the project file's folder."""
        return self.settings.name or (self.base_dir.resolve().name or "okrsync")

    def store_url(self) -> str:
        """The store URL: the ``settings.store_url_env`` variable, else SQLite in ``.okrsync/``."""
        from_env = os.environ.get(self.settings.store_url_env, "").strip()
        return from_env or f"sqlite:///{self.base_dir / '.okrsync' / 'store.db'}"

    def sensitive(self) -> dict[str, tuple[str, ...]]:
        """Each stream's sensitive fields (streams without any left out)."""
        return {name: s.sensitive for name, s in self.streams.items() if s.sensitive}

    def vault(self) -> Any:
        """The :class:`okrsync.pii.Vault` sealing sensitive fields (None if no stream has any)."""
        if not self.sensitive():
            return None
        from okrsync.pii import vault_for

        return vault_for(self.settings.pii_key_env, self.store_url())

    def role(self) -> tuple[str, RoleSpec]:
        """The CLI's role: ``OKRSYNC_ROLE``, else ``settings.role``."""
        name = os.environ.get("OKRSYNC_ROLE", "").strip() or self.settings.role
        if name not in self.settings.roles:
            raise ConfigError(f"OKRSYNC_ROLE names role {name!r}, which the project does not define",
                              hint=f"roles: {', '.join(self.settings.roles)} (settings.roles)")
        return name, self.settings.roles[name]

    def connector(self, source_name: str) -> SourceConnector:
        """A new connector for the source (the caller closes it)."""
        if source_name not in self.sources:
            raise NotFound(f"no source {source_name!r}", hint=_known(list(self.sources), source_name))
        source = self.sources[source_name]
        return connector_kind(source.kind)(source.name, source.options, self.base_dir)

    def streams_of(self, metric_name: str) -> set[str]:
        """The streams a metric reads (both parts' for a ratio)."""
        if metric_name not in self.metrics:
            raise NotFound(f"no metric {metric_name!r}", hint=_known(list(self.metrics), metric_name))
        metric = self.metrics[metric_name]
        if isinstance(metric, RatioMetric):
            return self.streams_of(metric.numerator) | self.streams_of(metric.denominator)
        return {metric.stream}

    def locate(self, path: KeyPath, message: str) -> str:
        """``okrsync.yaml:12: metrics.revenue.field: message`` for a key of this project."""
        mark = self.marks.locate(path)
        return str(Problem(mark[0] if mark else self.path, mark[1] if mark else None, path, message))


def walk_key_results(
    objectives: tuple[ObjectiveSpec, ...], default_period: str | None, prefix: KeyPath = ("objectives",)
) -> Iterator[tuple[KeyResultSpec, ObjectiveSpec, str | None, KeyPath]]:
    """``(kr, objective, period text or None, key path)`` depth-first, with periods inherited."""
    for i, objective in enumerate(objectives):
        period = objective.period or default_period
        for j, kr in enumerate(objective.key_results):
            yield kr, objective, kr.period or period, (*prefix, i, "key_results", j)
        yield from walk_key_results(objective.objectives, period, (*prefix, i, "objectives"))


def _known(names: list[str], wanted: str) -> str:
    guess = did_you_mean(wanted, names).strip().strip("()")
    shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    return f"{guess + '; ' if guess else ''}known: {shown or 'none'}"


def load_project(path: str | Path) -> Project:
    """Read and validate the project file; raises ConfigError listing every problem found."""
    from okrsync.project_build import build_project

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
    if metric.measure in ("sum", "avg") and measured is not None and not measured.type.numeric:
        out.append(project.locate((*here, "field"), f"measure {metric.measure!r} needs a numeric field; "
                                  f"{metric.field!r} is {measured.type.value}"))
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
    from metrics.expectations import check_problems

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
