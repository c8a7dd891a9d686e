"""A newly bound KR's whole history at once: back-filled as of every past run, it equals what those
runs recorded for the same definition (issue 16, acceptance 2)."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.run import LocalSteps, run_project
from metrics.evaluate import StreamView, evaluate
from okr_store import models as m
from okr_store.store import Store
from okrsync import binding
from okrsync.demo_erp import change_order_amount, delete_order
from okrsync.project import load_project

RUNS = [
    datetime(2026, 11, 18, 10),
    datetime(2026, 11, 19, 10),
    datetime(2026, 11, 20, 10),
    datetime(2026, 11, 20, 16),
]


def extreme_emea_order(erp: Path, largest: bool) -> int:
    """The EMEA order (confirmed or done, this quarter) with the largest or the smallest amount."""
    e = sa.create_engine(f"sqlite:///{erp}")
    with e.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT id FROM orders WHERE region = 'EMEA' AND state IN ('confirmed', 'done') "
                "AND order_date >= '2026-10-01' AND create_date <= '2026-11-17' "
                "ORDER BY untaxed_amount " + ("DESC" if largest else "ASC") + ", id LIMIT 1"
            )
        ).scalar_one()
    e.dispose()
    return int(found)


def emea_orders(erp: Path) -> list[int]:
    e = sa.create_engine(f"sqlite:///{erp}")
    with e.connect() as conn:
        ids = (
            conn.execute(
                sa.text(
                    "SELECT id FROM orders WHERE region = 'EMEA' AND state IN ('confirmed', 'done') "
                    "AND order_date >= '2026-10-01' AND create_date <= '2026-11-17' ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
    e.dispose()
    return list(ids)


def recorded(store: Store, kr_id: str) -> list[tuple[datetime, Decimal | None, int, str, str, str]]:
    v = m.kr_value.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(v.as_of, v.value, v.records, v.progress, v.expected, v.status)
            .where(v.kr_id == kr_id)
            .order_by(v.as_of)
        ).all()
    return [
        (r.as_of, None if r.value is None else Decimal(r.value), r.records, r.progress, r.expected, r.status)
        for r in rows
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo's store on SQLite (its default), or on a fresh PostgreSQL database."""
    if request.param == "postgres":
        monkeypatch.setenv("OKRSYNC_STORE_URL", request.getfixturevalue("pg_url"))
        # a server store's sealing key comes from the environment (okrsync.pii)
        monkeypatch.setenv("OKRSYNC_PII_KEY", base64.b64encode(os.urandom(64)).decode())
    else:
        monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)
    return str(request.param)


# More measures than the demo has: the largest and the smallest order and the distinct customers of
# EMEA, recorded by the runs and back-filled like the others.
MORE_METRICS = """metrics:
  largest_order:
    stream: orders
    measure: max
    field: untaxed_amount
    time_field: order_date
    filter: {field: state, op: in, value: [confirmed, done]}
    dimensions: [region]
  smallest_order:
    stream: orders
    measure: min
    field: untaxed_amount
    time_field: order_date
    filter: {field: state, op: in, value: [confirmed, done]}
    dimensions: [region]
  customers:
    stream: orders
    measure: count_distinct
    field: customer_id
    time_field: order_date
    filter: {field: state, op: in, value: [confirmed, done]}
    dimensions: [region]
"""
MORE_KRS = """          - id: KR-MAX-EMEA
            title: Largest EMEA order
            metric: largest_order
            dimensions: {region: EMEA}
            baseline: 0
            target: 200000
          - id: KR-MIN-EMEA
            title: Smallest EMEA order
            metric: smallest_order
            dimensions: {region: EMEA}
            baseline: 1000
            target: 0
            direction: decrease
          - id: KR-CUST-EMEA
            title: EMEA customers ordering
            metric: customers
            dimensions: {region: EMEA}
            baseline: 0
            target: 500
"""


def with_more_measures(pf: Path) -> None:
    text = pf.read_text()
    anchor = "          - id: KR-REV-EMEA\n"
    assert text.count("metrics:\n") == 1 and text.count(anchor) == 1
    pf.write_text(text.replace("metrics:\n", MORE_METRICS).replace(anchor, MORE_KRS + anchor))


