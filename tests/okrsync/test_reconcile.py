"""Cross-system reconciliation (issue 17, part 2) on two small SQLite "systems" sharing references, with
the store on SQLite and PostgreSQL: a reconciliation that passes, one that fails with the exact
unmatched and mismatched records on both sides (checked against SQL over both systems), one that holds
the key results on either side until an admin accepts it, totals per dimension value without a match
key, and the project-file errors."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows.review import accept
from flows.run import LocalSteps, run_project
from okr_store import audit, checks, queries
from okr_store.store import Store
from okrsync.errors import ConfigError
from okrsync.project import load_project

AS_OF = datetime(2026, 11, 20, 18, 0)

PROJECT = """\
version: 1
settings: {{timezone: UTC, default_period: 2026-Q4}}
sources:
  crm: {{kind: sql, url: "sqlite:///crm.db"}}
  erp: {{kind: sql, url: "sqlite:///erp.db"}}
streams:
  deals: {{source: crm, table: deals, primary_key: id, cursor: write_date}}
  orders: {{source: erp, table: orders, primary_key: id, cursor: write_date}}
metrics:
  won:
    stream: deals
    measure: sum
    field: amount
    time_field: close_date
    filter: {{field: won, op: "=", value: 1}}
    dimensions: [currency]
  booked:
    stream: orders
    measure: sum
    field: amount
    time_field: order_date
    filter: {{field: crm_ref, op: not_null}}
    dimensions: [cur]
  won_count:
    stream: deals
    measure: count
    time_field: close_date
    filter: {{field: won, op: "=", value: 1}}
  win_share:
    measure: ratio
    numerator: won_count
    denominator: won_count
reconciliations:
  crm_vs_erp:
{recon}
objectives:
  - id: O1
    title: Sell
    key_results:
      - {{id: KR-WON, title: Won, metric: won, target: 10000}}
      - {{id: KR-BOOKED, title: Booked, metric: booked, target: 10000}}
      - {{id: KR-COUNT, title: Deals won, metric: won_count, target: 10}}
"""

MATCHED = """\
    left: won
    right: booked
    dimensions: {currency: cur}
    match: {left: ref, right: crm_ref}
    tolerance: {absolute: 0.5}
