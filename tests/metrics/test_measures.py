"""The measures registry: one class per measure, every rule declared, every member reachable."""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta
from decimal import Decimal
from random import Random
from typing import Any

import pytest
import sqlalchemy as sa

from metrics.definition import build_definition
from metrics.evaluate import StreamView, contribution_parts, evaluate
from metrics.measures import Aggregation, Measure, Records, aggregation, measures_where
from metrics.periods import parse_period
from metrics.spec import DAYS_MEASURES, MetricSpec, RatioMetric, SimpleMetric
from okr_store.columns import ExactDecimal
from okrsync.schema import Field, FieldType, StreamSchema


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


# -- median and count_distinct, against plain Python over the same rows (SQLite and PostgreSQL) ---------

SCHEMA = StreamSchema((Field("id", FieldType.INTEGER), Field("region", FieldType.STRING),
                       Field("amount", FieldType.DECIMAL, 2), Field("qty", FieldType.INTEGER),
                       Field("applied", FieldType.DATE), Field("day", FieldType.DATE)))
Q3 = parse_period("2026-Q3", timezone="Europe/Berlin")
AS_OF = datetime(2026, 10, 15, 12, 0)
DIMS = (None, "EMEA", "APAC", "Nowhere")  # Nowhere has no records


def sample_rows() -> list[dict[str, Any]]:
    rng = Random(14)
    out: list[dict[str, Any]] = []
    for i in range(1, 92):
        day = date(2026, 6, 20) + timedelta(days=rng.randrange(110))
        out.append({"id": i, "region": rng.choice(["EMEA", "APAC", "Americas", None]),
                    # ties, negatives and missing amounts; quantities repeat a lot
                    "amount": None if i % 11 == 0 else Decimal(rng.randrange(-500, 5000, 25)) / 100,
                    "qty": rng.randrange(0, 6), "applied": day - timedelta(days=rng.randrange(-3, 60)),
                    "day": day})
    return out


def orders_view(url: str, data: list[dict[str, Any]]) -> tuple[sa.Engine, StreamView]:
    engine = sa.create_engine(url)
    t = sa.Table("orders", sa.MetaData(), sa.Column("_rid", sa.String(20)), sa.Column("id", sa.Integer),
                 sa.Column("region", sa.String(20)), sa.Column("amount", ExactDecimal(2)),
                 sa.Column("qty", sa.Integer), sa.Column("applied", sa.Date), sa.Column("day", sa.Date))
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{**r, "_rid": f"r{r['id']:03d}"} for r in data])
    return engine, StreamView("orders", t, SCHEMA)


def spec(name: str, measure: str, **kw: Any) -> SimpleMetric:
    return SimpleMetric.model_validate({"name": name, "stream": "orders", "measure": measure,
                                        "time_field": "day", "dimensions": ["region"], **kw})


MEASURED = {  # metric → (spec, what each record measures, independently)
    "median_amount": (spec("median_amount", "median", field="amount"), lambda r: r["amount"]),
    "median_qty": (spec("median_qty", "median", field="qty"), lambda r: r["qty"]),
    "median_days": (spec("median_days", "median", days_between=["applied", "day"]),
                    lambda r: (r["day"] - r["applied"]).days),
    "regions": (spec("regions", "count_distinct", field="region"), lambda r: r["region"]),
    "quantities": (spec("quantities", "count_distinct", field="qty"), lambda r: r["qty"]),
}


def in_q3(data: list[dict[str, Any]], name: str, region: str | None) -> dict[str, Any]:
    """Record id → what it measures, for the records in Q3 (of ``region``) that have a value."""
    of = MEASURED[name][1]
    return {f"r{r['id']:03d}": of(r) for r in data
            if date(2026, 7, 1) <= r["day"] <= date(2026, 9, 30) and (region is None or r["region"] == region)
            and of(r) is not None}


def check_measures(url: str) -> None:
    data = sample_rows()
    engine, view = orders_view(url, data)
    metrics = {n: s for n, (s, _) in MEASURED.items()}
    defs = [build_definition(f"{n}/{dim}", m, metrics, {"region": dim} if dim else {}, Q3)
            for n, m in metrics.items() for dim in DIMS]
    sizes = set()
    with engine.connect() as conn:
        got = evaluate(conn, {"orders": view}, defs, AS_OF)
        for d in defs:
            name, dim = d.kr_id.split("/")
            values = in_q3(data, name, None if dim == "None" else dim)
            e = got[d.kr_id]
            assert e.records == len(values), d.kr_id
            (part,) = contribution_parts({"orders": view}, d, AS_OF)
            rows = conn.execute(part.select).all()
            assert {r._rid for r in rows} == set(values), d.kr_id  # the records in the group
            if name.startswith("median"):
                sizes.add(len(values) % 2 if values else "none")
                check_median(d.kr_id, e.value, e.reason, values, rows)
            else:
                check_distinct(d.kr_id, e.value, values, rows)
    assert sizes == {0, 1, "none"}  # groups with an even and an odd number of records, and empty ones
    engine.dispose()


