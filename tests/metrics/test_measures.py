"""The measures registry: one class per measure, every rule declared, every member reachable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from metrics.measures import Aggregation, Measure, Records, aggregation, measures_where
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
    m = SimpleMetric.model_validate({"name": "revenue", "stream": "orders", "measure": "sum", "field": "x"})
    assert m.measure is Measure.SUM and m.model_dump(mode="json")["measure"] == "sum"


def test_metric_spec_tells_a_ratio_from_a_simple_metric() -> None:
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(MetricSpec)
    simple = adapter.validate_python({"name": "n", "stream": "orders", "measure": "count"})
    ratio = adapter.validate_python({"name": "r", "measure": "ratio", "numerator": "a", "denominator": "b"})
    assert isinstance(simple, SimpleMetric) and isinstance(ratio, RatioMetric)
