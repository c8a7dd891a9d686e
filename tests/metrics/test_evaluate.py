"""Fused evaluation: many KRs, one query per stream, values equal to an independent pandas computation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.definition import build_definition
from metrics.evaluate import StreamView, contribution_parts, evaluate
from metrics.periods import parse_period
from metrics.spec import RatioMetric, SimpleMetric
from okrsync.schema import Field, FieldType, StreamSchema

SCHEMA = StreamSchema((Field("id", FieldType.INTEGER), Field("region", FieldType.STRING),
                       Field("amount", FieldType.DECIMAL, 2), Field("day", FieldType.DATE),
                       Field("late", FieldType.INTEGER)))
Q4 = parse_period("2026-Q4", timezone="Europe/Berlin")
AS_OF = datetime(2026, 11, 20, 12, 0)
REGIONS = ["EMEA", "APAC", "Americas"]


def table(rows: list[dict]) -> tuple[sa.Engine, sa.Table]:
    engine = sa.create_engine("sqlite://")
    t = sa.Table("orders", sa.MetaData(), sa.Column("_rid", sa.String), sa.Column("id", sa.Integer),
                 sa.Column("region", sa.String), sa.Column("amount", sa.Numeric(12, 2)),
                 sa.Column("day", sa.Date), sa.Column("late", sa.Integer))
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        if rows:
            conn.execute(t.insert(), [{**r, "_rid": str(r["id"])} for r in rows])
    return engine, t


def metric(name: str, measure: str, **kw: object) -> SimpleMetric:
    return SimpleMetric.model_validate({"name": name, "stream": "orders", "measure": measure,
                                        "time_field": "day", "dimensions": ["region"], **kw})


METRICS = {
    "revenue": metric("revenue", "sum", field="amount"),
    "orders": metric("orders", "count"),
    "aov": metric("aov", "avg", field="amount"),
    "biggest": metric("biggest", "max", field="amount"),
    "regions": metric("regions", "count_distinct", field="region"),
    "late": metric("late", "count", filter={"field": "late", "op": "=", "value": 1}),
    "late_rate": RatioMetric(name="late_rate", measure="ratio", numerator="late", denominator="orders"),
}


def defs_for(dims: list[str | None]) -> list:
    out = []
    for name, m in METRICS.items():
        for dim in dims:
            kr = f"{name}-{dim or 'all'}"
            out.append(build_definition(kr, m, METRICS, {"region": dim} if dim else {}, Q4))
    return out


def expected(df: pd.DataFrame, name: str, dim: str | None) -> Decimal | None:
    """The same numbers, computed with pandas over the rows in Q4 up to the as-of day."""
    in_q = df[(df["day"] >= date(2026, 10, 1)) & (df["day"] <= date(2026, 11, 20))]
    if dim:
        in_q = in_q[in_q["region"] == dim]
    amounts = list(in_q["amount"])
    if name == "revenue":
        return sum(amounts, Decimal(0))
    if name == "orders":
        return Decimal(len(in_q))
    if name == "aov":
        return (sum(amounts, Decimal(0)) / len(amounts)).quantize(Decimal("1e-12")) if amounts else None
    if name == "biggest":
        return max(amounts) if amounts else None
    if name == "regions":
        return Decimal(in_q["region"].nunique())
    if name == "late":
        return Decimal(int((in_q["late"] == 1).sum()))
    late, n = int((in_q["late"] == 1).sum()), len(in_q)
    return (Decimal(late) / n).quantize(Decimal("1e-12")) if n else None


rows_strategy = st.lists(st.fixed_dictionaries({
    "region": st.sampled_from(REGIONS),
    "amount": st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False),
    "day": st.dates(min_value=date(2026, 9, 25), max_value=date(2026, 12, 5)),
    "late": st.integers(0, 1),
}), max_size=40)


@settings(max_examples=40, deadline=None)
@given(rows=rows_strategy)
def test_fused_evaluation_matches_pandas(rows: list[dict]) -> None:
    rows = [{**r, "id": i} for i, r in enumerate(rows)]
    engine, t = table(rows)
    view = StreamView("orders", t, SCHEMA)
    defs = defs_for([None, "EMEA"])
    with engine.connect() as conn:
        got = evaluate(conn, {"orders": view}, defs, AS_OF)
    df = pd.DataFrame(rows, columns=["id", "region", "amount", "day", "late"])
    for d in defs:
        name, dim = d.kr_id.split("-", 1)
        assert got[d.kr_id].value == expected(df, name, None if dim == "all" else dim), d.kr_id
        if got[d.kr_id].value is None:
            assert got[d.kr_id].reason


def test_many_krs_on_one_stream_cost_one_query() -> None:
    """The KRs that differ only in region share one grouped query; count_distinct, which cannot be rolled
    up from groups, adds one query of per-KR aggregates; without grouping, all are in one query."""
    engine, t = table([{"id": 1, "region": "EMEA", "amount": Decimal("1.00"), "day": date(2026, 10, 5),
                        "late": 0}])
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    defs = defs_for([None, *REGIONS])  # 28 KRs
    view = {"orders": StreamView("orders", t, SCHEMA)}

    def selects(ds: list, grouped: bool = True) -> list[str]:
        statements.clear()
        with engine.connect() as conn:
            evaluate(conn, view, ds, AS_OF, grouped=grouped)
        return [s for s in statements if s.lstrip().upper().startswith("SELECT")]

    grouped = selects([d for d in defs if not d.kr_id.startswith("regions")])  # 24 KRs
    assert len(grouped) == 1 and "GROUP BY" in grouped[0]
    assert len(selects(defs)) == 2
    assert len(selects(defs, grouped=False)) == 1


def test_empty_denominator_gives_no_value_with_a_reason() -> None:
    engine, t = table([{"id": 1, "region": "EMEA", "amount": Decimal("1.00"), "day": date(2026, 7, 1),
                        "late": 1}])
    (d,) = [x for x in defs_for([None]) if x.kr_id == "late_rate-all"]
    with engine.connect() as conn:
        e = evaluate(conn, {"orders": StreamView("orders", t, SCHEMA)}, [d], AS_OF)["late_rate-all"]
    assert e.value is None and "denominator" in (e.reason or "")


@pytest.mark.parametrize("kr", ["revenue-all", "late_rate-all", "regions-all"])
def test_contributions_add_up_to_the_value(kr: str) -> None:
    rows = [{"id": i, "region": REGIONS[i % 3], "amount": Decimal(f"{i}.{i % 7}5"),
             "day": date(2026, 10, 1 + i % 28), "late": i % 4 == 0} for i in range(60)]
    engine, t = table(rows)
    view = StreamView("orders", t, SCHEMA)
    (d,) = [x for x in defs_for([None]) if x.kr_id == kr]
    with engine.connect() as conn:
        value = evaluate(conn, {"orders": view}, [d], AS_OF)[kr].value
        (part,) = contribution_parts({"orders": view}, d, AS_OF)
        got = conn.execute(part.select).all()
    num = sum((Decimal(r.contribution) for r in got), Decimal(0))
    if kr == "late_rate-all":
        den = sum((Decimal(r.denominator_contribution) for r in got), Decimal(0))
        assert value == (num / den).quantize(Decimal("1e-12"))
        assert {r.role for r in got} == {"both", "denominator"}
    else:
        assert num == value


def test_until_field_counts_what_is_still_open_at_the_window_end() -> None:
    """Headcount at a date: hired on or before it, and no termination date, or a later one."""
    engine = sa.create_engine("sqlite://")
    t = sa.Table("people", sa.MetaData(), sa.Column("_rid", sa.String), sa.Column("id", sa.Integer),
                 sa.Column("hired", sa.Date), sa.Column("left", sa.Date))
    t.metadata.create_all(engine)
    people = [  # (hired, left): the as-of day is 2026-11-20, inside Q4
        (date(2025, 1, 10), None),  # in
        (date(2026, 11, 20), None),  # hired today: in
        (date(2026, 11, 21), None),  # hired tomorrow: out
        (date(2024, 3, 1), date(2026, 11, 20)),  # last day today: out
        (date(2024, 3, 1), date(2026, 11, 21)),  # leaves tomorrow: in
        (date(2024, 3, 1), date(2026, 6, 30)),  # left last quarter: out
    ]
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"_rid": str(i), "id": i, "hired": h, "left": lv}
                                  for i, (h, lv) in enumerate(people)])
    schema = StreamSchema((Field("id", FieldType.INTEGER), Field("hired", FieldType.DATE),
                           Field("left", FieldType.DATE)))
    headcount = SimpleMetric.model_validate({"name": "headcount", "stream": "people", "measure": "count",
                                             "time_field": "hired", "window": "as_of_end",
                                             "until_field": "left"})
    d = build_definition("KR-HC", headcount, {"headcount": headcount}, {}, Q4)
    with engine.connect() as conn:
        got = evaluate(conn, {"people": StreamView("people", t, schema)}, [d], AS_OF)
    assert got["KR-HC"].value == 3
    # at the end of a past quarter (as of a later day, capped at the period end)
    q3 = parse_period("2026-Q3", timezone="Europe/Berlin")
    d3 = build_definition("KR-HC3", headcount, {"headcount": headcount}, {}, q3)
    with engine.connect() as conn:
        got = evaluate(conn, {"people": StreamView("people", t, schema)}, [d3], AS_OF)
    assert got["KR-HC3"].value == 3  # the 2025 hire and the two leaving in November 2026
    with pytest.raises(ValueError, match="until_field counts what is still open"):
        SimpleMetric.model_validate({"name": "x", "stream": "people", "measure": "count",
                                     "time_field": "hired", "until_field": "left"})


def test_period_average_is_the_mean_of_the_headcounts_at_start_and_end() -> None:
    """Average headcount of Q4 (as of 2026-11-20): open on 2026-09-30 and on 2026-11-20, halved."""
    engine = sa.create_engine("sqlite://")
    t = sa.Table("people", sa.MetaData(), sa.Column("_rid", sa.String), sa.Column("id", sa.Integer),
                 sa.Column("hired", sa.Date), sa.Column("left", sa.Date), sa.Column("why", sa.String))
    t.metadata.create_all(engine)
    people = [  # (hired, left, why) → (open at start, open at end)
        (date(2025, 1, 10), None, None),  # both: 1
        (date(2026, 10, 5), None, None),  # end only: ½
        (date(2024, 3, 1), date(2026, 10, 31), "voluntary"),  # start only: ½
        (date(2024, 3, 1), date(2026, 9, 30), "voluntary"),  # last day the eve: neither
        (date(2026, 9, 30), None, None),  # hired the eve: both: 1
        (date(2026, 11, 21), None, None),  # not yet: neither
    ]
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"_rid": str(i), "id": i, "hired": h, "left": lv, "why": w}
                                  for i, (h, lv, w) in enumerate(people)])
    schema = StreamSchema((Field("id", FieldType.INTEGER), Field("hired", FieldType.DATE),
                           Field("left", FieldType.DATE), Field("why", FieldType.STRING)))
    avg = SimpleMetric.model_validate({"name": "avg_hc", "stream": "people", "measure": "count",
                                       "time_field": "hired", "window": "period_average",
                                       "until_field": "left"})
    quits = SimpleMetric.model_validate({"name": "quits", "stream": "people", "measure": "count",
                                         "time_field": "left",
                                         "filter": {"field": "why", "op": "=", "value": "voluntary"}})
    rate = RatioMetric(name="attrition", measure="ratio", numerator="quits", denominator="avg_hc")
    metrics = {"avg_hc": avg, "quits": quits, "attrition": rate}
    defs = [build_definition("KR-AVG", avg, metrics, {}, Q4),
            build_definition("KR-ATT", rate, metrics, {}, Q4)]
    views = {"people": StreamView("people", t, schema)}
    with engine.connect() as conn:
        got = evaluate(conn, views, defs, AS_OF)
        assert got["KR-AVG"].value == Decimal("3")  # (3 at start + 3 at end) / 2
        assert got["KR-ATT"].value == (Decimal(1) / Decimal(3)).quantize(got["KR-ATT"].value)
        parts = contribution_parts(views, defs[0], AS_OF)
        rows = conn.execute(parts[0].select).all()
    assert sum(Decimal(str(r.contribution)) for r in rows) == Decimal("3")  # drill adds up
