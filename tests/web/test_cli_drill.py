"""``okrsync drill`` with filters and sorting, on the same demo store the web tests use (history, a
sensitive salesperson field): the real console script, as each role."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.web.conftest import Site

OKRSYNC = Path(sys.executable).parent / "okrsync"


@pytest.fixture
def project(web_template: Site, tmp_path: Path) -> Path:
    shutil.copytree(web_template.project_dir, tmp_path / "demo")
    return tmp_path / "demo" / "okrsync.yaml"


def drill(project: Path, *args: str, role: str = "leadership") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")} | {"OKRSYNC_ROLE": role}
    return subprocess.run([str(OKRSYNC), "-p", str(project), "drill", "KR-REV", "--format", "json",
                           "--limit", "100000", *args], capture_output=True, text=True, env=env, timeout=120)


def test_where_sort_direction_and_record_id(project: Path) -> None:
    out = json.loads(drill(project, "--where", "region=APAC", "--sort", "order_date", "--desc").stdout)
    assert out["records"] and {r["fields"]["region"] for r in out["records"]} == {"APAC"}
    dates = [r["fields"]["order_date"] for r in out["records"]]
    assert dates == sorted(dates, reverse=True) and out["total"] == len(out["records"])
    con = sqlite3.connect(project.parent / "erp.db")
    (n,) = con.execute("SELECT COUNT(*) FROM orders WHERE state IN ('confirmed','done') AND region = 'APAC' "
                       "AND order_date >= '2026-10-01' AND order_date <= '2026-11-19'").fetchone()
    con.close()
    assert out["total"] == n
    some = out["records"][0]["record_id"]
    found = json.loads(drill(project, "--record-id", some, "--sort", "record").stdout)["records"]
    assert some in [r["record_id"] for r in found] and all(some in r["record_id"] for r in found)


def test_a_sensitive_field_filters_for_hr_only(project: Path) -> None:
    con = sqlite3.connect(project.parent / "erp.db")
    (name,) = con.execute("SELECT salesperson FROM orders WHERE region = 'EMEA' LIMIT 1").fetchone()
    con.close()
    hr = json.loads(drill(project, "--where", f"salesperson={name}", role="hr").stdout)
    assert hr["records"] and {r["fields"]["salesperson"] for r in hr["records"]} == {name}
    lead = drill(project, "--where", f"salesperson={name}")
    assert lead.returncode == 2
    assert "your role (leadership) cannot filter on it" in " ".join(lead.stderr.split())
    bad = drill(project, "--where", "region")
    assert bad.returncode == 2 and "expected FIELD=VALUE" in bad.stderr
    unknown = drill(project, "--sort", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_csv_quotes_formulas_and_json_keeps_them(project: Path, web_template: Site) -> None:
    """``drill --format csv`` writes source text that a spreadsheet would run with a leading single quote;
    ``--format json`` keeps it as the source holds it."""
    formulas = web_template.formula_orders
    which = [arg for i in formulas for arg in ("--where", f"id={i}")]
    out = drill(project, *which)
    assert out.returncode == 0, out.stderr
    assert {r["record_id"]: r["fields"]["number"] for r in json.loads(out.stdout)["records"]} == formulas
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    args = [str(OKRSYNC), "-p", str(project), "drill", "KR-REV", "--format", "csv", *which]
    exported = subprocess.run(args, capture_output=True, env=env, timeout=120)  # bytes: a CR stays a CR
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout.decode(), newline="")))
    assert {r["record_id"]: r["number"] for r in rows} == {i: "'" + f for i, f in formulas.items()}
    assert all(Decimal(r["contribution"]) == Decimal(r["untaxed_amount"]) > 0 for r in rows)


def test_diff_shows_sealed_fields_as_dots_in_its_reason_and_hr_in_clear(
    project: Path, web_template: Site
) -> None:
    """``okrsync diff``: the salesperson of the order that changed hands reads ••• in the reason (table and
    JSON) for leadership and admin, never the sealed text; hr reads the names."""
    from tests.web.conftest import RUNS

    order, before, after = web_template.handed_over
    span = ("--from", f"{RUNS[0]:%Y-%m-%dT%H:%M}Z", "--to", f"{RUNS[1]:%Y-%m-%dT%H:%M}Z", "--limit", "1000")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")} | {"COLUMNS": "400"}
    for role, shown in (("leadership", ("•••", "•••")), ("admin", ("•••", "•••")), ("hr", (before, after))):
        for fmt in ((), ("--json",)):
            args = [str(OKRSYNC), "-p", str(project), "diff", "KR-REV", *span, *fmt]
            out = subprocess.run(args, capture_output=True, text=True, env=env | {"OKRSYNC_ROLE": role},
                                 timeout=120)
            assert out.returncode == 0, out.stderr
            assert "pii:" not in out.stdout, (role, fmt)
            assert f"salesperson {shown[0]} → {shown[1]}" in out.stdout, (role, fmt)
            if role != "hr":
                assert before not in out.stdout and after not in out.stdout
        change = next(c for c in json.loads(out.stdout)["changes"] if c["record_id"] == order)
        assert f"salesperson {shown[0]} → {shown[1]}" in change["reason"]
