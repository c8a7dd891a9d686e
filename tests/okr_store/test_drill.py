"""Drill: sorts, filters, paging, and the first positions stored with each value, against an independent
computation over the rows the test wrote (SQLite and PostgreSQL)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from metrics.definition import build_definition
from metrics.evaluate import StreamView, evaluate
from metrics.periods import parse_period
from metrics.spec import RatioMetric, SimpleMetric
from okr_store import lineage, ranking
from okr_store import models as m
from okr_store.queries import StoredValue, value_by_id
from okr_store.records import RID
from okr_store.store import Store, ValueRecord
from okrsync.errors import ConfigError
from okrsync.schema import Field, FieldType, StreamSchema
from tests.store_templates import template_store_url

SCHEMA = StreamSchema((
    Field("id", FieldType.INTEGER),
    Field("amount", FieldType.DECIMAL, 2),
    Field("day", FieldType.DATE),
    Field("region", FieldType.STRING),
    Field("paid", FieldType.BOOLEAN),
    Field("qty", FieldType.INTEGER),
))
PERIOD = parse_period("2026-Q1")
AS_OF = datetime(2026, 4, 1)
N = 1300  # more than the stored positions (500): pages beyond them are live
REGIONS = ("EMEA", "APAC", "NA")


def rid_of(i: int) -> str:
    # ids with LIKE wildcards and a backslash in them, and a case difference, for the record_id filter
    return {7: "ord_7", 8: "ord%8", 9: "ordX7", 10: "ORD_7", 11: "ord\\7"}.get(i, f"r{i:05d}")


def rows() -> pd.DataFrame:
    out = []
    for i in range(1, N + 1):
        out.append({
            RID: rid_of(i),
            "id": i,
            "amount": Decimal(f"{(i * 37) % 50}.{i % 4 * 25:02d}"),  # many ties: paging needs the id order
            "day": date(2026, 1 + i % 3, 1 + i % 28),
            "region": None if i % 17 == 0 else REGIONS[i % 3],
            "paid": i % 5 != 0,
            "qty": None if i % 13 == 0 else i % 9,
        })
    return pd.DataFrame(out).astype({"qty": "Int64"})


def simple(name: str, measure: str, **kw: Any) -> SimpleMetric:
    return SimpleMetric.model_validate({"name": name, "stream": "orders", "measure": measure,
                                        "time_field": "day", **kw})


METRICS: dict[str, Any] = {
    "revenue": simple("revenue", "sum", field="amount"),
    "orders": simple("orders", "count"),
    "aov": simple("aov", "avg", field="amount"),
    "unpaid": simple("unpaid", "count", filter={"field": "paid", "op": "=", "value": False}),
    "unpaid_rate": RatioMetric(name="unpaid_rate", measure="ratio", numerator="unpaid", denominator="orders"),
    "regions": simple("regions", "count_distinct", field="region"),
    "median_amount": simple("median_amount", "median", field="amount"),
    "regions_per_order": RatioMetric(name="regions_per_order", measure="ratio", numerator="regions",
                                     denominator="orders"),
}


def compute(store: Store, names: list[str], *, rank: bool = True) -> dict[str, StoredValue]:
    """What a run does after syncing: evaluate, record, store the first positions (unless ``rank``
    is False: a value recorded before positions were stored)."""
    defs = [build_definition(f"KR-{n}", METRICS[n], METRICS, {}, PERIOD) for n in names]
    snapshot = store.snapshot(["orders"])
    found = store.view("orders", snapshot["orders"])
    assert found is not None
    views = {"orders": StreamView("orders", found[0], found[1].schema)}
    with store.engine.connect() as conn:
        results = evaluate(conn, views, defs, AS_OF)
    records = [
        ValueRecord(d.kr_id, results[d.kr_id].value, None, results[d.kr_id].records, Decimal(0), Decimal(1),
                    None, None, Decimal(0), "on_track", d.hash, d.canonical_json(), snapshot)
        for d in defs
    ]
    run = store.start_run(AS_OF, None)
    ids = store.record_values(run, None, AS_OF, records, {})
    if rank:
        ranking.record_ranks(store, views, [ranking.Ranked(i, d, r.records, snapshot)
                                            for i, d, r in zip(ids, defs, records, strict=True)], AS_OF)
    with store.engine.connect() as conn:
        return {n: value_by_id(conn, i) for n, i in zip(names, ids, strict=True)}


def sync_rows(url: str) -> None:
    """The store every case starts from: migrated, with :func:`rows` synced as the stream ``orders``."""
    store = Store(url)
    try:
        w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
        w.stage(rows())
        w.commit('{"cursor": null, "key": []}')
    finally:
        store.close()


@pytest.fixture
def synced(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, pd.DataFrame]]:
    """A private copy of the synced store (built once per session: tests/store_templates.py)."""
    with template_store_url(request, backend, "drill-synced", sync_rows, tmp_path / "store.db") as url:
        store = Store(url)
        try:
            yield store, rows()
        finally:
            store.close()


def contributions(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Independently: the records behind a value and what each contributes."""
    in_q = df[df["day"] <= date(2026, 3, 31)]
    if name in ("revenue", "aov", "median_amount"):
        return in_q.assign(contribution=in_q["amount"])
    if name == "orders":
        return in_q.assign(contribution=Decimal(1))
    if name == "regions_per_order":  # in a ratio, each record with a region contributes 1
        return in_q.assign(contribution=[Decimal(0) if pd.isna(r) else Decimal(1) for r in in_q["region"]])
    assert name == "unpaid_rate"
    return in_q.assign(contribution=[Decimal(0) if p else Decimal(1) for p in in_q["paid"]])


