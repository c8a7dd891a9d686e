"""Closing periods on changing data (issue 17, part 1), on a SQLite and a PostgreSQL store.

A KR over an ERP's sales of 2026-Q3 with ``close_after_days: 10`` is provisional after the quarter,
final from the first run as of 2026-10-11 (the runs' as-of times decide, not the wall clock), keeps its
final value when late changes arrive, records them as a restatement whose records equal what SQL on the
ERP says changed since the close, and takes the new value once an admin reopens the period.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.run import LocalSteps, run_project
from okr_store import audit, closing
from okr_store import models as m
from okr_store.queries import history, status_tree, value_at
from okr_store.store import Store
from okrsync.errors import ConfigError
from okrsync.project import load_project
from okrsync.project_problems import ProjectFileError

PROJECT = """\
version: 1
settings: {{default_period: 2026-Q3, timezone: UTC{settings}}}
sources:
  erp: {{kind: sql, url: "sqlite:///{erp}"{source}}}
streams:
  sales: {{source: erp, table: sale, primary_key: id, cursor: write_date}}
metrics:
  revenue: {{stream: sales, measure: sum, field: amount, time_field: order_date}}
objectives:
  - id: O1
    title: Sell
    key_results: [{{id: KR-REV, title: Q3 revenue, metric: revenue, target: 1000{kr}}}]
"""
# What the ERP held when the period closed, and what changed after (the restatement's records).
CHANGED_SINCE_CLOSE = """
SELECT id, before, after FROM (
  SELECT a.id AS id, a.amount AS before, n.amount AS after
  FROM sale_at_close a LEFT JOIN sale n ON n.id = a.id
  UNION
  SELECT n.id, a.amount, n.amount FROM sale n LEFT JOIN sale_at_close a ON a.id = n.id
) WHERE before IS NOT after ORDER BY id
"""


@pytest.fixture
def store_env(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The project's store on both backends (a run in this process: no Prefect API)."""
    monkeypatch.setenv("OKRSYNC_STORE_URL", store_url)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield


def erp(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE sale (id INTEGER PRIMARY KEY, amount NUMERIC(12, 2), "
            "order_date TIMESTAMP, write_date TIMESTAMP)"
        )
        for i, amount, day in (
            (1, "100.00", "07-03"),
            (2, "200.00", "08-14"),
            (3, "300.00", "09-29"),
            (9, "999.00", "10-02"),
        ):  # 9 lies after the quarter: never counted
            conn.exec_driver_sql(
                f"INSERT INTO sale VALUES ({i}, {amount}, '2026-{day} 10:00:00', '2026-{day} 10:00:00')"
            )
    return engine


def write_project(
    tmp_path: Path, *, settings: str = "", source: str = ", close_after_days: 10", kr: str = ""
) -> Path:
    pf = tmp_path / "okrsync.yaml"
    pf.write_text(PROJECT.format(erp=tmp_path / "erp.db", settings=settings, source=source, kr=kr))
    return pf


def run(pf: Path, at: str | None) -> None:
    summary = run_project(pf, LocalSteps(), as_of=datetime.fromisoformat(at) if at else None)
    assert summary.status == "succeeded", summary


def state(store: Store) -> closing.CloseState:
    with store.engine.connect() as conn:
        kr = status_tree(conn)[0].key_results[0]
    assert kr.close is not None
    return kr.close


def alert_events(store: Store, kind: str) -> list[tuple[str, dict]]:
    """The alert events of ``kind`` the runs recorded (okr_store.alerts), oldest first."""
    e = m.alert_event.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(e.subject, e.facts).where(e.kind == kind).order_by(e.id))
        return [(r.subject, json.loads(r.facts)) for r in rows]


def current_value(store: Store) -> Decimal | None:
    with store.engine.connect() as conn:
        return value_at(conn, "KR-REV").value


