"""Typed declarations of metrics, filters and key results, as written in the project file.

Filters are a structured AST (``field``/``op``/``value`` with ``and``/``or``/``not``); there is no way
to write SQL or SOQL text in a metric, so no user string ever becomes query text.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from metrics.measures import Measure, measures_where
from metrics.quality import METRIC_BUILTINS, CheckSpec

FROZEN = ConfigDict(frozen=True, extra="forbid")

ScalarValue = Union[bool, int, Decimal, datetime, date, str]  # noqa: UP007 - pydantic union order matters

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
LIST_OPS = ("in", "not_in")
NULL_OPS = ("is_null", "not_null")
TEXT_OPS = ("contains", "starts_with")
Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null", "between",
             "contains", "starts_with"]
MAX_LIST = 1000
MAX_TEXT = 1024


class AsOfDay(BaseModel):
    """A filter value relative to the time a key result is computed for (its as-of time):
    ``{field: due_date, op: "<", value: {days_before_as_of: 0}}`` keeps records due before the as-of
    day, e.g. shipments or invoices overdue *as of* each run, back-filled runs included. A date field
    compares with the as-of day in the period's timezone (minus N days); a datetime field with the as-of
    instant (minus N days)."""

    model_config = FROZEN
    days_before_as_of: int = Field(ge=0, le=36600)


def _check_text(v: Any) -> Any:
    if isinstance(v, str):
        if len(v) > MAX_TEXT:
            raise ValueError(f"a filter string may be at most {MAX_TEXT} characters")
        if "\x00" in v:
            raise ValueError("a filter string may not contain a NUL character")
    return v


class Condition(BaseModel):
    """``{field: status, op: in, value: [confirmed, shipped]}``."""

    model_config = FROZEN

    field: str = Field(min_length=1)
    op: Op
    value: AsOfDay | ScalarValue | tuple[ScalarValue, ...] | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _lists_to_tuples(cls, v: Any) -> Any:
        if isinstance(v, list):
            if len(v) > MAX_LIST:
                raise ValueError(f"a filter list may hold at most {MAX_LIST} values")
            return tuple(_check_text(x) for x in v)
        if isinstance(v, float):
            # YAML floats become exact decimals from their text, never binary floats.
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError("a filter number must be finite")
            return Decimal(repr(v))
        return _check_text(v)

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        v = self.value
        if self.op in NULL_OPS:
            if v is not None:
                raise ValueError(f"op {self.op!r} takes no value")
        elif self.op in LIST_OPS:
            if not isinstance(v, tuple) or not v:
                raise ValueError(f"op {self.op!r} needs a non-empty list as value")
        elif self.op == "between":
            if not isinstance(v, tuple) or len(v) != 2:
                raise ValueError("op 'between' needs a list of two values: [low, high]")
        elif isinstance(v, tuple) or v is None:
            raise ValueError(f"op {self.op!r} needs a single value")
        elif isinstance(v, AsOfDay) and self.op not in COMPARISONS:
            raise ValueError(f"{{days_before_as_of: N}} is a point in time: compare it with "
                             f"{', '.join(COMPARISONS)}, not {self.op!r}")
        elif self.op in TEXT_OPS and not isinstance(v, str):
            raise ValueError(f"op {self.op!r} needs a text value")
        return self


class And(BaseModel):
    model_config = FROZEN
    and_: tuple[Filter, ...] = Field(alias="and", min_length=1)


class Or(BaseModel):
    model_config = FROZEN
    or_: tuple[Filter, ...] = Field(alias="or", min_length=1)


class Not(BaseModel):
    model_config = FROZEN
    not_: Filter = Field(alias="not")


Filter = Annotated[Union[Condition, And, Or, Not], Field(union_mode="left_to_right")]  # noqa: UP007

And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()


def conditions(f: Filter | None) -> list[Condition]:
    """Every condition of a filter, however nested in and / or / not."""
    if f is None:
        return []
    if isinstance(f, Condition):
        return [f]
    if isinstance(f, And):
        return [c for x in f.and_ for c in conditions(x)]
    if isinstance(f, Or):
        return [c for x in f.or_ for c in conditions(x)]
    return conditions(f.not_)


def filter_fields(f: Filter | None) -> set[str]:
    """Every field a filter refers to."""
    return {c.field for c in conditions(f)}


def _metric_checks(checks: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
    for c in checks:
        if c.kind not in METRIC_BUILTINS:
            raise ValueError(f"{c.kind!r} checks data, so it belongs under the stream's `checks`; "
                             f"a metric takes {', '.join(METRIC_BUILTINS)}")
    return checks


class TrailingWindow(BaseModel):
    """The N days before the as-of time (``window: {trailing_days: 30}``)."""

    model_config = FROZEN
    trailing_days: int = Field(ge=1, le=3660)


WindowKind = Literal["period_to_date", "as_of_end", "all", "period_average"]
Window = Union[WindowKind, TrailingWindow]  # noqa: UP007

DAYS_MEASURES = measures_where(lambda a: a.takes_days)  # the measures that take days_between
PERIOD_AVERAGE_MEASURES = measures_where(lambda a: a.takes_period_average)


class SimpleMetric(BaseModel):
    """An aggregate over one stream.

    ``window`` relates ``time_field`` to the key result's period: ``period_to_date`` (default: from the
    period start to the as-of time, capped at the period end), ``as_of_end`` (everything up to the
    as-of time capped at the period end, e.g. customers ever won), ``{trailing_days: N}``, or ``all``
    (no time restriction). ``dimensions`` lists the fields a key result may pin to a value
    (``dimensions: {region: EMEA}``), so one metric serves many team-level KRs. ``days_between: [from, to]``
    aggregates the days from one date field to another instead of a ``field`` (``to − from``, per record).
    """

    model_config = FROZEN

    name: str
    stream: str
    measure: Measure
    field: str | None = None
    filter: Filter | None = None
    time_field: str | None = None
    window: Window = "period_to_date"
    # With window as_of_end: records still "open" at the window's end, e.g. headcount at a date
    # (time_field: hire_date, until_field: termination_date).
    until_field: str | None = Field(default=None, exclude_if=lambda v: v is None)  # unset: old hashes hold
    # Instead of `field`: the days from the first date field to the second, per record (time to hire:
    # days_between: [appliedDate, hiredDate]); records where either date is null are left out.
    days_between: tuple[str, str] | None = Field(default=None, exclude_if=lambda v: v is None)
    dimensions: tuple[str, ...] = ()
    description: str | None = None
    unit: str | None = None
    checks: tuple[CheckSpec, ...] = ()

    _simple_checks = field_validator("checks")(lambda v: _metric_checks(v))

    @model_validator(mode="after")
    def _field_needed(self) -> SimpleMetric:
        if self.days_between is not None:
            if self.field is not None:
                raise ValueError("give either 'field' or 'days_between' (the value to aggregate), not both")
            if not self.measure.aggregation.takes_days:
                raise ValueError(f"days_between is a number of days to aggregate: it needs measure "
                                 f"{', '.join(DAYS_MEASURES)}, not {self.measure.value!r}")
            start, end = self.days_between
            if not start or not end or start == end:
                raise ValueError("days_between takes two different date fields: [from, to], e.g. "
                                 "[appliedDate, hiredDate]")
        elif self.measure.aggregation.needs_field and not self.field:
            raise ValueError(f"measure {self.measure.value!r} needs a 'field' to aggregate (or, for a "
                             "number of days, 'days_between: [from, to]')")
        if self.window != "all" and not isinstance(self.window, TrailingWindow) and self.time_field is None:
            # Without a time field the window has nothing to apply to; say so rather than ignore it.
            if self.window != "period_to_date":
                raise ValueError(f"window {self.window!r} needs a 'time_field'")
        if isinstance(self.window, TrailingWindow) and self.time_field is None:
            raise ValueError("a trailing window needs a 'time_field'")
        if self.until_field is not None and (self.window not in ("as_of_end", "period_average")
                                             or self.time_field is None):
            raise ValueError("until_field counts what is still open at a date: it needs window: as_of_end "
                             "(or period_average) and a time_field (e.g. hire_date and termination_date "
                             "for a headcount)")
        averaged = self.measure.aggregation.takes_period_average
        if self.window == "period_average" and (self.until_field is None or not averaged):
            raise ValueError("window period_average is the mean of the counts open at the period's start "
                             f"and end: it needs measure: {' or '.join(PERIOD_AVERAGE_MEASURES)} and an "
                             "until_field")
        return self

    def fields_used(self) -> set[str]:
        used = filter_fields(self.filter) | set(self.dimensions)
        if self.field:
            used.add(self.field)
        if self.time_field:
            used.add(self.time_field)
        if self.until_field:
            used.add(self.until_field)
        if self.days_between:
            used.update(self.days_between)
        return used


class RatioMetric(BaseModel):
    """numerator / denominator, both names of simple metrics. An empty denominator gives no value."""

    model_config = FROZEN

    name: str
    measure: Literal["ratio"]
    numerator: str
    denominator: str
    description: str | None = None
    unit: str | None = None
    checks: tuple[CheckSpec, ...] = ()

    _ratio_checks = field_validator("checks")(lambda v: _metric_checks(v))


def _metric_kind(v: Any) -> str:
    measure = v.get("measure") if isinstance(v, dict) else getattr(v, "measure", None)
    return "ratio" if measure == "ratio" else "simple"


# `measure` tells the two apart: ratio, or any measure of a simple metric.
MetricSpec = Annotated[
    Union[Annotated[SimpleMetric, Tag("simple")], Annotated[RatioMetric, Tag("ratio")]],  # noqa: UP007
    Discriminator(_metric_kind),
]


def parse_number(v: Any) -> Any:
    """Numbers for baselines and targets: ints, decimals from their text, or ``"12%"`` → 0.12."""
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, str):
        text = v.strip().replace(",", "").replace("_", "")
        try:
            if text.endswith("%"):
                return Decimal(text[:-1].strip()) / 100
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{v!r} is not a number (write 1200000, 1.2e6 or 12%)") from None
    return v


class KeyResultSpec(BaseModel):
    """A key result bound to a metric. ``period`` is e.g. ``2026-Q4``, ``FY2027-Q1``, ``2026``."""

    model_config = FROZEN

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)
    title: str
    metric: str
    target: Decimal
    baseline: Decimal = Decimal(0)
    direction: Literal["increase", "decrease"] = "increase"
    period: str | None = None
    owner: str | None = None
    weight: Decimal = Field(default=Decimal(1), ge=0)
    dimensions: dict[str, ScalarValue] = Field(default_factory=dict)
    pace: Literal["linear", "none"] = "linear"
    unit: str | None = None
    # Days after the period ends before its value is final (okr_store.closing); else the sources' or
    # settings.close_after_days.
    close_after_days: int | None = Field(default=None, ge=0, le=366)

    _numbers = field_validator("target", "baseline", "weight", mode="before")(parse_number)

    @model_validator(mode="after")
    def _direction_matches(self) -> KeyResultSpec:
        if self.target == self.baseline:
            raise ValueError("target equals baseline: progress would be undefined")
        if self.direction == "increase" and self.target < self.baseline:
            raise ValueError("direction 'increase' needs target > baseline (or set direction: decrease)")
        if self.direction == "decrease" and self.target > self.baseline:
            raise ValueError("direction 'decrease' needs target < baseline (or set direction: increase)")
        return self


class ObjectiveSpec(BaseModel):
    """An objective with key results and nested objectives (company → department → team)."""

    model_config = FROZEN

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)
    title: str
    owner: str | None = None
    weight: Decimal = Field(default=Decimal(1), ge=0)
    period: str | None = None
    key_results: tuple[KeyResultSpec, ...] = ()
    objectives: tuple[ObjectiveSpec, ...] = ()

    _numbers = field_validator("weight", mode="before")(parse_number)


ObjectiveSpec.model_rebuild()