def ordered(df: pd.DataFrame, sort: str, desc: bool) -> list[str]:
    """The record ids in drill order: the key (empty values last), then the record id ascending."""
    by_id = df.sort_values(RID, kind="stable")
    if sort == "record":
        return list(by_id[RID])[::-1] if desc else list(by_id[RID])
    key = "contribution" if sort == "contribution" else sort
    present = by_id[by_id[key].notna()]
    items = sorted(zip(present[key], present[RID], strict=True), key=lambda kv: kv[0], reverse=desc)
    return [r for _, r in items] + list(by_id[by_id[key].isna()][RID])


def all_pages(fetch: Callable[[int, int], lineage.Drill], size: int) -> list[str]:
    out: list[str] = []
    offset = 0
    while True:
        page = fetch(size, offset)
        out += [r.record_id for r in page.records]
        if len(page.records) < size:
            return out
        offset += size


@pytest.mark.parametrize("sort", ["contribution", "record", "amount", "day", "region", "qty", "paid", "id"])
def test_every_sort_both_ways_pages_through_every_record_once(synced: tuple[Store, pd.DataFrame],
                                                             sort: str) -> None:
    store, df = synced
    v = compute(store, ["revenue"])["revenue"]
    expected_rows = contributions(df, "revenue")
    for desc in (False, True):
        def fetch(limit: int, offset: int, desc: bool = desc) -> lineage.Drill:
            return lineage.drill(store, v, limit=limit, offset=offset, sort=sort, descending=desc, sums=False)

        got = all_pages(fetch, 173)
        assert got == ordered(expected_rows, sort, desc), (sort, desc)
        assert len(set(got)) == len(got) == v.records


def test_defaults_contribution_descending_and_fields_ascending(synced: tuple[Store, pd.DataFrame]) -> None:
    store, df = synced
    v = compute(store, ["revenue"])["revenue"]
    expected_rows = contributions(df, "revenue")
    assert [r.record_id for r in lineage.drill(store, v, limit=60).records] == ordered(
        expected_rows, "contribution", True)[:60]
    assert [r.record_id for r in lineage.drill(store, v, limit=60, sort="day").records] == ordered(
        expected_rows, "day", False)[:60]
    assert [r.record_id for r in lineage.drill(store, v, limit=60, sort="record").records] == sorted(
        expected_rows[RID])[:60]


EQUALS = [
    ({"qty": "4"}, lambda d: d["qty"] == 4),
    ({"amount": "12.50"}, lambda d: d["amount"] == Decimal("12.50")),
    ({"day": "2026-02-05"}, lambda d: d["day"] == date(2026, 2, 5)),
    ({"region": "APAC"}, lambda d: d["region"] == "APAC"),
    ({"paid": "false"}, lambda d: ~d["paid"]),
    ({"paid": "TRUE", "region": "NA", "qty": "5"},
     lambda d: d["paid"] & (d["region"] == "NA") & (d["qty"] == 5)),
    # one field given several values keeps either (IN); different fields must all hold
    ({"region": ["EMEA", "APAC"]}, lambda d: d["region"].isin(["EMEA", "APAC"])),
    ({"region": ["NA", "APAC", "NA"], "qty": ["4", "5"]},
     lambda d: d["region"].isin(["NA", "APAC"]) & d["qty"].isin([4, 5])),
]


