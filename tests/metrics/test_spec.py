"""Metric declarations: what a simple and a ratio metric accept, checked when they are parsed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from metrics.spec import RatioMetric, SimpleMetric

STREAM_CHECK = {"expect_column_values_to_not_be_null": {"column": "id"}}
METRIC_CHECK = {"max_jump_percent": 30}


def simple(**kw: Any) -> SimpleMetric:
    return SimpleMetric.model_validate({"name": "orders", "stream": "orders", "measure": "count", **kw})


def ratio(**kw: Any) -> RatioMetric:
    return RatioMetric.model_validate({"name": "late_rate", "measure": "ratio", "numerator": "late",
                                       "denominator": "orders", **kw})


@pytest.mark.parametrize("make", [simple, ratio], ids=["simple", "ratio"])
def test_a_metric_takes_metric_checks(make: Any) -> None:
    (check,) = make(checks=[METRIC_CHECK]).checks
    assert check.kind == "max_jump_percent" and check.kwargs == {"percent": 30}


@pytest.mark.parametrize("make", [simple, ratio], ids=["simple", "ratio"])
@pytest.mark.parametrize("check", [STREAM_CHECK, {"freshness": {"max_age_hours": 24}}])
def test_a_metric_refuses_a_check_on_the_stream_data(make: Any, check: dict[str, Any]) -> None:
    """A check on the records belongs under the stream; a ratio refuses it as a simple metric does."""
    with pytest.raises(ValidationError, match="belongs under the stream's `checks`"):
        make(checks=[check])