@pytest.mark.usefixtures("store_env")
def test_a_period_closes_restates_late_changes_and_reopens(tmp_path: Path) -> None:
    source = erp(tmp_path / "erp.db")
    pf = write_project(tmp_path)
    store = Store(load_project(pf).store_url())

    # After the quarter, inside the 10 days of grace: provisional, whatever the wall clock says.
    run(pf, "2026-10-05T12:00")
    assert current_value(store) == Decimal("600.00")
    st = state(store)
    assert (st.state, st.label, str(st.closes_on)) == (
        "provisional",
        "provisional (closes on 2026-10-11)",
        "2026-10-11",
    )
    run(pf, "2026-10-10T23:59")
    assert state(store).state == "provisional"
    with store.engine.connect() as conn, pytest.raises(ConfigError, match="2026-Q3 of KR-REV is not closed"):
        closing.reopen(conn, "KR-REV", actor="ada", reason="nothing to reopen yet")

    # The first run as of the closing time closes the period with its value.
    run(pf, "2026-10-11T00:00")
    st = state(store)
    assert (st.state, st.label) == ("final", "final")
    assert st.close is not None and st.close.value == Decimal("600.00")
    closed_value_id = st.close.value_id
    ((subject, facts),) = alert_events(store, "closed")  # one alert: the period closed, with its value
    assert (subject, facts["period"], facts["value"], facts["previous"]) == (
        "KR-REV", "2026-Q3", "600.00", "open")
    with source.begin() as conn:  # what the ERP held at the close, for the independent check below
        conn.exec_driver_sql("CREATE TABLE sale_at_close AS SELECT * FROM sale")

    # A run with nothing new changes nothing: no value recorded, no restatement.
    run(pf, "2026-10-12T08:00")
    with store.engine.connect() as conn:
        assert len(history(conn, "KR-REV")) == 3
        assert closing.restatements(conn, "KR-REV") == []

    # Late changes after the close: a credit note lowers sale 2, a sale of September 30 arrives late.
    with source.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE sale SET amount = 150.00, write_date = '2026-10-14 09:00:00' WHERE id = 2"
        )
        conn.exec_driver_sql(
            "INSERT INTO sale VALUES (4, 57.00, '2026-09-30 16:00:00', '2026-10-14 09:05:00')"
        )
    run(pf, "2026-10-15T06:00")
    assert current_value(store) == Decimal("600.00")  # the final value stands
    st = state(store)
    assert st.state == "restated" and st.pending == 1
    assert st.label == "restated after close (+1.2 %)"  # 607 against 600
    with store.engine.connect() as conn:
        (r,) = closing.restatements(conn, "KR-REV", pending=True)
        assert len(history(conn, "KR-REV")) == 3  # the restated value is no point of the history
    assert (r.closed_value_id, r.closed_value, r.value, r.delta) == (
        closed_value_id,
        Decimal("600.00"),
        Decimal("607.00"),
        Decimal("7.00"),
    )
    with source.connect() as conn:
        expected = {
            str(i): (Decimal(str(b)) if b is not None else None, Decimal(str(a)) if a is not None else None)
            for i, b, a in conn.exec_driver_sql(CHANGED_SINCE_CLOSE)
        }
    assert expected == {"2": (Decimal("200"), Decimal("150")), "4": (None, Decimal("57"))}
    got = {
        c["record_id"]: (Decimal(c["before"]) if c["before"] else None, Decimal(c["after"]))
        for c in r.changes
    }
    assert got == expected and r.total_changes == 2
    assert {c["record_id"]: (c["kind"], c["why"], c["fields"]) for c in r.changes} == {
        "2": ("changed", "changed", ["amount", "write_date"]),
        "4": ("added", "new record in the source", []),
    }

    ((subject, facts),) = alert_events(store, "restated")  # one alert: the restatement, and by how much
    assert (subject, facts["restatement_id"], facts["change_percent"], facts["records"]) == (
        "KR-REV", r.id, "1.2", 2)

    # Idempotent: the same state of the sources restates nothing more, and alerts nothing more.
    run(pf, "2026-10-16T06:00")
    with store.engine.connect() as conn:
        assert len(closing.restatements(conn, "KR-REV")) == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(m.kr_close)).scalar_one() == 1
    assert len(alert_events(store, "closed")) == len(alert_events(store, "restated")) == 1

    # An admin acknowledges it (audited); it leaves the pending list, the label stays.
    with store.engine.begin() as conn:
        done = closing.acknowledge(conn, r.id, actor="ada", reason="credit note 4711, booked late")
    assert done.acknowledged_by == "ada" and not done.pending
    with store.engine.connect() as conn:
        assert closing.restatements(conn, pending=True) == []
        with pytest.raises(ConfigError, match="acknowledged already"):
            closing.acknowledge(conn, r.id, actor="ada", reason="again")
    assert state(store).label == "restated after close (+1.2 %)"

    # An admin reopens the period (audited); the next run takes the new value and closes it again.
    with store.engine.begin() as conn:
        with pytest.raises(ConfigError, match="give a reason"):
            closing.reopen(conn, "KR-REV", actor="ada", reason=" ")
        closing.reopen(conn, "KR-REV", actor="ada", reason="finance re-opened Q3 for the credit note")
    st = state(store)
    assert st.state == "provisional" and st.label == "provisional (reopened, closes at the next run)"
    run(pf, None)
    assert current_value(store) == Decimal("607.00")
    st = state(store)
    assert st.state == "final" and st.close is not None and st.close.seq == 2
    assert st.close.value == Decimal("607.00")
    assert [f["value"] for _, f in alert_events(store, "closed")] == ["600.00", "607.00"]  # closed again
    with store.engine.connect() as conn:
        events = [(e.actor, e.action, e.kr_id, e.reason) for e in audit.audit_log(conn, kr_id="KR-REV")]
        assert events == [
            ("ada", "restatement.ack", "KR-REV", "credit note 4711, booked late"),
            ("ada", "period.reopen", "KR-REV", "finance re-opened Q3 for the credit note"),
        ]
        assert audit.verify_audit_chain(conn) is None
    store.close()