@pytest.mark.parametrize(("equals", "keep"), EQUALS)
@pytest.mark.parametrize("name", ["revenue", "unpaid_rate"])
def test_equals_filters_with_totals_and_sums(synced: tuple[Store, pd.DataFrame], equals: dict[str, Any],
                                             keep: Callable[[pd.DataFrame], Any], name: str) -> None:
    store, df = synced
    v = compute(store, [name])[name]
    c = contributions(df, name)
    want = c[keep(c).fillna(False).astype(bool)]
    assert len(want) > 0
    d = lineage.drill(store, v, limit=100_000, equals=equals)
    assert [r.record_id for r in d.records] == ordered(want, "contribution", True)
    assert d.total == len(want)
    assert d.contribution_sum == sum(want["contribution"], Decimal(0))
    if name == "unpaid_rate":
        assert d.denominator_sum == Decimal(len(want))
    fast = lineage.drill(store, v, limit=20, offset=5, equals=equals, sums=False)
    assert fast.total == len(want) and fast.contribution_sum is None
    assert [r.record_id for r in fast.records] == ordered(want, "contribution", True)[5:25]


@pytest.mark.parametrize(("name", "ask"), [
    ("revenue", {}),
    ("revenue", {"sort": "day", "descending": True, "equals": {"region": ["EMEA", "NA"]}}),
    ("unpaid_rate", {"sort": "record"}),
    ("regions", {"record_id": "r0"}),
])
def test_pages_list_every_record_in_the_drill_order(synced: tuple[Store, pd.DataFrame], name: str,
                                                    ask: dict[str, Any]) -> None:
    """An export reads page by page (memory stays flat) and lists what one unbounded drill lists."""
    store, _ = synced
    v = compute(store, [name])[name]
    whole = lineage.drill(store, v, limit=100_000, **ask)
    assert whole.total > 300
    pages = list(lineage.drill_pages(store, v, page=128, **ask))
    assert all(0 < len(p) <= 128 for p in pages) and len(pages) == -(-whole.total // 128)
    assert [r for p in pages for r in p] == whole.records
    cut = [r for p in lineage.drill_pages(store, v, page=50, limit=120, offset=230, **ask) for r in p]
    assert cut == whole.records[230:350]
    with pytest.raises(ConfigError, match="'colour'"):  # before any page
        lineage.drill_pages(store, v, sort="colour")


def test_record_id_is_a_literal_case_sensitive_substring(synced: tuple[Store, pd.DataFrame]) -> None:
    store, _ = synced
    v = compute(store, ["orders"])["orders"]

    def ids(text: str, **kw: Any) -> set[str]:
        d = lineage.drill(store, v, limit=100_000, record_id=text, **kw)
        assert d.total == len(d.records)
        return {r.record_id for r in d.records}

    assert ids("d_7") == {"ord_7"}  # _ is not a wildcard, and the match is case-sensitive
    assert ids("%") == {"ord%8"}
    assert ids("\\") == {"ord\\7"}
    assert ids("ord") == {"ord_7", "ord%8", "ordX7", "ord\\7"}
    assert ids("ORD") == {"ORD_7"}
    assert ids("r0120") == {f"r0120{i}" for i in range(10)}
    assert ids("ord", equals={"qty": "8"}) == {"ord%8"}
    assert ids("nothing like it") == set()


def test_bad_requests_name_the_field_and_what_is_allowed(synced: tuple[Store, pd.DataFrame]) -> None:
    store, _ = synced
    v = compute(store, ["revenue"])["revenue"]
    with pytest.raises(ConfigError, match="'colour'.*") as err:
        lineage.drill(store, v, sort="colour")
    assert "contribution, record, id, amount, day, region, paid, qty" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="'colour'"):
        lineage.drill(store, v, equals={"colour": "red"})
    for name, text, form in [("qty", "4.5", "whole number"), ("amount", "12,50", "decimal"),
                             ("day", "05/01/2026", "YYYY-MM-DD"), ("paid", "maybe", "true or false"),
                             ("amount", "NaN", "decimal")]:
        with pytest.raises(ConfigError, match=f"'{name}'") as err:
            lineage.drill(store, v, equals={name: text})
        assert form in (err.value.hint or ""), (name, text)


