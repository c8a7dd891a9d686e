"""Grouped evaluation gives every KR exactly the value, reason and record count of its own aggregates.

Many KR shapes over two streams stored with the store's own column types (on SQLite: decimals as scaled
integers): pinned dimensions (one, two, a value no record has, a dimension the metric does not declare),
several periods and timezones (one that has not begun at the as-of time), every measure, filters (also
relative to the as-of day), every window, ratios on one stream and across two, NULL dimension and time
values, and an empty stream ("no records"). ``evaluate(grouped=False)`` is the per-KR path the values were
computed with before grouping; both must agree bit for bit (``str`` of the Decimals too).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from random import Random
from typing import Any

import pytest
import sqlalchemy as sa

from metrics.definition import KrDefinition, build_definition
from metrics.evaluate import StreamView, evaluate
from metrics.grouped import evaluate_grouped
from metrics.periods import parse_period
from metrics.spec import RatioMetric, SimpleMetric
from okr_store.columns import column_type
from okrsync.schema import Field, FieldType, StreamSchema

AS_OF = datetime(2026, 11, 20, 9, 30)
ORDERS = StreamSchema((Field("id", FieldType.INTEGER), Field("region", FieldType.STRING),
                       Field("channel", FieldType.INTEGER), Field("state", FieldType.STRING),
                       Field("amount", FieldType.DECIMAL, 2), Field("qty", FieldType.INTEGER),
                       Field("price", FieldType.FLOAT), Field("day", FieldType.DATE),
                       Field("shipped", FieldType.DATE), Field("at", FieldType.DATETIME)))
TICKETS = StreamSchema((Field("id", FieldType.INTEGER), Field("region", FieldType.STRING),
                        Field("opened", FieldType.DATETIME)))
REGIONS = ["EMEA", "APAC", "Americas", None]


def orders(n: int, seed: int) -> list[dict[str, Any]]:
    rng = Random(seed)
    out = []
    for i in range(n):
        day = date(2026, 5, 1) + timedelta(days=rng.randrange(260))
        out.append({
            "id": i, "region": rng.choice(REGIONS), "channel": rng.choice([1, 2, None]),
            "state": rng.choice(["done", "confirmed", "cancel", None]),
            "amount": None if rng.random() < 0.05 else Decimal(rng.randrange(-5_000, 2_000_000)).scaleb(-2),
            "qty": rng.choice([None, *range(-2, 40)]), "price": rng.random() * 100,
            "day": None if rng.random() < 0.05 else day,
            "shipped": None if rng.random() < 0.2 else day + timedelta(days=rng.randrange(-2, 30)),
            "at": None if rng.random() < 0.05
            else datetime(2026, 6, 1) + timedelta(minutes=rng.randrange(300_000)),
        })
    return out


def tickets(n: int, seed: int) -> list[dict[str, Any]]:
    rng = Random(seed + 1)
    return [{"id": i, "region": rng.choice(REGIONS),
             "opened": datetime(2026, 6, 1) + timedelta(hours=rng.randrange(6_000))} for i in range(n)]


def stream(engine: sa.Engine, name: str, schema: StreamSchema, data: list[dict[str, Any]]) -> StreamView:
    t = sa.Table(name, sa.MetaData(), sa.Column("_rid", sa.String(20), primary_key=True),
                 *(sa.Column(f.name, column_type(f)) for f in schema.fields))
    t.metadata.drop_all(engine)
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        if data:
            conn.execute(t.insert(), [{**r, "_rid": f"{name}-{r['id']}"} for r in data])
    return StreamView(name, t, schema)


def simple(name: str, measure: str, stream: str = "orders", **kw: Any) -> SimpleMetric:
    base = {"time_field": "day", "dimensions": ["region", "channel"]} if stream == "orders" else {
        "time_field": "opened", "dimensions": ["region"]}
    return SimpleMetric.model_validate({"name": name, "stream": stream, "measure": measure, **base, **kw})


DONE = {"field": "state", "op": "in", "value": ["done", "confirmed"]}
METRICS: dict[str, Any] = {
    "revenue": simple("revenue", "sum", field="amount", filter=DONE),
    "gross": simple("gross", "sum", field="amount"),
    "lines": simple("lines", "count", filter=DONE),
    "all_lines": simple("all_lines", "count", window="all"),
    "cancelled": simple("cancelled", "count", filter={"field": "state", "op": "=", "value": "cancel"}),
    "aov": simple("aov", "avg", field="amount", filter=DONE),
    "biggest": simple("biggest", "max", field="amount"),
    "smallest_qty": simple("smallest_qty", "min", field="qty"),
    "qty_ever": simple("qty_ever", "sum", field="qty", window="as_of_end"),
    "revenue_at": simple("revenue_at", "sum", field="amount", time_field="at"),
    "recent": simple("recent", "count", window={"trailing_days": 30}),
    "recent_at": simple("recent_at", "sum", field="qty", time_field="at", window={"trailing_days": 45}),
    "overdue": simple("overdue", "count", window="all",
                      filter={"field": "shipped", "op": "<", "value": {"days_before_as_of": 3}}),
    "ship_days": simple("ship_days", "sum", days_between=["day", "shipped"]),
    "ship_avg": simple("ship_avg", "avg", days_between=["day", "shipped"], time_field="shipped"),
    "no_time": SimpleMetric.model_validate({"name": "no_time", "stream": "orders", "measure": "count",
                                            "dimensions": ["region"]}),
    # not decomposable or not exact in any order: these keep their per-KR aggregates
    "regions": simple("regions", "count_distinct", field="region"),
    "median_amount": simple("median_amount", "median", field="amount"),
    "price_sum": simple("price_sum", "sum", field="price"),
    "tickets": simple("tickets", "count", stream="tickets"),
}
METRICS |= {
    "cancel_rate": RatioMetric(name="cancel_rate", measure="ratio", numerator="cancelled",
                               denominator="lines"),
    "done_share": RatioMetric(name="done_share", measure="ratio", numerator="revenue", denominator="gross"),
    "at_share": RatioMetric(name="at_share", measure="ratio", numerator="revenue_at", denominator="gross"),
    "per_ticket": RatioMetric(name="per_ticket", measure="ratio", numerator="revenue", denominator="tickets"),
    "median_share": RatioMetric(name="median_share", measure="ratio", numerator="median_amount",
                                denominator="aov"),
}
PERIODS = [parse_period(p, timezone="Europe/Berlin") for p in
           ("2026-Q3", "2026-Q4", "2026-H2", "2026", "2026-11", "2027-Q1", "2026-10-15..2026-11-30")]
PERIODS.append(parse_period("2026-Q4", timezone="America/Los_Angeles"))
PINS: list[dict[str, Any]] = [{}, {"region": "EMEA"}, {"region": "APAC"}, {"region": "Nowhere"},
                              {"channel": 1}, {"region": "Americas", "channel": 2}, {"unknown_dim": "x"}]
NOT_GROUPED = {"regions", "median_amount", "price_sum", "median_share"}


def definitions() -> list[KrDefinition]:
    """Each metric in each period, company-wide and with one of the pins (in turn): 450 KRs, whose per-KR
    aggregates still fit in one SQLite SELECT."""
    out = []
    for i, (name, m) in enumerate(METRICS.items()):
        for j, p in enumerate(PERIODS):
            for pins in (PINS[0], PINS[1 + (i + j) % (len(PINS) - 1)]):
                kr = f"{name}|{p.label}|{p.timezone}|{sorted(pins.items())}"
                out.append(build_definition(kr, m, METRICS, pins, p))
    return out


def same(a: Any, b: Any) -> bool:
    return a == b and str(a) == str(b)


def check(url: str, n: int, seed: int) -> None:
    engine = sa.create_engine(url)
    try:
        views = {"orders": stream(engine, "orders", ORDERS, orders(n, seed)),
                 "tickets": stream(engine, "tickets", TICKETS, tickets(n // 3, seed))}
        defs = definitions()
        with engine.connect() as conn:
            grouped = evaluate(conn, views, defs, AS_OF)
            per_kr = evaluate(conn, views, defs, AS_OF, grouped=False)
            tallies, rest = evaluate_grouped(conn, views, defs, AS_OF)
        assert {d.name for d in rest} == NOT_GROUPED  # every other KR came from the grouped cells
        assert len(tallies) == len(defs) - len(rest)
        for d in defs:
            g, p = grouped[d.kr_id], per_kr[d.kr_id]
            assert same(g.value, p.value), (d.kr_id, g, p)
            assert g.reason == p.reason and g.records == p.records, (d.kr_id, g, p)
            assert g.parts.keys() == p.parts.keys() and all(same(g.parts[k], p.parts[k]) for k in g.parts)
        if n:
            valued = [e for e in grouped.values() if e.value not in (None, 0)]
            assert len(valued) > len(defs) // 3  # the data makes most KRs non-trivial
        else:
            assert all(e.records == 0 for e in grouped.values())
        reasons = {e.reason for e in grouped.values() if e.value is None}
        assert any(r and "no records for metric" in r for r in reasons)
        assert any(r and "is 0 in this period" in r for r in reasons)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("n", "seed"), [(400, 1), (0, 3)])
def test_grouped_equals_per_kr_on_sqlite(n: int, seed: int) -> None:
    check("sqlite://", n, seed)


def test_grouped_equals_per_kr_on_postgresql(pg_url: str) -> None:
    check(pg_url, 400, 2)


def test_krs_that_differ_in_pins_and_periods_share_one_grouped_query() -> None:
    engine = sa.create_engine("sqlite://")
    views = {"orders": stream(engine, "orders", ORDERS, orders(50, 4))}
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    ms = {k: METRICS[k] for k in ("revenue", "lines", "cancelled", "aov", "cancel_rate")}
    defs = [build_definition(f"{k}{i}{j}", m, METRICS, pins, p)
            for k, m in ms.items() for i, p in enumerate(PERIODS[:5]) for j, pins in enumerate(PINS[:4])]
    with engine.connect() as conn:
        evaluate(conn, views, defs, AS_OF)
    (query,) = statements  # 100 KRs, one statement
    # one aggregate pair per metric (revenue, lines, cancelled, aov), one union count for the ratio
    assert query.count("sum(") + query.count("count(") == 9
    engine.dispose()


@pytest.mark.parametrize(("metric", "pins", "why"), [
    (METRICS["revenue"], {"channel": "north"}, "'north' is not an integer value"),
    (simple("m", "sum", field="amount", time_field="nope"), {}, "time field 'nope' is not in stream"),
    (simple("m", "count", filter={"field": "nope", "op": "=", "value": 1}), {}, "filter field 'nope'"),
])
def test_a_bad_declaration_fails_as_on_the_per_kr_path(metric: SimpleMetric, pins: dict, why: str) -> None:
    engine = sa.create_engine("sqlite://")
    views = {"orders": stream(engine, "orders", ORDERS, orders(5, 5))}
    d = build_definition("KR", metric, METRICS, pins, PERIODS[0])
    messages = []
    for grouped in (True, False):
        with engine.connect() as conn, pytest.raises(Exception) as err:
            evaluate(conn, views, [d], AS_OF, grouped=grouped)
        messages.append((type(err.value), str(err.value)))
    assert messages[0] == messages[1] and why in messages[0][1]
    engine.dispose()
