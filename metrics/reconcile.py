"""Cross-system reconciliation: two metrics from different systems, for the same period, compared.

A reconciliation is declared in the project file's ``reconciliations:`` section (docs/project-file.md)::

    reconciliations:
      crm_vs_erp:
        left: won_amount              # a sum or count metric (e.g. Salesforce closed-won amount)
        right: crm_booked             # another one (e.g. ERP orders booked from a deal)
        dimensions: {CurrencyIsoCode: currency}   # left dimension → right dimension: totals per value
        match: {left: Id, right: crm_reference}   # optional: the record key on each side
        tolerance: {absolute: 1}      # or {percent: 0.5}; default: exact
        severity: error               # error holds the KRs on either metric; warn only reports

Each side's records are the records behind the metric's value over the period (their contributions
add up to it). Without ``match`` the check compares the totals, overall and per dimension value. With
``match`` it also pairs records by key (records sharing a key add up) and lists the keys found on one
side only (unmatched) and those whose amounts differ beyond the tolerance (mismatched). It passes
when nothing is unmatched or mismatched and every total is within the tolerance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metrics.definition import KrDefinition
from metrics.measures import RID
from metrics.quality import RECONCILE, CheckSpec, Outcome
from metrics.spec import parse_number

if TYPE_CHECKING:  # a reconciliation's rows need the evaluator; loading a project file does not
    from metrics.evaluate import StreamView

RECONCILE_MEASURES = ("sum", "count")
MAX_LISTED = 200  # unmatched or mismatched keys kept per side in a stored result
Side = Literal["left", "right"]


class Tolerance(BaseModel):
    """How far two amounts may differ: ``absolute`` (in the metrics' unit) or ``percent`` (of the
    larger of the two amounts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute: Decimal | None = Field(default=None, ge=0)
    percent: Decimal | None = Field(default=None, ge=0, le=100)

    _numbers = field_validator("absolute", "percent", mode="before")(parse_number)

    @model_validator(mode="after")
    def _one(self) -> Tolerance:
        if (self.absolute is None) == (self.percent is None):
            raise ValueError("give one of `absolute: 1.00` or `percent: 0.5`")
        return self

    def allows(self, left: Decimal, right: Decimal) -> bool:
        gap = abs(left - right)
        if self.absolute is not None:
            return gap <= self.absolute
        assert self.percent is not None
        return gap * 100 <= self.percent * max(abs(left), abs(right))

    def text(self) -> str:
        return f"±{self.absolute}" if self.absolute is not None else f"±{self.percent} %"


EXACT = Tolerance(absolute=Decimal(0))


class MatchKey(BaseModel):
    """The field on each side that names the same business record (opportunity id ↔ order reference)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    left: str
    right: str


class ReconciliationSpec(BaseModel):
    """One ``reconciliations:`` entry (its name is its key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    left: str
    right: str
    description: str | None = None
    period: str | None = None  # default: settings.default_period
    dimensions: dict[str, str] = {}  # left dimension → right dimension
    match: MatchKey | None = None
    tolerance: Tolerance = EXACT
    severity: Literal["error", "warn"] = "error"

    @field_validator("period", mode="before")
    @classmethod
    def _year_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _two_sides(self) -> ReconciliationSpec:
        if self.left == self.right:
            raise ValueError("left and right must be two different metrics")
        return self

    @property
    def label(self) -> str:
        return self.check().label

    def check(self) -> CheckSpec:
        """The check it is recorded as (kind ``reconcile``, its declaration as the arguments)."""
        return CheckSpec(kind=RECONCILE, kwargs=self.model_dump(mode="json"), severity=self.severity)


@dataclass(frozen=True)
class Row:
    """One record behind one side: its id, contribution, match key and dimension values."""

    record_id: str
    amount: Decimal
    key: str | None
    dims: tuple[str, ...]


def side_rows(
    conn: sa.Connection, view: StreamView, d: KrDefinition, as_of: datetime, key: str | None,
    dims: Sequence[str],
) -> list[Row]:
    """The records behind ``d`` (one simple metric over a period) with their contributions."""
    from metrics.evaluate import records_of

    metric = d.metric
    assert metric is not None
    records = records_of(metric, d, view, as_of)
    contribution = metric.measure.aggregation.contribution(records)
    t = view.table
    cols = [t.c[RID], contribution.label("amount")]
    cols += [t.c[key].label("key")] if key else []
    cols += [t.c[x].label(f"d{i}") for i, x in enumerate(dims)]
    out = []
    for r in conn.execute(sa.select(*cols).where(records.condition).order_by(t.c[RID])):
        out.append(Row(
            str(r[0]), Decimal(str(r.amount or 0)), _text(r.key) if key else None,
            tuple(_text(r._mapping[f"d{i}"]) or "" for i in range(len(dims))),
        ))
    return out


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = str(v).strip()
    return text or None


def _money(v: Decimal) -> str:
    """``5000``, ``5900.2``: exact, without trailing zeros (the same amount always reads the same)."""
    return format(v.normalize(), "f") if v else "0"


@dataclass
class Pair:
    """What one key (or one dimension value) adds up to on each side."""

    key: str
    left: Decimal = Decimal(0)
    right: Decimal = Decimal(0)
    left_records: list[str] = field(default_factory=list)
    right_records: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"key": self.key, "left": _money(self.left), "right": _money(self.right),
                "difference": _money(self.left - self.right),
                "left_records": self.left_records, "right_records": self.right_records}


@dataclass(frozen=True)
class Finding:
    """What a reconciliation found: totals, totals per dimension value, and (with a match key) the
    unmatched and mismatched keys."""

    spec: ReconciliationSpec
    left_total: Decimal
    right_total: Decimal
    left_records: int
    right_records: int
    by_dimension: list[Pair]
    unmatched_left: list[Pair]
    unmatched_right: list[Pair]
    mismatched: list[Pair]
    matched: int

    @property
    def bad_dimensions(self) -> list[Pair]:
        return [p for p in self.by_dimension if not self.spec.tolerance.allows(p.left, p.right)]

    @property
    def success(self) -> bool:
        return (self.spec.tolerance.allows(self.left_total, self.right_total) and not self.bad_dimensions
                and not self.unmatched_left and not self.unmatched_right and not self.mismatched)

    @property
    def problems(self) -> int:
        """What is counted as failing: keys (with a match key), else dimension values, else the total."""
        if self.spec.match is None:
            if self.spec.dimensions:
                return len(self.bad_dimensions)
            return int(not self.spec.tolerance.allows(self.left_total, self.right_total))
        return len(self.unmatched_left) + len(self.unmatched_right) + len(self.mismatched)

    def observed(self) -> str:
        s = self.spec
        gap = self.left_total - self.right_total
        text = (f"{s.left} {_money(self.left_total)} vs {s.right} {_money(self.right_total)} "
                f"(difference {_money(gap)}, tolerance {s.tolerance.text()})")
        if s.match is not None:
            text += (f"; {self.matched} keys matched, {len(self.unmatched_left)} only in {s.left}, "
                     f"{len(self.unmatched_right)} only in {s.right}, {len(self.mismatched)} mismatched")
        elif s.dimensions:
            text += f"; {len(self.bad_dimensions)} of {len(self.by_dimension)} dimension values differ"
        return text

    def result(self) -> dict[str, Any]:
        """The machine-readable finding stored with the check (record ids and amounts, no other field)."""
        s = self.spec
        body: dict[str, Any] = {
            "reconciliation": s.name, "left": {"metric": s.left, "total": _money(self.left_total),
                                               "records": self.left_records},
            "right": {"metric": s.right, "total": _money(self.right_total), "records": self.right_records},
            "difference": _money(self.left_total - self.right_total), "tolerance": s.tolerance.text(),
            "dimensions": [{"key": p.key, "left": _money(p.left), "right": _money(p.right),
                            "difference": _money(p.left - p.right), "left_count": len(p.left_records),
                            "right_count": len(p.right_records),
                            "within_tolerance": s.tolerance.allows(p.left, p.right)}
                           for p in self.by_dimension],
            "dimension_fields": dict(s.dimensions),
            "match": None if s.match is None else s.match.model_dump(),
        }
        if s.match is not None:
            body |= {"matched": self.matched,
                     "unmatched_left": [p.json() for p in self.unmatched_left[:MAX_LISTED]],
                     "unmatched_right": [p.json() for p in self.unmatched_right[:MAX_LISTED]],
                     "mismatched": [p.json() for p in self.mismatched[:MAX_LISTED]],
                     "counts": {"unmatched_left": len(self.unmatched_left),
                                "unmatched_right": len(self.unmatched_right),
                                "mismatched": len(self.mismatched)}}
        body["fingerprint"] = self.fingerprint()
        return body

    def outcome(self) -> Outcome:
        return Outcome(check=self.spec.check(), success=self.success,
                       element_count=self.left_records + self.right_records, unexpected_count=self.problems,
                       observed=self.observed(), result=self.result())

    def fingerprint(self) -> str:
        """Identifies the difference itself: the same records, amounts and totals give the same one."""
        parts = [_money(self.left_total), _money(self.right_total),
                 [p.json() for p in self.by_dimension],
                 [[p.json() for p in group] for group in (self.unmatched_left, self.unmatched_right,
                                                          self.mismatched)]]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _group(rows: Iterable[Row], key: Any, pairs: dict[str, Pair], side: Side) -> None:
    for r in rows:
        k = key(r)
        p = pairs.setdefault(k, Pair(k))
        if side == "left":
            p.left += r.amount
            p.left_records.append(r.record_id)
        else:
            p.right += r.amount
            p.right_records.append(r.record_id)


def compare(spec: ReconciliationSpec, left: Sequence[Row], right: Sequence[Row]) -> Finding:
    """Compare the records of both sides (see the module's docstring)."""
    by_dim: dict[str, Pair] = {}
    if spec.dimensions:
        _group(left, lambda r: " · ".join(r.dims), by_dim, "left")
        _group(right, lambda r: " · ".join(r.dims), by_dim, "right")
    unmatched_left: list[Pair] = []
    unmatched_right: list[Pair] = []
    mismatched: list[Pair] = []
    matched = 0
    if spec.match is not None:
        keys: dict[str, Pair] = {}
        # A record without a key matches nothing: it stands alone, under its record id.
        _group(left, lambda r: r.key or f"(no key: left {r.record_id})", keys, "left")
        _group(right, lambda r: r.key or f"(no key: right {r.record_id})", keys, "right")
        for p in keys.values():
            if not p.right_records:
                unmatched_left.append(p)
            elif not p.left_records:
                unmatched_right.append(p)
            else:
                matched += 1
                if not spec.tolerance.allows(p.left, p.right):
                    mismatched.append(p)
    for group in (unmatched_left, unmatched_right, mismatched):
        group.sort(key=lambda p: (-abs(p.left - p.right), p.key))  # biggest differences first
    return Finding(
        spec, sum((r.amount for r in left), Decimal(0)), sum((r.amount for r in right), Decimal(0)),
        len(left), len(right), sorted(by_dim.values(), key=lambda p: p.key),
        unmatched_left, unmatched_right, mismatched, matched,
    )