def test_backfilled_history_equals_what_the_runs_recorded(demo_dir: Path, store_env: str) -> None:
    pf = demo_dir / "okrsync.yaml"
    with_more_measures(pf)
    erp = demo_dir / "erp.db"
    ids = emea_orders(erp)
    assert len(ids) > 6
    for i, as_of in enumerate(RUNS):  # the data changes between runs: amounts edited, an order deleted
        if i == 1:
            change_order_amount(erp, ids[0], Decimal("12345.60"), at=datetime(2026, 11, 18, 12))
            delete_order(erp, ids[1])
            delete_order(erp, extreme_emea_order(erp, largest=True))  # the largest order moves
            delete_order(erp, extreme_emea_order(erp, largest=False))  # and the smallest
        if i == 2:
            change_order_amount(erp, ids[2], Decimal("1.20"), at=datetime(2026, 11, 19, 12))
        if i == 3:
            change_order_amount(erp, ids[0], Decimal("99999.99"), at=datetime(2026, 11, 20, 12))
        assert run_project(pf, LocalSteps(), as_of=as_of).status == "succeeded"
    project = load_project(pf)
    store = Store(project.store_url())
    try:
        ran = recorded(store, "KR-REV-EMEA")
        assert [r[0] for r in ran] == RUNS
        assert len({r[1] for r in ran}) >= 3  # the value moved between runs: the test is not vacuous
        spec = project.key_result("KR-REV-EMEA").spec
        req = binding.Request(
            "KR-EMEA-BOUND",
            "O-GROWTH-EMEA",
            {
                "title": "EMEA revenue (bound)",
                "metric": spec.metric,
                "dimensions": dict(spec.dimensions),
                "baseline": spec.baseline,
                "target": spec.target,
                "period": "2026-Q4",
            },
        )
        rec = store.streams.tables("orders").records.name  # type: ignore[union-attr]
        reads: list[str] = []

        def count(conn: object, cursor: object, statement: str, *args: object) -> None:
            if rec in statement:
                reads.append(statement)

        tables = [store.streams.tables(s).records.name for s in ("orders", "shipments")]  # type: ignore[union-attr]

        def count_any(conn: object, cursor: object, statement: str, *args: object) -> None:
            if any(t in statement for t in tables):
                reads.append(statement)

        sa.event.listen(store.engine, "before_cursor_execute", count)
        points = binding.backfill(project, store, req)
        sa.event.remove(store.engine, "before_cursor_execute", count)
        # every as-of point in one pass over the record versions: one grouped statement (cells by
        # version lifetime), not one per point
        assert len(reads) == 1
        got = [
            (p["as_of"], p["value"], p["records"], str(p["progress"]), str(p["expected"]), p["status"])
            for p in points
        ]
        assert got == ran
        # the preview reads the value now in the same pass as the history: both as computed alone
        now = RUNS[-1] + timedelta(hours=1)
        shown = binding.preview(project, store, req, project.role()[1], now=now)
        _, _, d = binding.definition(project, store, req)
        snap = store.snapshot(d.streams)
        view, orders = store.view("orders", snap["orders"])  # type: ignore[misc]
        with store.engine.connect() as conn:
            alone = evaluate(conn, {"orders": StreamView("orders", view, orders.schema)}, [d], now)[d.kr_id]
        assert (shown["value"], shown["records"]) == (alone.value, alone.records)
        assert [(h["as_of"], h["value"]) for h in shown["history"]] == [(p["as_of"], p["value"])
                                                                        for p in points]
        # every other KR of the project file too (sums, counts, an average, ratios, a max, a min, a
        # distinct count), bound afresh, each in one statement per stream it reads
        moved = {k: len({r[1] for r in recorded(store, k)}) for k in ("KR-MAX-EMEA", "KR-MIN-EMEA")}
        assert all(n >= 2 for n in moved.values()), moved  # the edits moved the largest and smallest
        for b in project.key_results():
            k = b.spec
            twin = binding.Request(
                f"{k.id}-TWIN",
                b.objective_id,
                {
                    "title": k.title,
                    "metric": k.metric,
                    "dimensions": dict(k.dimensions),
                    "pace": k.pace,
                    "baseline": k.baseline,
                    "target": k.target,
                    "direction": k.direction,
                    "period": b.period.label,
                },
            )
            reads.clear()
            sa.event.listen(store.engine, "before_cursor_execute", count_any)
            filled = binding.backfill(project, store, twin)
            sa.event.remove(store.engine, "before_cursor_execute", count_any)
            again = [
                (p["as_of"], p["value"], p["records"], str(p["progress"]), str(p["expected"]), p["status"])
                for p in filled
            ]
            assert again == recorded(store, k.id), k.id
            assert len(reads) == len(project.streams_of(k.metric)), (k.id, len(reads))
    finally:
        store.close()
