"""The validated project: settings, sources, roles and the objective tree bound to their metrics.

:mod:`okrsync.project_build` makes a :class:`Project` from the project file; code that holds one trusts
it. Loading and checking it against the sources is :mod:`okrsync.project`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import SourceConnector, StreamSpec
from connectors.registry import connector_kind
from metrics.periods import Period, parse_period
from metrics.reconcile import ReconciliationSpec
from metrics.spec import KeyResultSpec, ObjectiveSpec, RatioMetric, SimpleMetric, parse_number
from okrsync.errors import ConfigError, NotFound
from okrsync.project_alerts import Alerts
from okrsync.project_problems import KeyPath, Marks, Problem, did_you_mean, display_path


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
    # Bind, edit and retire key results on the project's metrics (okrsync kr, the web binding page).
    bind: bool = False


DEFAULT_ROLES = {
    "viewer": RoleSpec(records=False),
    "leadership": RoleSpec(),
    # Operations users who bind key results to the metrics library (and see the records behind them).
    "editor": RoleSpec(bind=True),
    "hr": RoleSpec(sensitive=True),
    # Check review and users, not HR fields in clear; so it cannot grant hr (okrsync.accounts).
    "admin": RoleSpec(admin=True, bind=True),
    # Both: the one default role that may grant hr (and manage hr users).
    "owner": RoleSpec(admin=True, sensitive=True, bind=True),
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
    # Values over personal data (okrsync.small_groups) computed from fewer records than this are shown
    # as "suppressed (n < 5)" to roles without `sensitive`; 1 shows every value.
    min_group_size: int = Field(default=5, ge=1, le=1000)
    # Runs (README, "Run on a schedule"): the project's name in Prefect run names, tags and artifacts
    # (default: the project file's folder); how long a run's lease lasts without a heartbeat; how long a
    # run waits for another run of the project to finish; how long one task (a stream's sync, the
    # compute) may take.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    lease_seconds: int = Field(default=600, ge=5, le=86400)
    wait_for_run_seconds: int = Field(default=3600, ge=0, le=86400)
    task_timeout_seconds: int = Field(default=7200, ge=10, le=86400)
    # Closing periods (README, "Closing periods"): a KR's value is final this many days after its
    # period ends (unset: never); a source's or a KR's own close_after_days wins over it.
    close_after_days: int | None = Field(default=None, ge=0, le=366)

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
    close_after_days: int | None = None  # days of grace for KRs over its streams (okr_store.closing)


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
    reconciliations: Mapping[str, ReconciliationSpec] = field(default_factory=dict)
    alerts: Alerts = field(default_factory=Alerts)  # the `alerts:` section (okrsync.project_alerts)

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

    def close_after_days(self, kr: BoundKeyResult) -> int | None:
        """The grace period of a KR's period, in days: its own ``close_after_days``, else the longest
        of the sources it reads, else ``settings.close_after_days`` (None: it never closes)."""
        if kr.spec.close_after_days is not None:
            return kr.spec.close_after_days
        sources = {self.streams[s].source for s in self.streams_of(kr.spec.metric)}
        found = [self.sources[name].close_after_days for name in sources if name in self.sources]
        days = [d for d in found if d is not None]
        return max(days) if days else self.settings.close_after_days

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
