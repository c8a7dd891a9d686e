"""The resolved computation behind one key result: what a stored value was computed with.

A :class:`KrDefinition` is self-contained (metric, parts of a ratio, pinned dimensions, period), so a
value computed months ago can be drilled into with the definition it had then, even after the project
file changed. Its hash identifies it; the store keeps the JSON under that hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from metrics.periods import Period
from metrics.spec import RatioMetric, ScalarValue, SimpleMetric


class PeriodSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str
    start: date
    end: date
    timezone: str

    def period(self) -> Period:
        return Period(self.label, self.start, self.end, self.timezone)

    @classmethod
    def of(cls, p: Period) -> PeriodSpec:
        return cls(label=p.label, start=p.start, end=p.end, timezone=p.timezone)


class KrDefinition(BaseModel):
    """Everything needed to recompute a KR value (and its lineage) from the store's records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kr_id: str
    metric: SimpleMetric | None = None
    ratio: RatioMetric | None = None
    numerator: SimpleMetric | None = None
    denominator: SimpleMetric | None = None
    dimensions: dict[str, ScalarValue] = {}
    period: PeriodSpec

    @property
    def parts(self) -> dict[str, SimpleMetric]:
        """The simple metrics evaluated: ``{"value": m}`` or ``{"numerator": n, "denominator": d}``."""
        if self.metric is not None:
            return {"value": self.metric}
        assert self.numerator is not None and self.denominator is not None
        return {"numerator": self.numerator, "denominator": self.denominator}

    @property
    def name(self) -> str:
        return self.metric.name if self.metric is not None else self.ratio.name  # type: ignore[union-attr]

    @property
    def streams(self) -> list[str]:
        return sorted({p.stream for p in self.parts.values()})

    def canonical_json(self) -> str:
        return json.dumps(
            self.model_dump(mode="json", by_alias=True), sort_keys=True, default=_plain, separators=(",", ":")
        )

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, body: str) -> KrDefinition:
        return cls.model_validate_json(body)


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(type(v))


def build_definition(
    kr_id: str,
    metric: SimpleMetric | RatioMetric,
    metrics: Mapping[str, Any],
    dimensions: Mapping[str, ScalarValue],
    period: Period,
) -> KrDefinition:
    """Resolve a KR's metric (and a ratio's two parts) into a self-contained definition."""

    # Checks gate a value; they are not part of what it means, so they stay out of the hash.
    def bare(m: Any) -> Any:
        return m.model_copy(update={"checks": ()})

    if isinstance(metric, RatioMetric):
        return KrDefinition(
            kr_id=kr_id,
            ratio=bare(metric),
            numerator=bare(metrics[metric.numerator]),
            denominator=bare(metrics[metric.denominator]),
            dimensions=dict(dimensions),
            period=PeriodSpec.of(period),
        )
    return KrDefinition(
        kr_id=kr_id, metric=bare(metric), dimensions=dict(dimensions), period=PeriodSpec.of(period)
    )