def test_empty_page_still_has_the_columns(synced: tuple[Store, pd.DataFrame]) -> None:
    store, _ = synced
    v = compute(store, ["revenue"])["revenue"]
    d = lineage.drill(store, v, equals={"region": "Mars"})
    assert d.records == [] and d.total == 0 and d.contribution_sum == 0
    assert d.columns == {"orders": ["id", "amount", "day", "region", "paid", "qty"]}


def stored_positions(store: Store, v: StoredValue) -> int:
    with store.engine.connect() as conn:
        count = sa.select(sa.func.count()).where(m.kr_value_top.c.value_id == v.id)
        return int(conn.execute(count).scalar_one())


def forget_positions(store: Store, v: StoredValue) -> None:
    with store.engine.begin() as conn:
        conn.execute(m.kr_value_top.delete().where(m.kr_value_top.c.value_id == v.id))


def page_view(d: lineage.Drill) -> list[tuple[str, Decimal, Decimal | None, str, dict[str, Any]]]:
    return [(r.record_id, r.contribution, r.denominator_contribution, r.role, r.fields) for r in d.records]


@pytest.mark.parametrize("name", ["revenue", "orders", "aov", "unpaid_rate", "regions_per_order"])
def test_stored_first_pages_equal_the_live_query(synced: tuple[Store, pd.DataFrame], name: str) -> None:
    store, df = synced
    v = compute(store, [name])[name]
    # a ratio stores its leading records: the numerator records that contribute more than 0
    leading = contributions(df, name)["contribution"].gt(0).sum()
    assert stored_positions(store, v) == min(ranking.TOP, leading)
    pages = [(50, 0), (50, 450), (40, 480), (7, 493), (500, 0), (100, 1000)]
    stored = [page_view(lineage.drill(store, v, limit=lim, offset=off, sums=False)) for lim, off in pages]
    forget_positions(store, v)  # now every page is live, as for a value recorded before positions were
    live = [page_view(lineage.drill(store, v, limit=lim, offset=off, sums=False)) for lim, off in pages]
    assert stored == live
    assert [r[0] for r in stored[0]] == ordered(contributions(df, name), "contribution", True)[:50]
    assert sum(r[1] for r in live[4]) == sum(
        sorted(contributions(df, name)["contribution"], reverse=True)[:500], Decimal(0))


def test_shared_scan_stores_exact_positions_for_every_kr(synced: tuple[Store, pd.DataFrame]) -> None:
    """KRs computed together share one ordered scan; each one's positions are its own top records."""
    store, df = synced
    values = compute(store, ["revenue", "aov", "orders", "unpaid_rate", "regions"])
    with store.engine.connect() as conn:
        top = m.kr_value_top.c
        for name in ("revenue", "aov", "orders", "unpaid_rate"):
            got = list(conn.execute(sa.select(top.record_id).where(top.value_id == values[name].id)
                                    .order_by(top.position)).scalars())
            assert got == ordered(contributions(df, name), "contribution", True)[:len(got)]
            assert len(got) == min(ranking.TOP, contributions(df, name)["contribution"].gt(0).sum())
    assert stored_positions(store, values["regions"]) == 0  # count_distinct: always live
    d = lineage.drill(store, values["regions"], limit=10)
    assert d.contribution_sum == values["regions"].value == 3


