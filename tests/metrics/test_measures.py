"""The measures registry: one class per measure, every rule declared, every member reachable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from metrics.definition import build_definition
from metrics.measures import Aggregation, Measure, Records, aggregation, measures_where
from metrics.periods import parse_period
from metrics.spec import DAYS_MEASURES, MetricSpec, RatioMetric, SimpleMetric


@pytest.mark.parametrize("measure", list(Measure))
def test_every_measure_has_its_class(measure: Measure) -> None:
    got = aggregation(measure)
    assert got is measure.aggregation and got.measure is measure
    assert all(hasattr(got, rule) for rule in Aggregation.RULES)


def test_a_measure_class_that_leaves_a_rule_undeclared_fails_where_it_is_defined() -> None:
    with pytest.raises(TypeError, match="Half does not declare .*needs_numeric.*rankable"):
        class Half(Aggregation):  # noqa: F841 - defining it is the test
            measure = Measure.SUM
            role = "halved"
            needs_field = True
            on_sealed_values = False
            takes_days = False
            takes_period_average = False
            counts_records = False

            def aggregate(self, records: Records) -> Any:
                return sa.func.sum(records.measured()) / 2

            def value(self, agg: Any, n: int, name: str) -> tuple[Decimal | None, str | None]:
                return agg, None


def test_rules_read_from_the_registry_keep_their_messages() -> None:
    assert DAYS_MEASURES[:4] == ("sum", "avg", "min", "max")
    assert measures_where(lambda a: a.on_sealed_values) == ("count", "count_distinct")
    assert measures_where(lambda a: a.takes_period_average) == ("count",)


def test_the_measure_is_kept_as_its_name_so_definition_hashes_hold() -> None:
    """The hashes below were computed before measures became an enum: stored values keep their
    definitions."""
    q4 = parse_period("2026-Q4", timezone="Europe/Berlin")
    metrics: dict[str, Any] = {
        "revenue": SimpleMetric.model_validate({"name": "revenue", "stream": "orders", "measure": "sum",
                                                "field": "amount", "time_field": "day",
                                                "dimensions": ["region"]}),
        "regions": SimpleMetric.model_validate({"name": "regions", "stream": "orders",
                                                "measure": "count_distinct", "field": "region",
                                                "time_field": "day"}),
        "orders": SimpleMetric.model_validate({"name": "orders", "stream": "orders", "measure": "count",
                                               "time_field": "day"}),
        "share": RatioMetric(name="share", measure="ratio", numerator="regions", denominator="orders"),
    }
    assert metrics["revenue"].measure is Measure.SUM
    hashes = {n: build_definition("KR", metrics[n], metrics, {"region": "EMEA"} if n == "revenue" else {},
                                  q4).hash for n in ("revenue", "regions", "share")}
    assert hashes == {
        "revenue": "251faa321e0341a45192b3224018eb60a47a6cb5a09799e7268fd1af51bae196",
        "regions": "32d3b7499919e5cea524bf0d8bc2daa8b1674cd20c4dfc7cca9128ab42e5de8d",
        "share": "5f279c121d5ad7a209e0c0a59cb75bebbc85b0f7db1cb155e36ec3008ed173e8",
    }


def test_metric_spec_tells_a_ratio_from_a_simple_metric() -> None:
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(MetricSpec)
    simple = adapter.validate_python({"name": "n", "stream": "orders", "measure": "count"})
    ratio = adapter.validate_python({"name": "r", "measure": "ratio", "numerator": "a", "denominator": "b"})
    assert isinstance(simple, SimpleMetric) and isinstance(ratio, RatioMetric)
