"""Data-quality checks as declared in the project file, and the checks okrsync adds to Great
Expectations: freshness, volume change and KR jumps.

A check is written with Great Expectations' own expectation name and arguments, so GX's
documentation is the reference::

    checks:
      - expect_column_values_to_not_be_null: {column: id}
      - expect_column_values_to_be_between: {column: total_amount, min_value: 0}
        severity: warn
      - freshness: {max_age_hours: 24}     # newest cursor value no older than this
      - volume_change: {max_percent: 50}   # live records vs before this sync, in %

and on a metric (applies to every KR computed from it)::

      - max_jump_percent: 30               # a KR may not move more than this between runs

``severity: error`` (the default) blocks: nothing moves on data that fails it. ``warn`` records the
failure and lets the data through.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STREAM_BUILTINS = ("freshness", "volume_change")
METRIC_BUILTINS = ("max_jump_percent",)
RECONCILE = "reconcile"  # a cross-system reconciliation (metrics.reconcile): declared on its own, not here
BUILTIN_ARGS = {"freshness": {"max_age_hours"}, "volume_change": {"max_percent"}}
Severity = Literal["error", "warn"]
FUTURE_SKEW_SECONDS = 300  # clocks differ: a newest record this far ahead of ours is not yet "future"


class CheckSpec(BaseModel):
    """One check: ``kind`` is a GX expectation name (``expect_…``) or one of okrsync's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "error"

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, raw: Any) -> Any:
        """``{expect_x: {column: id}, severity: warn}`` → ``kind``/``kwargs``/``severity``."""
        if not isinstance(raw, dict) or "kind" in raw:
            return raw
        named = [k for k in raw if k != "severity"]
        if len(named) != 1:
            raise ValueError(
                "a check is one mapping like `expect_column_values_to_not_be_null: {column: id}` "
                "(plus optional `severity: error|warn`)"
            )
        kind = named[0]
        args = raw[kind]
        if kind in METRIC_BUILTINS and not isinstance(args, dict):
            args = {"percent": args}
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ValueError(f"the arguments of {kind!r} must be a mapping, e.g. {{column: id}}")
        return {"kind": kind, "kwargs": args, **({"severity": raw["severity"]} if "severity" in raw else {})}

    @model_validator(mode="after")
    def _builtin_args(self) -> CheckSpec:
        wanted = {"freshness": "max_age_hours", "volume_change": "max_percent", "max_jump_percent": "percent"}
        if self.kind in wanted:
            arg = wanted[self.kind]
            extra = set(self.kwargs) - {arg}
            if extra or arg not in self.kwargs:
                raise ValueError(
                    f"{self.kind} takes one argument, {arg} (got {', '.join(sorted(self.kwargs))})"
                )
            value = self.kwargs[arg]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{self.kind}: {arg} must be a number above 0")
        elif self.kind == RECONCILE:
            if not isinstance(self.kwargs.get("name"), str):
                raise ValueError("declare a reconciliation under the top-level `reconciliations:`")
        elif not self.kind.startswith("expect_"):
            raise ValueError(
                f"unknown check {self.kind!r}: use a Great Expectations expectation name "
                f"(expect_…) or one of {', '.join(STREAM_BUILTINS + METRIC_BUILTINS)}"
            )
        return self

    @property
    def builtin(self) -> bool:
        return self.kind in STREAM_BUILTINS or self.kind in METRIC_BUILTINS or self.kind == RECONCILE

    @property
    def label(self) -> str:
        """A short human name: ``expect_column_values_to_be_between(total_amount)``."""
        if self.kind == RECONCILE:
            return f"{RECONCILE}({self.kwargs['name']})"
        column = self.kwargs.get("column")
        return f"{self.kind}({column})" if column else self.kind

    @property
    def columns(self) -> set[str]:
        cols = {
            self.kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(self.kwargs.get(k), str)
        }
        listed = self.kwargs.get("column_list")
        if isinstance(listed, list):
            cols |= {c for c in listed if isinstance(c, str)}
        return cols


class Outcome(BaseModel):
    """What one check found in one sync (or one KR computation)."""

    model_config = ConfigDict(frozen=True)

    check: CheckSpec
    success: bool
    element_count: int = 0
    unexpected_count: int = 0
    failing_record_ids: tuple[str, ...] = ()  # bounded sample
    observed: str | None = None  # a human summary: "newest 2026-11-20T08:00Z is 49 h old"
    result: dict[str, Any] = Field(default_factory=dict)  # the machine-readable (GX) result, PII-free

    @property
    def blocking(self) -> bool:
        return not self.success and self.check.severity == "error"


def freshness(check: CheckSpec, newest: datetime | None, now: datetime, future: str | None = None) -> Outcome:
    """Newest cursor value (naive UTC) no older than ``max_age_hours``, and none dated in the future:
    ``future`` is the connector's count of records ahead of the source's clock; without one, a newest
    value ahead of ``now`` (this machine's clock) by more than :data:`FUTURE_SKEW_SECONDS` fails."""
    limit = Decimal(str(check.kwargs["max_age_hours"]))
    if future:
        return Outcome(check=check, success=False, observed=future)
    if newest is None:
        return Outcome(check=check, success=False, observed="the stream has no cursor value yet")
    if (ahead := (newest - now).total_seconds()) > FUTURE_SKEW_SECONDS:
        return Outcome(check=check, success=False,
                       observed=f"newest record {newest:%Y-%m-%d %H:%M} UTC is dated in the future, "
                       f"{Decimal(ahead) / 3600:.1f} h ahead of this machine's clock: check the source's "
                       "clock and the stream's timezone")
    age_h = Decimal(max(0.0, (now - newest).total_seconds())) / 3600
    return Outcome(
        check=check,
        success=age_h <= limit,
        observed=f"newest record {newest:%Y-%m-%d %H:%M} UTC is {age_h:.1f} h old (limit {limit} h)",
    )


def volume_change(check: CheckSpec, before: int, after: int) -> Outcome:
    """Live records after the sync versus before it, within ±``max_percent`` % (a first load passes)."""
    limit = Decimal(str(check.kwargs["max_percent"]))
    if before == 0:
        return Outcome(
            check=check, success=True, element_count=after, observed=f"first load: {after} records"
        )
    change = (Decimal(after - before) / before) * 100
    return Outcome(
        check=check,
        success=abs(change) <= limit,
        element_count=after,
        observed=f"{before} → {after} live records ({change:+.1f} %, limit ±{limit} %)",
    )


def max_jump(check: CheckSpec, previous: Decimal | None, value: Decimal | None) -> Outcome:
    """A KR value may not move more than ``percent`` % from its previous value."""
    limit = Decimal(str(check.kwargs["percent"]))
    if previous is None or value is None:
        return Outcome(check=check, success=True, observed="no previous value to compare with")
    if previous == 0:
        ok = value == 0
        return Outcome(check=check, success=ok, observed=f"{previous} → {value} (from zero)")
    change = (value - previous) / abs(previous) * 100
    return Outcome(
        check=check,
        success=abs(change) <= limit,
        observed=f"{previous} → {value} ({change:+.1f} %, limit ±{limit} %)",
    )