"""

# Both systems agree: every won deal of the quarter is booked once, in the same currency and amount
# (D4's booking is split in two orders; D6 closed before the quarter and is out of both sides).
DEALS = [  # id, ref, amount, currency, won, close_date
    (1, "OPP-1", "1000.00", "USD", 1, "2026-10-05"), (2, "OPP-2", "2500.00", "EUR", 1, "2026-10-20"),
    (3, "OPP-3", "400.00", "USD", 0, "2026-10-21"), (4, "OPP-4", "1200.00", "USD", 1, "2026-11-02"),
    (5, "OPP-5", "300.00", "EUR", 1, "2026-11-10"), (6, "OPP-6", "900.00", "USD", 1, "2026-09-28"),
]
ORDERS = [  # id, crm_ref, amount, cur, order_date
    (10, "OPP-1", "1000.00", "USD", "2026-10-06"), (11, "OPP-2", "2500.00", "EUR", "2026-10-22"),
    (12, "OPP-4", "700.00", "USD", "2026-11-03"), (13, "OPP-4", "500.00", "USD", "2026-11-04"),
    (14, "OPP-5", "300.20", "EUR", "2026-11-11"), (15, None, "99.00", "USD", "2026-11-12"),
    (16, "OPP-6", "900.00", "USD", "2026-09-29"),
]


def _write(d: Path, deals: list[tuple], orders: list[tuple], day: int = 15) -> None:
    """Both systems, every row written on ``day`` of November (later days: the next sync reads them)."""
    for name, ddl, rows in (
        ("crm", "deals(id INTEGER PRIMARY KEY, ref TEXT, amount NUMERIC(12,2), currency TEXT, won INTEGER, "
                "close_date DATE, write_date TIMESTAMP)", deals),
        ("erp", "orders(id INTEGER PRIMARY KEY, crm_ref TEXT, amount NUMERIC(12,2), cur TEXT, "
                "order_date DATE, write_date TIMESTAMP)", orders),
    ):
        con = sqlite3.connect(d / f"{name}.db")
        table = ddl.split("(")[0]
        con.execute(f"CREATE TABLE IF NOT EXISTS {ddl}")
        con.execute(f"DELETE FROM {table}")
        marks = ",".join("?" * (len(rows[0]) + 1))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})",
                        [(*r, f"2026-11-{day:02d} 10:00:{i:02d}") for i, r in enumerate(rows)])
        con.commit()
        con.close()


@pytest.fixture(params=["sqlite", "postgres"])
def project_dir(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    if request.param == "postgres":
        monkeypatch.setenv("OKRSYNC_STORE_URL", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)
    yield tmp_path


def setup(d: Path, recon: str = MATCHED, deals: list[tuple] = DEALS, orders: list[tuple] = ORDERS) -> Path:
    _write(d, deals, orders)
    pf = d / "okrsync.yaml"
    pf.write_text(PROJECT.format(recon=recon.rstrip("\n")))
    return pf


def run(pf: Path) -> object:
    return run_project(pf, LocalSteps(), as_of=AS_OF)


def latest(pf: Path) -> checks.CheckRow:
    store = Store(load_project(pf).store_url())
    with store.engine.connect() as conn:
        rows = [r for r in checks.list_checks(conn) if r.kind == "reconcile"]
    store.close()
    return rows[0]


def kr(pf: Path, kr_id: str) -> queries.KrStatus:
    store = Store(load_project(pf).store_url())
    with store.engine.connect() as conn:
        tree = queries.status_tree(conn)
    store.close()
    return next(k for k in tree[0].key_results if k.id == kr_id)


def test_a_reconciliation_of_systems_that_agree_passes(project_dir: Path) -> None:
    # OPP-5 differs by 0.20, within the 0.50 tolerance
    pf = setup(project_dir)
    assert run(pf).status == "succeeded"
    c = latest(pf)
    assert (c.status, c.label, c.unexpected_count) == ("passed", "reconcile(crm_vs_erp)", 0)
    assert c.element_count == 9  # 4 deals + 5 orders
    r = c.result
    assert (r["left"]["total"], r["right"]["total"], r["matched"]) == ("5000", "5000.2", 4)
    assert [(x["key"], x["left"], x["right"]) for x in r["dimensions"]] == [
        ("EUR", "2800", "2800.2"), ("USD", "2200", "2200")]
    assert not r["unmatched_left"] and not r["unmatched_right"] and not r["mismatched"]
    assert kr(pf, "KR-WON").value.value == Decimal("5000.00")


def _independent(d: Path) -> dict[str, set[tuple[str, str, str]]]:
    """Per reference, the amounts on each side, from SQL over both systems (not okrsync's code)."""
    con = sqlite3.connect(d / "crm.db")
    con.execute(f"ATTACH DATABASE '{d / 'erp.db'}' AS erp")
    left = ("SELECT ref AS k, printf('%.2f', SUM(amount)) AS a FROM deals WHERE won = 1 "
            "AND close_date >= '2026-10-01' AND close_date <= '2026-11-20' GROUP BY ref")
    right = ("SELECT crm_ref AS k, printf('%.2f', SUM(amount)) AS a FROM erp.orders "
             "WHERE crm_ref IS NOT NULL AND order_date >= '2026-10-01' AND order_date <= '2026-11-20' "
             "GROUP BY crm_ref")
    q = {
        "unmatched_left": f"SELECT l.k, l.a, '0.00' FROM ({left}) l "
                          f"WHERE l.k NOT IN (SELECT k FROM ({right}))",
        "unmatched_right": f"SELECT r.k, '0.00', r.a FROM ({right}) r "
                           f"WHERE r.k NOT IN (SELECT k FROM ({left}))",
        "mismatched": f"SELECT l.k, l.a, r.a FROM ({left}) l JOIN ({right}) r ON l.k = r.k "
                      "WHERE ABS(l.a - r.a) > 0.5",
    }
    out = {k: set(con.execute(sql).fetchall()) for k, sql in q.items()}
    con.close()
    return out


def _found(r: dict, group: str) -> set[tuple[str, str, str]]:
    return {(x["key"], f"{Decimal(x['left']):.2f}", f"{Decimal(x['right']):.2f}") for x in r[group]}


def test_a_failing_reconciliation_lists_the_exact_unmatched_and_mismatched_records(project_dir: Path) -> None:
    deals = [*DEALS, (7, "OPP-7", "800.00", "USD", 1, "2026-11-18")]  # won, not booked yet
    orders = [o if o[0] != 11 else (11, "OPP-2", "2300.00", "EUR", "2026-10-22") for o in ORDERS]  # discount
    orders += [(17, "OPP-3", "400.00", "USD", "2026-10-25")]  # booked, but the deal was lost in the CRM
    pf = setup(project_dir, MATCHED + "    severity: warn\n", deals, orders)
    assert run(pf).status == "succeeded"  # a warning: nothing held
    c = latest(pf)
    assert c.status == "warned" and c.unexpected_count == 3
    sql = _independent(project_dir)
    assert sql == {"unmatched_left": {("OPP-7", "800.00", "0.00")},
                   "unmatched_right": {("OPP-3", "0.00", "400.00")},
                   "mismatched": {("OPP-2", "2500.00", "2300.00")}}
    for group in sql:
        assert _found(c.result, group) == sql[group]
    r = c.result
    assert r["unmatched_left"][0]["left_records"] == ["7"]
    assert r["unmatched_right"][0]["right_records"] == ["17"]
    assert (r["mismatched"][0]["left_records"], r["mismatched"][0]["right_records"]) == (["2"], ["11"])
    assert c.observed == ("won 5800 vs booked 5200.2 (difference 599.8, tolerance ±0.5); 4 keys matched, "
                          "1 only in won, 1 only in booked, 1 mismatched")
    assert kr(pf, "KR-WON").held_reason is None


def test_a_blocking_reconciliation_holds_the_krs_on_both_sides_until_accepted(project_dir: Path) -> None:
    pf = setup(project_dir)
    assert run(pf).status == "succeeded"
    before = {k: kr(pf, k).value.value for k in ("KR-WON", "KR-BOOKED", "KR-COUNT")}
    _write(project_dir, [*DEALS, (7, "OPP-7", "800.00", "USD", 1, "2026-11-18")], ORDERS, day=18)
    summary = run(pf)
    assert summary.status == "partial" and set(summary.held) == {"KR-WON", "KR-BOOKED"}
    c = latest(pf)
    assert c.status == "blocked" and sorted(c.held_krs) == ["KR-BOOKED", "KR-WON"]
    assert _found(c.result, "unmatched_left") == {("OPP-7", "800.00", "0.00")}
    held = kr(pf, "KR-WON")
    assert held.held_reason.startswith(f"held by reconciliation check #{c.id} crm_vs_erp: won 5800 vs booked")
    assert held.value.value == before["KR-WON"]  # the last good value stays
    assert kr(pf, "KR-COUNT").value.value == 5  # a KR on neither metric moves on
    project, store = load_project(pf), Store(load_project(pf).store_url())
    with pytest.raises(ConfigError, match="needs a reason"):
        accept(project, store, c.id, reason=" ", actor="ana")
    done = accept(project, store, c.id, reason="OPP-7 is booked on Monday", actor="ana")
    assert done.held == {} and done.values["KR-WON"] == "5800.00"
    assert kr(pf, "KR-WON").value.value == Decimal("5800.00") and kr(pf, "KR-WON").held_reason is None
    with store.engine.connect() as conn:
        (event,) = [e for e in audit.recent(conn, limit=10) if e.check_id == c.id]
        assert (event.actor, event.action, event.reason) == ("ana", "accept", "OPP-7 is booked on Monday")
        assert checks.get_check(conn, c.id).status == "accepted"
    store.close()
    # The same difference stays accepted; a new one holds again.
    assert run(pf).status == "succeeded" and latest(pf).status == "accepted"
    _write(project_dir, [*DEALS, (7, "OPP-7", "800.00", "USD", 1, "2026-11-18"),
                         (8, "OPP-8", "50.00", "USD", 1, "2026-11-19")], ORDERS, day=19)
    again = run(pf)
    assert again.status == "partial" and latest(pf).status == "blocked"


def test_without_a_match_key_the_totals_per_dimension_value_are_compared(project_dir: Path) -> None:
    orders = [o if o[0] != 11 else (11, "OPP-2", "2300.00", "EUR", "2026-10-22") for o in ORDERS]
    pf = setup(project_dir, "    left: won\n    right: booked\n    dimensions: {currency: cur}\n"
                            "    tolerance: {percent: 1}\n", orders=orders)
    summary = run(pf)
    c = latest(pf)
    assert c.status == "blocked" and summary.held.keys() == {"KR-WON", "KR-BOOKED"}
    # EUR: 2500 + 300 vs 2300 + 300.20 → 7.1 % apart; USD: 1000 + 1200 vs 1000 + 700 + 500 → equal
    assert [(x["key"], x["left"], x["right"], x["within_tolerance"]) for x in c.result["dimensions"]] == [
        ("EUR", "2800", "2600.2", False), ("USD", "2200", "2200", True)]
    assert "unmatched_left" not in c.result and c.unexpected_count == 1
    assert c.observed.endswith("; 1 of 2 dimension values differ")


@pytest.mark.parametrize(("recon", "message"), [
    ("    left: wonn\n    right: booked\n",
     "reconciliations.crm_vs_erp.left: unknown metric 'wonn' (did you mean 'won'?)"),
    ("    left: win_share\n    right: booked\n",
     "metric 'win_share' is a ratio: a reconciliation compares records"),
    ("    left: won\n    right: won\n", "left and right must be two different metrics"),
    ("    left: won\n    right: booked\n    dimensions: {region: cur}\n",
     "reconciliations.crm_vs_erp.dimensions: left metric 'won' has no dimension 'region'"),
    ("    left: won\n    right: booked\n    tolerance: {absolute: 1, percent: 2}\n",
     "give one of `absolute: 1.00` or `percent: 0.5`"),
    ("    left: won\n    right: booked\n    severity: fatal\n", "reconciliations.crm_vs_erp.severity"),
    ("    left: won\n    right: booked\n    period: 2026-Q5\n", "reconciliations.crm_vs_erp.period"),
    ("    left: won\n    right: booked\n    matc: {left: ref, right: crm_ref}\n", "unknown key 'matc'"),
])
def test_bad_reconciliations_are_refused_with_the_line(tmp_path: Path, recon: str, message: str) -> None:
    pf = setup(tmp_path, recon)
    with pytest.raises(ConfigError) as exc:
        load_project(pf)
    assert message in str(exc.value)
    assert "okrsync.yaml:" in str(exc.value)


def test_a_match_field_the_stream_does_not_keep_is_refused(tmp_path: Path) -> None:
    pf = setup(tmp_path)
    text = pf.read_text().replace("cursor: write_date}\n  orders", "cursor: write_date, fields: [id, amount, "
                                  "currency, won, close_date, write_date]}\n  orders")
    pf.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_project(pf)
    assert "reconciliations.crm_vs_erp.match.left: stream 'deals' does not keep field 'ref'" in str(exc.value)


def test_the_finding_is_stored_as_json_without_other_fields(project_dir: Path) -> None:
    pf = setup(project_dir)
    run(pf)
    text = json.dumps(latest(pf).result)
    assert "close_date" not in text and "2026-10" not in text  # ids, keys and amounts only


def test_the_demo_reconciles_crm_deals_with_erp_bookings_and_finds_the_planted_differences(
    demo_dir: Path,
) -> None:
    """The demo's ``won_vs_booked`` after ``okrsync demo``: the CRM side from the sandbox org's own
    model, the ERP side from SQL over erp.db, the differences computed here by hand."""
    from okrsync.sandboxes.salesforce.model import Org

    conn_info = json.loads((demo_dir / "salesforce-sandbox" / "connection.json").read_text())
    org = Org(datetime.fromisoformat(conn_info["org_now"])).generate(
        seed=conn_info["seed"], opportunities=conn_info["opportunities"])
    project = load_project(demo_dir / "okrsync.yaml")
    quarter = project.period(project.settings.default_period or "")
    c = latest(demo_dir / "okrsync.yaml")
    assert (c.label, c.severity, c.status) == ("reconcile(won_vs_booked)", "warn", "warned")
    today = c.created_at.date()
    crm = {r["Id"]: Decimal(repr(r["Amount"])) for r in org.records("Opportunity")
           if r["IsWon"] and r["Amount"] is not None and quarter.start <= r["CloseDate"] <= today}
    con = sqlite3.connect(demo_dir / "erp.db")
    erp: dict[str, Decimal] = {}
    for ref, amount in con.execute(
            "SELECT crm_reference, printf('%.2f', untaxed_amount) FROM orders "
            "WHERE crm_reference IS NOT NULL AND state IN ('confirmed', 'done') "
            "AND order_date >= ? AND order_date <= ?",
            (quarter.start.isoformat(), today.isoformat())):
        erp[ref] = erp.get(ref, Decimal(0)) + Decimal(amount)
    con.close()
    only_crm = {k for k in crm if k not in erp}
    only_erp = {k for k in erp if k not in crm}
    differ = {k for k in crm.keys() & erp.keys() if crm[k] != erp[k]}
    r = c.result
    assert {p["key"] for p in r["unmatched_left"]} == only_crm and len(only_crm) >= 1  # not booked yet
    assert {p["key"] for p in r["unmatched_right"]} == only_erp and len(only_erp) == 1  # a lost deal booked
    assert {p["key"] for p in r["mismatched"]} == differ
    for p in r["mismatched"]:  # every 9th booking carries a 3 % discount the CRM never heard of
        assert Decimal(p["right"]) == (Decimal(p["left"]) * Decimal("0.97")).quantize(Decimal("0.01"))
    assert Decimal(r["left"]["total"]) == sum(crm.values(), Decimal(0))
    assert Decimal(r["right"]["total"]) == sum(erp.values(), Decimal(0))


def test_checks_show_prints_the_unmatched_and_mismatched_records_and_the_accept_hint(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)
    deals = [*DEALS, (7, "OPP-7", "800.00", "USD", 1, "2026-11-18")]
    orders = [o if o[0] != 11 else (11, "OPP-2", "2300.00", "EUR", "2026-10-22") for o in ORDERS]
    pf = setup(tmp_path, MATCHED, deals, orders)
    assert run(pf).status == "partial"
    c = latest(pf)
    shown = cli("-p", pf, "checks", "show", str(c.id), cwd=tmp_path, env={"COLUMNS": "200"})
    assert shown.code == 0, shown
    out = shown.out
    assert f"Check #{c.id} reconcile(crm_vs_erp) on won ↔ booked — blocked" in out
    assert "held key results: KR-WON, KR-BOOKED" in out
    for line in ("totals per currency ↔ cur", "only in won (1)", "amounts differ (1)"):
        assert line in out, out
    assert re.search(r"OPP-7\s*│\s*800\s*│\s*0\s*│\s*7\s*│", out), out
    assert re.search(r"OPP-2\s*│\s*2500\s*│\s*2300\s*│\s*2\s*│\s*11\s*│", out), out
    assert "only in booked (" not in out  # nothing is: no table
    assert f"okrsync checks accept {c.id}" in out and "the same difference then stays accepted" in out
    listed = cli("-p", pf, "checks", "--failed", "--json", cwd=tmp_path)
    (row,) = json.loads(listed.out)["checks"]
    assert (row["kind"], row["status"], row["held_krs"]) == ("reconcile", "blocked", ["KR-WON", "KR-BOOKED"])