def test_krs_pinned_to_regions_and_periods_take_their_positions_from_cells(
    synced: tuple[Store, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """KRs that differ only in a pinned region and a period share one scan per metric shape and order
    (ranking by cells, no scan per KR); each one's positions are still exactly its own first records."""
    store, df = synced
    monkeypatch.setattr(ranking, "_branches", None)  # called for a KR that cells cannot answer: fails
    pinned = {n: m.model_copy(update={"dimensions": ("region",)}) if isinstance(m, SimpleMetric) else m
              for n, m in METRICS.items()}
    plan = [(name, region, period) for name in ("revenue", "aov", "orders", "unpaid_rate")
            for region in (None, "EMEA", "NA") for period in ("2026-Q1", "2026-01", "2026-03", "2026")]
    defs = [build_definition(f"KR-{i}", pinned[name], pinned, {"region": region} if region else {},
                             parse_period(period)) for i, (name, region, period) in enumerate(plan)]
    snapshot = store.snapshot(["orders"])
    found = store.view("orders", snapshot["orders"])
    assert found is not None
    views = {"orders": StreamView("orders", found[0], found[1].schema)}
    with store.engine.connect() as conn:
        results = evaluate(conn, views, defs, AS_OF)
    records = [ValueRecord(d.kr_id, results[d.kr_id].value, None, results[d.kr_id].records, Decimal(0),
                           Decimal(1), None, None, Decimal(0), "on_track", d.hash, d.canonical_json(),
                           snapshot) for d in defs]
    ids = store.record_values(store.start_run(AS_OF, None), None, AS_OF, records, {})
    ranking.record_ranks(store, views, [ranking.Ranked(i, d, r.records)
                                        for i, d, r in zip(ids, defs, records, strict=True)], AS_OF)
    stored = 0
    with store.engine.connect() as conn:
        top = m.kr_value_top.c
        for (name, region, period), vid in zip(plan, ids, strict=True):
            mine = contributions(df, name)
            if region is not None:
                mine = mine[mine["region"] == region]
            if period in ("2026-01", "2026-03"):
                mine = mine[[d.month == int(period[-1]) for d in mine["day"]]]
            if name == "unpaid_rate":  # a ratio's leading records: its numerator's
                mine = mine[mine["contribution"] > 0]
            want = ordered(mine, "contribution", True)[:ranking.TOP]
            got = list(conn.execute(sa.select(top.record_id).where(top.value_id == vid)
                                    .order_by(top.position)).scalars())
            assert got == want, (name, region, period)
            stored += bool(got)
    assert stored == len(plan) - 8  # EMEA has no March records, NA none in January: no positions


@pytest.mark.parametrize("name", ["revenue", "orders", "unpaid_rate"])
def test_a_short_shared_order_stores_fewer_positions_still_exact(
    synced: tuple[Store, pd.DataFrame], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """When the shared order keeps fewer records than a KR needs, it gets fewer positions, still its
    own first ones; pages past them are live."""
    store, df = synced
    monkeypatch.setattr(ranking, "PREFIX", 300)
    v = compute(store, [name])[name]
    want = ordered(contributions(df, name), "contribution", True)
    with store.engine.connect() as conn:
        top = m.kr_value_top.c
        got = list(conn.execute(sa.select(top.record_id).where(top.value_id == v.id).order_by(top.position))
                   .scalars())
    assert 0 < len(got) <= 300 and got == want[:len(got)]
    for limit, offset in [(50, 0), (50, len(got) - 10), (100, 250)]:
        page = lineage.drill(store, v, limit=limit, offset=offset, sums=False)
        assert [r.record_id for r in page.records] == want[offset:offset + limit]


def positions(store: Store, v: StoredValue) -> list[str]:
    with store.engine.connect() as conn:
        top = m.kr_value_top.c
        return list(conn.execute(sa.select(top.record_id).where(top.value_id == v.id).order_by(top.position))
                    .scalars())


def test_a_value_on_unchanged_records_copies_the_previous_positions(
    synced: tuple[Store, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose records did not change since the KR's previous value (also across a sync that
    changed nothing) copies that value's positions instead of ranking again; a changed record ranks
    again."""
    store, df = synced
    names = ["revenue", "orders", "unpaid_rate"]
    first = compute(store, names)
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    w.stage(df)  # the same rows: a new version of the stream, the same records
    w.commit('{"cursor": null, "key": []}')
    monkeypatch.setattr(ranking, "_rank", None)  # ranking anything here fails
    again = compute(store, names)
    for n in names:
        assert again[n].id != first[n].id and stored_positions(store, again[n]) > 0
        assert positions(store, again[n]) == positions(store, first[n])
        stored = page_view(lineage.drill(store, again[n], limit=50, sums=False))
        forget_positions(store, again[n])
        assert stored == page_view(lineage.drill(store, again[n], limit=50, sums=False))
    monkeypatch.undo()
    ranked = compute(store, names)  # the previous values have no positions left: these rank again
    assert all(positions(store, ranked[n]) == positions(store, first[n]) for n in names)
    changed = df.copy()
    top_id = ordered(contributions(df, "revenue"), "contribution", True)[0]
    changed.loc[changed[RID] == top_id, "amount"] = Decimal("0.00")  # the first record drops to the end
    w = store.begin_sync("run", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    w.stage(changed)
    w.commit('{"cursor": null, "key": []}')
    third = compute(store, ["revenue"])["revenue"]
    want = ordered(contributions(changed, "revenue"), "contribution", True)
    assert positions(store, third) == want[:ranking.TOP] and want[0] != top_id


def test_values_recorded_before_positions_still_drill(synced: tuple[Store, pd.DataFrame]) -> None:
    store, df = synced
    v = compute(store, ["revenue"], rank=False)["revenue"]
    assert stored_positions(store, v) == 0
    d = lineage.drill(store, v, limit=50, sums=False)
    assert d.total == v.records
    want = ordered(contributions(df, "revenue"), "contribution", True)
    assert [r.record_id for r in d.records] == want[:50]


def test_no_filters_no_sums_takes_the_recorded_count(synced: tuple[Store, pd.DataFrame]) -> None:
    store, _ = synced
    v = compute(store, ["revenue"])["revenue"]
    counts: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda *a: counts.append(a[2]) if "count(" in a[2].lower() else None)
    d = lineage.drill(store, v, limit=50, sums=False)
    assert d.total == v.records
    assert all("kr_value_top" in q for q in counts), counts  # only the stored-positions lookup counts
    big = lineage.drill(store, v, limit=100_000, sums=True)
    assert len(big.records) == v.records and big.contribution_sum == v.value


def test_distinct_count_filters_keep_the_unfiltered_contributions(synced: tuple[Store, pd.DataFrame]) -> None:
    """A distinct count's contributions depend on the records before it: filters only pick among them."""
    store, df = synced
    v = compute(store, ["regions"])["regions"]
    counted = df[df["region"].notna()].sort_values(RID)
    first = set(counted.drop_duplicates("region")[RID])
    want = counted[counted["qty"] == 4]
    d = lineage.drill(store, v, limit=100_000, equals={"qty": "4"}, sort="id", descending=True)
    assert [r.record_id for r in d.records] == list(want.sort_values("id", ascending=False)[RID])
    assert {r.record_id for r in d.records if r.contribution == 1} == first & set(want[RID])
    assert d.total == len(want) and d.contribution_sum == len(first & set(want[RID]))


def test_a_median_drills_into_the_records_of_its_group(synced: tuple[Store, pd.DataFrame]) -> None:
    """Each record contributes its amount; the two in the middle (N is even) are the median, the others
    below or above it, whatever filter picks among them."""
    store, df = synced
    v = compute(store, ["median_amount"])["median_amount"]
    group = contributions(df, "median_amount")
    assert v.value == statistics.median(list(group["amount"])) and v.records == len(group) == N
    assert stored_positions(store, v) == 0  # a record's role depends on the others: always live
    d = lineage.drill(store, v, limit=100_000)
    assert d.total == N and [r.record_id for r in d.records] == ordered(group, "contribution", True)
    assert {r.record_id: r.contribution for r in d.records} == dict(zip(group[RID], group["amount"],
                                                                         strict=True))
    roles = {r.record_id: r.role for r in d.records}
    middle = [r.contribution for r in d.records if r.role == "median"]
    assert len(middle) == 2 and sum(middle) / 2 == v.value
    below = [r.contribution for r in d.records if r.role == "below"]
    above = [r.contribution for r in d.records if r.role == "above"]
    assert len(below) == len(above) == N // 2 - 1
    assert max(below) <= min(middle) and max(middle) <= min(above)
    page = lineage.drill(store, v, limit=20, offset=40, sums=False)
    assert [r.record_id for r in page.records] == [r.record_id for r in d.records][40:60]
    picked = lineage.drill(store, v, limit=100_000, equals={"qty": "4"})
    want = df[df["qty"] == 4]
    assert {r.record_id for r in picked.records} == set(want[RID]) and picked.total == len(want)
    assert all(r.role == roles[r.record_id] for r in picked.records)  # roles among all, not the picked


def test_why_a_median_moved_names_the_record_that_changed(synced: tuple[Store, pd.DataFrame]) -> None:
    store, df = synced
    before = compute(store, ["median_amount"])["median_amount"]
    top = df.sort_values(["amount", RID]).iloc[-1]  # the largest amount falls below every other one
    w = store.begin_sync("run-2", "orders", "erp", ("id",), SCHEMA, reconcile=False)
    w.stage(df[df[RID] == top[RID]].assign(amount=Decimal("-1.00")))
    w.commit('{"cursor": null, "key": []}')
    after = compute(store, ["median_amount"])["median_amount"]
    changed = df.assign(amount=df["amount"].where(df[RID] != top[RID], Decimal("-1.00")))
    assert after.value == statistics.median(list(changed["amount"])) != before.value
    diff = lineage.diff(store, before, after)
    assert [(c.kind, c.record_id, c.before, c.after) for c in diff.changes] == [
        ("changed", top[RID], top["amount"], Decimal("-1.00"))]
    assert "amount" in diff.changes[0].field_changes
