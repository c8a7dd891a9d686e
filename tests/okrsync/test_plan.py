"""``okrsync plan``: a changed metric lists exactly the KRs whose values change, with the deltas, the
records entering and leaving and the past values that would change, each checked against SQL on the
source; ``--apply`` registers and audits; ``--restate`` adds restated values next to the originals;
a bad project file changes nothing. SQLite and PostgreSQL stores.

Runs are in-process (:class:`flows.run.LocalSteps`, no Prefect); the ``okrsync`` console script is
run where its exit status and output are what is tested."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.run import LocalSteps, run_project
from okr_store import audit, queries
from okr_store import models as m
from okr_store.store import Store
from okrsync import plan as planning
from okrsync.errors import ConfigError
from okrsync.project import load_project

OKRSYNC = Path(sys.executable).parent / "okrsync"
T1 = datetime(2026, 11, 10, 12, 0)
T2 = datetime(2026, 11, 20, 12, 0)
WINDOW = "order_date >= '2026-10-01' AND order_date <= ?"

PROJECT = """\
version: 1
settings:
  timezone: UTC
  default_period: 2026-Q4
  min_group_size: 1
sources:
  erp:
    kind: sql
    url: sqlite:///erp.db
streams:
  orders:
    source: erp
    table: orders
    primary_key: id
    cursor: write_date
    sensitive: [salesperson]
metrics:
  revenue:
    stream: orders
    measure: sum
    field: amount
    time_field: order_date
    filter: {field: state, op: in, value: [confirmed, done]}
    dimensions: [region]
  booked:
    stream: orders
    measure: count
    time_field: order_date
    filter: {field: state, op: in, value: [confirmed, done]}
    description: Orders booked
  aov:
    measure: ratio
    numerator: revenue
    denominator: booked
  big:
    stream: orders
    measure: count
    time_field: order_date
    filter: {field: amount, op: ">=", value: 100}
objectives:
  - id: O1
    title: Grow
    key_results:
      - {id: KR-REV, title: Revenue, metric: revenue, target: 5000}
      - {id: KR-REV-EMEA, title: Revenue EMEA, metric: revenue, dimensions: {region: EMEA}, target: 2000}
      - {id: KR-REV-APAC, title: Revenue APAC, metric: revenue, dimensions: {region: APAC}, target: 2000}
      - {id: KR-BOOKED, title: Booked, metric: booked, target: 50}
      - {id: KR-BIG, title: Big orders, metric: big, target: 20}
      - {id: KR-AOV, title: Average order value, metric: aov, target: 200}
"""
# (id, region, state, amount, order_date, salesperson)
ORDERS = [
    (1, "EMEA", "confirmed", "120.50", "2026-10-05", "Ana"),
    (2, "EMEA", "done", "80.00", "2026-10-20", "Ben"),
    (3, "EMEA", "shipped", "200.00", "2026-11-02", "Ana"),
    (4, "AMER", "shipped", "55.25", "2026-11-04", "Cy"),
    (5, "AMER", "confirmed", "300.00", "2026-11-05", "Cy"),
    (6, "APAC", "done", "99.99", "2026-10-11", "Dee"),
    (7, "APAC", "cancelled", "150.00", "2026-11-06", "Dee"),
    (8, "EMEA", "draft", "40.00", "2026-11-07", "Ben"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def project_file(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project over a small ERP, run as of T1, the ERP changed, run again as of T2 (both stores)."""
    if request.param == "postgres":
        monkeypatch.setenv("OKRSYNC_STORE_URL", request.getfixturevalue("pg_url"))
        monkeypatch.setenv("OKRSYNC_PII_KEY", base64.b64encode(bytes(range(64))).decode())
        return build(tmp_path, monkeypatch)
    return request.getfixturevalue("sqlite_project")


