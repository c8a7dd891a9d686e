"""Sensitive fields are sealed in the store, still count and filter, and show only to roles allowed.

The demo marks ``orders.salesperson`` sensitive (a person's name). Expected values come from SQL on the
demo ERP; the names themselves are the canaries grepped for in the store's bytes.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from okr_store import lineage, queries
from okr_store.store import Store
from okrsync import access
from okrsync.errors import ConfigError
from okrsync.pii import MASK, PREFIX
from okrsync.project import load_project
from okrsync.project_problems import ProjectFileError
from tests.flow_runs import run_flow

AS_OF = datetime(2026, 11, 20, 18, 0)


def salespeople(d: Path) -> list[str]:
    con = sqlite3.connect(d / "erp.db")
    names = [r[0] for r in con.execute("SELECT DISTINCT salesperson FROM orders ORDER BY 1")]
    con.close()
    return names


def revenue_of(d: Path, salesperson: str) -> Decimal:
    con = sqlite3.connect(d / "erp.db")
    rows = con.execute(
        "SELECT untaxed_amount FROM orders WHERE state IN ('confirmed','done') AND salesperson = ? "
        "AND order_date >= '2026-10-01' AND order_date <= '2026-11-20'", (salesperson,)).fetchall()
    con.close()
    return sum((Decimal(str(r[0])).quantize(Decimal("0.01")) for r in rows), Decimal(0))


def add_kr(d: Path, salesperson: str) -> None:
    """A KR pinned to one salesperson, and one filtering on them: both on the sensitive field."""
    p = d / "okrsync.yaml"
    text = p.read_text()
    text = text.replace("  average_order_value:\n", f"""  revenue_of_one:
    stream: orders
    measure: sum
    field: untaxed_amount
    time_field: order_date
    filter:
      and:
        - {{field: state, op: in, value: [confirmed, done]}}
        - {{field: salesperson, op: in, value: ["{salesperson}"]}}
  average_order_value:
""", 1)
    text = text.replace("      - id: KR-AOV\n", f"""      - id: KR-ONE-PINNED
        title: Revenue of one salesperson (pinned)
        metric: revenue
        dimensions: {{salesperson: "{salesperson}"}}
        target: 100000
      - id: KR-ONE-FILTERED
        title: Revenue of one salesperson (filtered)
        metric: revenue_of_one
        target: 100000
      - id: KR-AOV
""", 1)
    p.write_text(text)


def test_names_are_sealed_in_the_store_yet_pin_filter_and_reveal_by_role(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = salespeople(demo_dir)
    who = names[1]
    add_kr(demo_dir, who)
    summary = run_flow(demo_dir / "okrsync.yaml", AS_OF)
    assert summary["status"] == "succeeded", summary
    project = load_project(demo_dir / "okrsync.yaml")
    store = Store(project.store_url())

    # no name in clear anywhere in the store's file (its tables, indexes and free pages)
    store.close()
    raw = b"".join(p.read_bytes() for p in (demo_dir / ".okrsync").glob("store.db*"))
    assert raw, "the store file exists"
    for name in names:
        assert name.encode() not in raw, name
    assert PREFIX.encode() in raw  # sealed values are there instead
    assert os.stat(demo_dir / ".okrsync" / "pii.key").st_mode & 0o077 == 0

    # counting, pinning and filtering still work on the sealed field
    store = Store(project.store_url())
    with store.engine.connect() as conn:
        pinned = queries.value_at(conn, "KR-ONE-PINNED")
        filtered = queries.value_at(conn, "KR-ONE-FILTERED")
    assert pinned.value == filtered.value == revenue_of(demo_dir, who) > 0

    # drill-down: leadership (the default role) sees record ids and •••, hr sees the names
    d = lineage.drill(store, pinned, limit=1000)
    monkeypatch.delenv("OKRSYNC_ROLE", raising=False)
    as_leadership = access.drill_as(project, access.records_role(project), d)
    assert {r.fields["salesperson"] for r in as_leadership.records} == {MASK}
    assert all(r.fields["region"] for r in as_leadership.records)  # other fields stay readable
    monkeypatch.setenv("OKRSYNC_ROLE", "hr")
    as_hr = access.drill_as(project, access.records_role(project), d)
    assert {r.fields["salesperson"] for r in as_hr.records} == {who}
    monkeypatch.setenv("OKRSYNC_ROLE", "viewer")
    with pytest.raises(ConfigError, match="may see key results but not the records"):
        access.records_role(project)
    monkeypatch.setenv("OKRSYNC_ROLE", "cfo")
    with pytest.raises(ConfigError, match="does not define"):
        access.records_role(project)

    # another key cannot open them: hr with the wrong key sees •••
    monkeypatch.setenv("OKRSYNC_ROLE", "hr")
    monkeypatch.setenv("OKRSYNC_PII_KEY", base64.b64encode(os.urandom(64)).decode())
    wrong = access.drill_as(project, access.records_role(project), d)
    assert {r.fields["salesperson"] for r in wrong.records} == {MASK}
    store.close()


# The demo's revenue filter, as its project file spells it (okrsync/templates)
REVENUE_FILTER = ("    filter:\n      and:\n        - {field: state, op: in, value: [confirmed, done]}\n"
                  '        - {field: currency, op: "=", value: EUR}\n')


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    field: untaxed_amount\n    time_field: order_date\n" + REVENUE_FILTER
         + "    dimensions: [region, salesperson]",
         "    field: salesperson\n    time_field: order_date\n    dimensions: [region]",
         "'salesperson' is sensitive (stored encrypted): only count and count_distinct may use it"),
        (REVENUE_FILTER + "    dimensions: [region, salesperson]",
         "    filter: {field: salesperson, op: starts_with, value: A}\n    dimensions: [region]",
         "filter it with =, !=, in, not_in, is_null, not_null, not 'starts_with'"),
        ("    sensitive: [salesperson]", "    sensitive: [salesperson, order_date]",
         "'order_date' is sensitive (stored encrypted): it cannot place records in time"),
        ("    measure: avg\n    field: untaxed_amount\n",
         "    measure: avg\n    days_between: [order_date, salesperson]\n",
         "'salesperson' is sensitive (stored encrypted): days cannot be counted from it"),
        ("    sensitive: [salesperson]", "    sensitive: [salesperson, id]",
         "'id' is the stream's primary key: it cannot be sensitive"),
    ],
)
def test_what_sealed_values_cannot_do_is_refused_at_load(demo_dir: Path, old: str, new: str,
                                                         message: str) -> None:
    p = demo_dir / "okrsync.yaml"
    text = p.read_text()
    assert text.count(old) == 1, old
    p.write_text(text.replace(old, new))
    with pytest.raises(ProjectFileError) as exc:
        load_project(p)
    assert message in str(exc.value)