def check_median(kr: str, value: Decimal | None, reason: str | None, values: dict[str, Any],
                 rows: list[Any]) -> None:
    if not values:
        assert value is None and reason is not None and "no records" in reason, kr
        return
    assert value == statistics.median(Decimal(v) for v in values.values()), kr
    contributions = {r._rid: Decimal(r.contribution) for r in rows}
    assert contributions == {k: Decimal(v) for k, v in values.items()}, kr  # each record its value
    middle = [r for r in rows if r.role == "median"]
    assert len(middle) == 2 - len(values) % 2, kr
    assert sum(Decimal(r.contribution) for r in middle) / len(middle) == value, kr
    below = [Decimal(r.contribution) for r in rows if r.role == "below"]
    above = [Decimal(r.contribution) for r in rows if r.role == "above"]
    assert len(below) == len(above) == (len(values) - len(middle)) // 2, kr
    assert all(b <= value for b in below) and all(a >= value for a in above), kr


def check_distinct(kr: str, value: Decimal | None, values: dict[str, Any], rows: list[Any]) -> None:
    assert value == len(set(values.values())), kr
    first: dict[Any, str] = {}
    for rid in sorted(values):
        first.setdefault(values[rid], rid)
    assert {r._rid for r in rows if r.contribution == 1 and r.role == "distinct"} == set(first.values()), kr
    assert {r.role for r in rows if r.contribution == 0} <= {"duplicate"}, kr
    assert sum(Decimal(r.contribution) for r in rows) == value, kr


def test_median_and_count_distinct_on_sqlite() -> None:
    check_measures("sqlite://")


def test_median_and_count_distinct_on_postgresql(pg_url: str) -> None:
    check_measures(pg_url)


def test_a_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() -> None:
    """Small cases whose medians are plain to see; ties and the order of the rows do not matter."""
    cases = [([7], "7"), ([3, 1], "2"), ([5, 1, 3], "3"), ([4, 1, 3, 2], "2.5"), ([2, 2, 9, 2], "2"),
             ([Decimal("0.01"), Decimal("0.02")], "0.015"), ([-3, 10, -3, 4, 8], "4")]
    for amounts, want in cases:
        data = [{"id": i, "region": "EMEA", "amount": Decimal(a), "qty": 1, "applied": date(2026, 8, 1),
                 "day": date(2026, 8, 1)} for i, a in enumerate(amounts, 1)]
        engine, view = orders_view("sqlite://", data)
        m = spec("m", "median", field="amount")
        d = build_definition("KR", m, {"m": m}, {}, Q3)
        with engine.connect() as conn:
            assert evaluate(conn, {"orders": view}, [d], AS_OF)["KR"].value == Decimal(want), amounts
        engine.dispose()


def test_a_ratio_of_medians_credits_each_record_its_value() -> None:
    data = [{"id": i, "region": "EMEA" if i % 2 else "APAC", "amount": Decimal(i), "qty": i % 3,
             "applied": date(2026, 8, 1), "day": date(2026, 8, i)} for i in range(1, 8)]
    engine, view = orders_view("sqlite://", data)
    metrics: dict[str, Any] = {"emea": spec("emea", "median", field="amount",
                                            filter={"field": "region", "op": "=", "value": "EMEA"}),
                               "all": spec("all", "median", field="amount")}
    metrics["r"] = RatioMetric(name="r", measure="ratio", numerator="emea", denominator="all")
    d = build_definition("KR", metrics["r"], metrics, {}, Q3)
    with engine.connect() as conn:
        e = evaluate(conn, {"orders": view}, [d], AS_OF)["KR"]
        (part,) = contribution_parts({"orders": view}, d, AS_OF)
        rows = conn.execute(part.select).all()
    assert e.value == (Decimal(4) / Decimal(4)).quantize(Decimal("1e-12"))  # median of 1,3,5,7 over 1..7
    assert {r._rid: (Decimal(r.contribution), Decimal(r.denominator_contribution), r.role) for r in rows} == {
        f"r{i:03d}": (Decimal(i) if i % 2 else Decimal(0), Decimal(i), "both" if i % 2 else "denominator")
        for i in range(1, 8)}
