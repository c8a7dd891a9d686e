"""As-of runs: a back-fill (a run as of an earlier time) joins the history at its as-of time without
replacing the current value or touching held flags; history, value_at and the default diff partner
follow as-of order (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from okr_store import queries
from okr_store.store import Store, ValueRecord

KR = "KR-REV"
DEC1 = datetime(2026, 12, 1, 12, 0)
NOV1 = datetime(2026, 11, 1, 23, 59)
NOV15 = datetime(2026, 11, 15, 12, 0)


@pytest.fixture
def okrs(store: Store) -> Store:
    objective = {"id": "O1", "parent_id": None, "title": "Grow", "owner": None, "weight": "1", "position": 0}
    kr = {"id": KR, "objective_id": "O1", "title": "Revenue", "owner": None, "metric": "revenue",
          "period_label": "2026-Q4", "baseline": "0", "target": "1000", "direction": "increase",
          "weight": "1", "unit": None, "streams": "[]", "position": 0}
    store.register_okrs([objective], [kr])
    return store


def value(v: str, status: str = "on_track") -> ValueRecord:
    return ValueRecord(KR, Decimal(v), None, 1, Decimal(0), Decimal(1000), None, None, Decimal(0), status,
                       "h" * 64, "{}", {})


def run(store: Store, as_of: datetime, v: str | None, held: dict[str, str] | None = None) -> int | None:
    """One run as of ``as_of`` recording ``v`` (None: nothing) and holding ``held``; the value's id."""
    run_id = store.start_run(as_of, None)
    ids = store.record_values(run_id, None, as_of, [] if v is None else [value(v)], held or {})
    store.finish_run(run_id, "succeeded")
    return ids[0] if ids else None


def current(store: Store) -> queries.KrStatus:
    with store.engine.connect() as conn:
        (o,) = queries.status_tree(conn)
    (kr,) = o.key_results
    return kr


def test_a_backfill_joins_history_at_its_as_of_and_the_current_value_stays(okrs: Store) -> None:
    now_id = run(okrs, DEC1, "900")
    back_id = run(okrs, NOV1, "400")  # computed later, as of earlier: a back-fill
    kr = current(okrs)
    assert kr.value is not None and (kr.value.id, kr.value.value) == (now_id, Decimal(900))
    assert okrs.last_values([KR]) == {KR: Decimal(900)}
    with okrs.engine.connect() as conn:
        hist = queries.history(conn, KR)
        assert [v.id for v in hist] == [back_id, now_id]  # as-of order, not computed order
        assert queries.value_at(conn, KR).id == now_id
        assert queries.value_at(conn, KR, NOV15).id == back_id  # the value as of a time between
        assert queries.compared_with(hist, hist[-1]) == hist[0]
        assert queries.compared_with(hist, hist[0]) is None  # the back-fill is the first by as-of
    assert okrs.last_values([KR], NOV15) == {KR: Decimal(400)}
    assert okrs.last_values([KR], DEC1) == {KR: Decimal(900)}

    later_id = run(okrs, DEC1, "950")  # the same as-of again: the later computed is current
    assert current(okrs).value.id == later_id  # type: ignore[union-attr]
    with okrs.engine.connect() as conn:
        assert [v.id for v in queries.history(conn, KR)] == [back_id, now_id, later_id]


def test_a_backfill_leaves_the_held_flag_of_the_current_state(okrs: Store) -> None:
    good = run(okrs, NOV15, "700")
    run(okrs, DEC1, None, held={KR: "stream 'orders' failed: unreachable"})
    run(okrs, NOV1, "400")  # a back-fill computes the KR: it is still held by the latest run
    kr = current(okrs)
    assert kr.held_reason == "stream 'orders' failed: unreachable"
    assert kr.value is not None and kr.value.id == good

    fresh = run(okrs, datetime(2026, 12, 2), "950")  # a current run clears it
    assert (current(okrs).held_reason, current(okrs).value.id) == (None, fresh)  # type: ignore[union-attr]
    run(okrs, NOV1, None, held={KR: "run failed: boom"})  # a failed back-fill holds nothing
    assert (current(okrs).held_reason, current(okrs).value.id) == (None, fresh)  # type: ignore[union-attr]


def test_the_first_value_of_a_kr_is_current_even_from_a_backfill(okrs: Store) -> None:
    run(okrs, DEC1, None)  # a current run that computed nothing for it (e.g. the KR is new)
    back = run(okrs, NOV1, "400")
    assert current(okrs).value.id == back  # type: ignore[union-attr]
    newer_back = run(okrs, NOV15, "500")  # still before DEC1, but the latest value it has
    assert current(okrs).value.id == newer_back  # type: ignore[union-attr]
    run(okrs, NOV1, "300")
    assert current(okrs).value.id == newer_back  # type: ignore[union-attr]