@pytest.mark.usefixtures("store_env")
def test_a_back_fill_never_closes_and_a_kr_setting_wins(tmp_path: Path) -> None:
    erp(tmp_path / "erp.db")
    pf = write_project(tmp_path, settings=", close_after_days: 30", source="", kr=", close_after_days: 0")
    store = Store(load_project(pf).store_url())
    run(pf, "2026-11-01T00:00")  # the KR's own 0 days win over the settings' 30: final at once
    assert state(store).state == "final"
    run(pf, "2026-10-01T00:00")  # a back-fill to the period's end: history, no second close
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(m.kr_close)).scalar_one() == 1
        assert [str(v.value) for v in history(conn, "KR-REV")] == ["600.00", "600.00"]
    assert current_value(store) == Decimal("600.00")
    store.close()


def test_close_after_days_is_checked_where_it_is_set(tmp_path: Path) -> None:
    erp(tmp_path / "erp.db")
    pf = write_project(
        tmp_path,
        settings=", close_after_days: -1",
        source=", close_after_days: ten",
        kr=", close_after_days: 400",
    )
    with pytest.raises(ProjectFileError) as caught:
        load_project(pf)
    lines = [str(p).removeprefix(str(tmp_path) + "/") for p in caught.value.problems]
    assert lines == [
        "okrsync.yaml:2: settings.close_after_days: input should be greater than or equal to 0, got int -1",
        "okrsync.yaml:4: sources.erp.close_after_days: expected whole days from 0 to 366 after the period "
        "ends, got the text 'ten' (e.g. close_after_days: 10)",
        "okrsync.yaml:12: objectives[0].key_results[0].close_after_days: input should be less than or equal "
        "to 366, got int 400",
    ]


@pytest.mark.usefixtures("store_env")
def test_overlapping_runs_close_a_period_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    erp(tmp_path / "erp.db")
    pf = write_project(tmp_path)
    store = Store(load_project(pf).store_url())
    run(pf, "2026-10-05T12:00")
    code = (
        "import sys; from datetime import datetime; from flows.run import LocalSteps, run_project; "
        "sys.exit(run_project(sys.argv[1], LocalSteps(), as_of=datetime(2026, 10, 12)).status != 'succeeded')"
    )
    root = Path(__file__).resolve().parents[2]
    # Two runs in two processes at once, as two workers: the project lease queues one behind the other.
    both = [subprocess.Popen([sys.executable, "-c", code, str(pf)], cwd=root) for _ in range(2)]
    assert [p.wait(timeout=300) for p in both] == [0, 0]
    with store.engine.begin() as conn:
        closes = closing.closes(conn, "KR-REV")
        assert [(c.seq, c.value) for c in closes] == [(1, Decimal("600.00"))]
        # closing the same value again (a retried transaction) changes nothing
        assert (
            closing.close_due(conn, [("KR-REV", closes[0].value_id)], datetime(2026, 10, 13), "again") == []
        )
        # the second run found the period closed and the value unchanged: it recorded nothing for it
        assert len(history(conn, "KR-REV")) == 2
    store.close()