@pytest.fixture(scope="session")
def sqlite_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project on the SQLite store, built once (ERP, file, store and its key all in one folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OKRSYNC_STORE_URL", raising=False)
        return build(tmp_path_factory.mktemp("plan-built"), mp).parent


@pytest.fixture
def sqlite_project(sqlite_built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of it (role rules and ratios read the same on both stores)."""
    for name in ("OKRSYNC_PROJECT", "OKRSYNC_ROLE", "PREFECT_API_URL", "OKRSYNC_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(sqlite_built, tmp_path / "project")
    return tmp_path / "project" / "okrsync.yaml"


def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ERP, the project file, a run as of T1, changes in the ERP, a run as of T2."""
    for name in ("OKRSYNC_PROJECT", "OKRSYNC_ROLE", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    con = sqlite3.connect(tmp_path / "erp.db")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, state TEXT, amount NUMERIC(12,2), "
                "order_date DATE, salesperson TEXT, write_date TIMESTAMP)")
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, '2026-11-08 10:00:00')", ORDERS)
    con.commit()
    pf = tmp_path / "okrsync.yaml"
    pf.write_text(PROJECT)
    assert run_project(pf, LocalSteps(), as_of=T1).status == "succeeded"
    # Between the runs: a draft is confirmed and a shipped EMEA order added (both dated before T1), and a
    # shipped APAC order dated after T1.
    con.execute("UPDATE orders SET state = 'confirmed', write_date = '2026-11-12 09:00:00' WHERE id = 8")
    con.execute("INSERT INTO orders VALUES (9, 'EMEA', 'shipped', 75.00, '2026-11-09', 'Eve', "
                "'2026-11-12 09:00:00')")
    con.execute("INSERT INTO orders VALUES (10, 'APAC', 'shipped', 10.00, '2026-11-15', 'Dee', "
                "'2026-11-15 09:00:00')")
    con.commit()
    con.close()
    assert run_project(pf, LocalSteps(), as_of=T2).status == "succeeded"
    return pf


def sql(pf: Path, query: str, *args: object) -> list[tuple]:
    con = sqlite3.connect(pf.parent / "erp.db")
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


def revenue(pf: Path, states: tuple[str, ...], day: str, region: str | None = None) -> Decimal:
    marks = ",".join("?" * len(states))
    where = f"state IN ({marks}) AND {WINDOW}" + (" AND region = ?" if region else "")
    args = [*states, day] + ([region] if region else [])
    (total,) = sql(pf, f"SELECT CAST(COALESCE(SUM(amount), 0) AS TEXT) FROM orders WHERE {where}", *args)[0]
    return Decimal(str(total))


def change_revenue_filter(pf: Path) -> None:
    """Revenue counts confirmed and shipped orders, not done ones; booked gets a new description only."""
    text = pf.read_text()
    old = "    filter: {field: state, op: in, value: [confirmed, done]}\n    dimensions: [region]"
    text = text.replace(old, old.replace("done", "shipped"))
    text = text.replace("description: Orders booked", "description: Orders booked (confirmed or done)")
    pf.write_text(text)


def okrsync(pf: Path, *args: str, role: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OKRSYNC_ROLE", "COLUMNS")} | {"NO_COLOR": "1"}
    if role:
        env["OKRSYNC_ROLE"] = role
    return subprocess.run([str(OKRSYNC), "-p", str(pf), *args], capture_output=True, text=True, env=env,
                          cwd=pf.parent, timeout=300)


def store_of(pf: Path) -> Store:
    return Store(load_project(pf).store_url())


def test_no_change_lists_nothing_and_exits_0(project_file: Path) -> None:
    out = okrsync(project_file, "plan", "--format", "json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body == {"changes": False, "affected": [], "same_values": [], "new": [], "retired": []}


def test_a_changed_filter_lists_exactly_the_krs_whose_values_change(project_file: Path) -> None:
    pf = project_file
    change_revenue_filter(pf)
    out = okrsync(pf, "plan", "--format", "json", "--limit", "100")
    assert out.returncode == 3, out.stderr
    body = json.loads(out.stdout)
    affected = {k["kr"]: k for k in body["affected"]}
    assert sorted(affected) == ["KR-AOV", "KR-REV", "KR-REV-APAC", "KR-REV-EMEA"]  # not KR-BIG, KR-BOOKED
    assert [(s["kr"], s["changed"]) for s in body["same_values"]] == [("KR-BOOKED", ["metric.description"])]
    day = "2026-11-20"
    old, new = ("confirmed", "done"), ("confirmed", "shipped")
    for kr, region in (("KR-REV", None), ("KR-REV-EMEA", "EMEA"), ("KR-REV-APAC", "APAC")):
        k = affected[kr]
        assert k["changed"] == ["metric.filter"]
        before, after = revenue(pf, old, day, region), revenue(pf, new, day, region)
        assert Decimal(k["before"]["value"]) == before
        assert Decimal(k["after"]["value"]) == after
        assert Decimal(k["delta"]) == after - before
        region_sql = " AND region = ?" if region else ""
        rargs = [region] if region else []
        entering = {str(r[0]) for r in sql(pf, f"SELECT id FROM orders WHERE state = 'shipped' AND {WINDOW}"
                                                f"{region_sql}", day, *rargs)}
        leaving = {str(r[0]) for r in sql(pf, f"SELECT id FROM orders WHERE state = 'done' AND {WINDOW}"
                                               f"{region_sql}", day, *rargs)}
        recs = k["records"]
        assert {r["record_id"] for r in recs if r["kind"] == "entering"} == entering
        assert {r["record_id"] for r in recs if r["kind"] == "leaving"} == leaving
        assert not [r for r in recs if r["kind"] == "changed"]
        assert k["records_moved"] == len(entering) + len(leaving)
        assert sum(Decimal(r["delta"]) for r in recs) == after - before
        for r in recs:  # the salesperson is sensitive: masked for the CLI's role (leadership)
            assert r["fields"]["salesperson"] == "•••"
    # Past values: as of T1 (the first sync) EMEA revenue was 120.50 + 80.00; with shipped instead of
    # done, 120.50 + 200.00 (order 9 and the confirmation of 8 came later).
    emea = {p["as_of"][:10]: p for p in affected["KR-REV-EMEA"]["past_values"]}
    assert (Decimal(emea["2026-11-10"]["stored"]), Decimal(emea["2026-11-10"]["new"])) == (
        Decimal("200.50"), Decimal("320.50"))
    assert emea["2026-11-10"]["changes"] and emea["2026-11-20"]["changes"]
    assert Decimal(emea["2026-11-20"]["new"]) == revenue(pf, new, day, "EMEA")


def test_apply_registers_audits_and_restates_history(project_file: Path) -> None:
    pf = project_file
    with store_of(pf).engine.connect() as conn:
        before_ids = [v.id for v in queries.history(conn, "KR-REV-EMEA")]
        events_before = len(audit.audit_log(conn))
    change_revenue_filter(pf)
    no_reason = okrsync(pf, "plan", "--apply")
    assert no_reason.returncode == 2 and "--apply needs --reason" in no_reason.stderr
    done = okrsync(pf, "plan", "--apply", "--restate", "--reason", "count shipped, not done",
                   "--actor", "dana", "--format", "json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["applied"] == ["KR-AOV", "KR-BOOKED", "KR-REV", "KR-REV-APAC", "KR-REV-EMEA"]
    assert body["restated"] == 5 * 2  # two stored values each
    again = okrsync(pf, "plan", "--format", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["changes"] is False
    store = store_of(pf)
    with store.engine.connect() as conn:
        hist = queries.history(conn, "KR-REV-EMEA")
        events = audit.audit_log(conn)[events_before:]
        assert audit.verify_audit_chain(conn) is None
        current = queries.value_at(conn, "KR-REV-EMEA")
    originals = [v for v in hist if v.id in before_ids]
    restated = [v for v in hist if v.restated_from is not None]
    emea_now = revenue(pf, ("confirmed", "done"), "2026-11-20", "EMEA")
    assert [v.value for v in originals] == [Decimal("200.50"), emea_now]
    assert [v.restated_from for v in restated] == before_ids  # as-of order: each after its original
    assert [v.value for v in restated] == [Decimal("320.50"), revenue(pf, ("confirmed", "shipped"),
                                                                     "2026-11-20", "EMEA")]
    assert [v.as_of for v in restated] == [v.as_of for v in originals]
    assert current.id == restated[-1].id  # the restated value of the latest as-of is current
    assert {(e.actor, e.action, e.kr_id, e.reason) for e in events} == {
        ("dana", "definition.apply", kr, "count shipped, not done")
        for kr in ("KR-AOV", "KR-BOOKED", "KR-REV", "KR-REV-APAC", "KR-REV-EMEA")
    }
    history = json.loads(okrsync(pf, "history", "KR-REV-EMEA", "--json").stdout)["values"]
    assert [v["restated_from"] for v in history] == [None, before_ids[0], None, before_ids[1]]
    # A run now computes with the registered definition: no new audit event, values as restated.
    assert run_project(pf, LocalSteps(), as_of=T2).status == "succeeded"
    with store.engine.connect() as conn:
        assert len(audit.audit_log(conn)) == events_before + 5
        assert queries.value_at(conn, "KR-REV-EMEA").value == restated[-1].value
    store.close()


def test_apply_without_restate_keeps_history_as_computed(sqlite_project: Path) -> None:
    pf = sqlite_project
    change_revenue_filter(pf)
    project, store = load_project(pf), store_of(pf)
    p = planning.make_plan(project, store, T2)
    planning.apply_plan(project, store, p, reason="shipped counts", actor="dana", restate=False)
    with store.engine.connect() as conn:
        hist = queries.history(conn, "KR-REV")
        registered = dict(conn.execute(sa.select(m.key_result.c.id, m.key_result.c.definition_hash)).all())
    assert all(v.restated_from is None for v in hist) and len(hist) == 2
    assert registered["KR-REV"] == next(c.new.hash for c in p.changes if c.kr_id == "KR-REV")
    assert planning.make_plan(project, store, T2).changes == []
    store.close()


def test_a_run_with_a_changed_definition_is_audited(project_file: Path) -> None:
    pf = project_file
    change_revenue_filter(pf)
    assert run_project(pf, LocalSteps(), as_of=T2).status == "succeeded"
    store = store_of(pf)
    with store.engine.connect() as conn:
        events = [e for e in audit.audit_log(conn) if e.action == "definition.run"]
    assert sorted(e.kr_id for e in events) == ["KR-AOV", "KR-BOOKED", "KR-REV", "KR-REV-APAC",
                                                "KR-REV-EMEA"]
    store.close()


def test_a_bad_project_file_is_a_clear_error_and_changes_nothing(project_file: Path) -> None:
    pf = project_file
    store = store_of(pf)
    with store.engine.connect() as conn:
        registered = dict(conn.execute(sa.select(m.key_result.c.id, m.key_result.c.definition_hash)).all())
        values = conn.execute(sa.select(sa.func.count()).select_from(m.kr_value)).scalar()
    pf.write_text(pf.read_text().replace("measure: sum", "measure: summ"))
    out = okrsync(pf, "plan", "--apply", "--reason", "typo")
    assert out.returncode == 2 and "summ" in out.stderr and "Traceback" not in out.stderr
    pf.write_text(PROJECT.replace("field: amount\n", "field: amount_eur\n"))  # not in the stream
    with pytest.raises(ConfigError, match="amount_eur"):
        planning.make_plan(load_project(pf), store, T2)
    with store.engine.connect() as conn:
        now = dict(conn.execute(sa.select(m.key_result.c.id, m.key_result.c.definition_hash)).all())
        assert now == registered
        assert conn.execute(sa.select(sa.func.count()).select_from(m.kr_value)).scalar() == values
    store.close()


def test_a_ratio_s_numerator_change_moves_records_in_and_between_its_parts(sqlite_project: Path) -> None:
    pf = sqlite_project
    change_revenue_filter(pf)
    body = json.loads(okrsync(pf, "plan", "--format", "json", "--limit", "100").stdout)
    k = next(x for x in body["affected"] if x["kr"] == "KR-AOV")
    assert k["changed"] == ["denominator.description", "numerator.filter"]
    day = "2026-11-20"
    (booked,) = sql(pf, f"SELECT COUNT(*) FROM orders WHERE state IN ('confirmed', 'done') AND {WINDOW}",
                    day)[0]
    places = Decimal("1e-12")
    before = (revenue(pf, ("confirmed", "done"), day) / booked).quantize(places)
    after = (revenue(pf, ("confirmed", "shipped"), day) / booked).quantize(places)
    assert (Decimal(k["before"]["value"]), Decimal(k["after"]["value"])) == (before, after)
    # shipped orders enter the numerator; done ones stay in the denominator with no numerator amount
    shipped = {str(i) for (i,) in sql(pf, f"SELECT id FROM orders WHERE state = 'shipped' AND {WINDOW}", day)}
    done = {str(i): Decimal(str(a)) for i, a in
            sql(pf, f"SELECT id, CAST(amount AS TEXT) FROM orders WHERE state = 'done' AND {WINDOW}", day)}
    recs = k["records"]
    assert {r["record_id"] for r in recs if r["kind"] == "entering"} == shipped
    assert {r["record_id"]: Decimal(r["before"]) for r in recs if r["kind"] == "changed"} == done
    assert all(Decimal(r["after"]) == 0 for r in recs if r["kind"] == "changed")
    assert not [r for r in recs if r["kind"] == "leaving"]


@pytest.mark.parametrize("role", ["viewer", "hr"])
def test_records_follow_the_role_rules(
    sqlite_project: Path, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pf = sqlite_project
    change_revenue_filter(pf)
    monkeypatch.setenv("OKRSYNC_ROLE", role)
    project, store = load_project(pf), store_of(pf)
    name, spec = project.role()
    seen = planning.as_seen(project, spec, planning.make_plan(project, store, T2, limit=100))
    store.close()
    emea = next(c for c in seen.changes if c.kr_id == "KR-REV-EMEA")
    if role == "viewer":  # values only
        assert emea.records == [] and emea.total_moved == 3
        return
    people = dict(sql(pf, "SELECT CAST(id AS TEXT), salesperson FROM orders"))
    assert {r.record_id: r.fields["salesperson"] for r in emea.records} == {
        r.record_id: people[r.record_id] for r in emea.records}


def test_small_groups_over_personal_data_are_withheld_but_still_listed(sqlite_project: Path) -> None:
    pf = sqlite_project
    change_revenue_filter(pf)
    pf.write_text(pf.read_text().replace("min_group_size: 1", "min_group_size: 5"))
    out = okrsync(pf, "plan", "--format", "json")  # leadership: no sensitive fields, no small groups
    assert out.returncode == 3, out.stderr
    apac = next(k for k in json.loads(out.stdout)["affected"] if k["kr"] == "KR-REV-APAC")
    assert apac["before"] == {"value": None, "reason": "suppressed (n < 5)", "records": 0}
    assert apac["after"] == {"value": None, "reason": "suppressed (n < 5)", "records": 0}
    assert apac["delta"] is None
    assert all(p["stored"] is None and p["delta"] is None for p in apac["past_values"])
    hr = json.loads(okrsync(pf, "plan", "--format", "json", role="hr").stdout)
    apac = next(k for k in hr["affected"] if k["kr"] == "KR-REV-APAC")
    assert Decimal(apac["before"]["value"]) == revenue(pf, ("confirmed", "done"), "2026-11-20", "APAC")
    assert Decimal(apac["after"]["value"]) == revenue(pf, ("confirmed", "shipped"), "2026-11-20", "APAC")


def test_new_and_retired_krs_are_named_not_planned(sqlite_project: Path) -> None:
    pf = sqlite_project
    text = pf.read_text().replace("      - {id: KR-BIG, title: Big orders, metric: big, target: 20}\n",
                                  "      - {id: KR-BIG2, title: Big orders, metric: big, target: 25}\n")
    pf.write_text(text)
    store = store_of(pf)
    p = planning.make_plan(load_project(pf), store, T2)
    store.close()
    assert (p.changes, p.new, p.retired) == ([], ["KR-BIG2"], ["KR-BIG"])
    out = okrsync(pf, "plan")
    assert out.returncode == 0, out.stderr
    assert "New key results (the next run registers them): KR-BIG2" in out.stdout


def test_the_table_shows_values_and_moves_and_no_records_to_a_viewer(sqlite_project: Path) -> None:
    pf = sqlite_project
    change_revenue_filter(pf)
    wide = okrsync(pf, "plan", role="leadership")
    assert wide.returncode == 3, wide.stderr
    text = " ".join(wide.stdout.split())
    emea_now = revenue(pf, ("confirmed", "done"), "2026-11-20", "EMEA")
    emea_new = revenue(pf, ("confirmed", "shipped"), "2026-11-20", "EMEA")
    assert "KR-REV-EMEA: value changes" in text
    assert (emea_now, emea_new) == (Decimal("240.50"), Decimal("435.50"))
    assert "value 240.50 → 435.50 (Δ 195.00)" in text
    assert "past values: 2 of 2 would change" in text
    assert "as of 2026-11-10 12:00: 200.50 → 320.50" in text
    assert "Definition changed, every value the same: KR-BOOKED (metric.description)" in text
    assert "salesperson=•••" in text and "Ana" not in text
    viewer = okrsync(pf, "plan", role="viewer")
    assert viewer.returncode == 3 and "(your role, viewer, may not see the records)" in viewer.stdout
    assert "salesperson" not in viewer.stdout
