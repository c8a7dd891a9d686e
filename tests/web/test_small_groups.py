"""Small groups in HR aggregates (okrsync.small_groups): a value over personal data from fewer than 5
records reads "suppressed (n < 5)" for roles without ``sensitive``, in the API (enforced by the server,
whatever the page does) and in ``okrsync status``/``history``/``diff``; hr sees it.

The project (tests/web/hr_site.py) has 8 people: Finance's headcount (2) and the quarter's leavers (1)
are small groups, the company's headcount (8) is not. Expected values come from the people listed there
and from the store's own rows, not from the code under test."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Site
from tests.web.hr_site import PEOPLE, SMALL
from tests.web.test_api import client

OKRSYNC = Path(sys.executable).parent / "okrsync"
LABEL = "suppressed (n < 5)"
WITHHELD = ("viewer", "leadership", "admin")  # roles without `sensitive`


def krs_of(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for o in tree["objectives"]:
        out |= {k["id"]: k for k in o["key_results"]} | krs_of(o)
    return out


def assert_withheld(node: dict[str, Any]) -> None:
    """A KR or a history point as a role without `sensitive` must see a small group's value."""
    assert node["status"] == "suppressed" and node["reason"] == LABEL, node
    assert node["value"] is None and node["progress"] is None and node["records"] is None, node
    assert node.get("progress_raw") is None


def test_the_store_holds_the_small_groups_and_their_n(hr_server: Site) -> None:
    """The fixture is what the tests assume: the values are computed and stored, each with its n."""
    finance = sum(1 for p in PEOPLE if ",Finance," in p)
    left = sum(1 for p in PEOPLE if p.split(",")[4])
    assert (finance, left) == (2, 1) == (int(SMALL["KR-FIN-HEADCOUNT"]), int(SMALL["KR-LEAVERS"]))
    con = sqlite3.connect(hr_server.project_dir / ".okrsync" / "store.db")
    rows = con.execute("SELECT kr_id, value, records FROM kr_value").fetchall()
    con.close()
    stored = {(kr, str(int(float(v))), n) for kr, v, n in rows if kr in SMALL}
    assert ("KR-FIN-HEADCOUNT", "2", 2) in stored and ("KR-LEAVERS", "1", 1) in stored


@pytest.mark.parametrize("role", WITHHELD)
def test_the_api_withholds_small_groups_from_roles_without_sensitive(hr_server: Site, role: str) -> None:
    with client(hr_server, role) as c:
        tree = c.get("/api/tree").json()
        details = {kr: c.get(f"/api/krs/{kr}").json() for kr in SMALL}
        records = {kr: c.get(f"/api/krs/{kr}/values/{d['kr']['value_id']}/records")
                   for kr, d in details.items()}
        diff = c.get("/api/krs/KR-LEAVERS/diff")
    krs = krs_of(tree)
    for kr in SMALL:
        assert_withheld(krs[kr])
        assert_withheld(details[kr]["kr"])
        for point in details[kr]["history"]:
            assert_withheld(point)
    assert krs["KR-HEADCOUNT"]["value"] == "8" and krs["KR-HEADCOUNT"]["records"] == 8  # n = 8: shown
    objectives = {o["id"]: o for o in tree["objectives"]}
    assert objectives["O-KEEP"]["progress"] is None  # its only KR is withheld: no roll-up to read it from
    assert objectives["O-GROW"]["progress"] == krs["KR-HEADCOUNT"]["progress"]
    # The hold of Finance's headcount (2 → 3, past max_jump_percent) says why without the numbers.
    held = krs["KR-FIN-HEADCOUNT"]["held_reason"]
    assert krs["KR-FIN-HEADCOUNT"]["held"] and "max_jump_percent" in held and "→" not in held
    if role == "viewer":  # no records: the records and diff stay refused
        assert {r.status_code for r in records.values()} == {403} and diff.status_code == 403
        return
    # The drill-down follows the role's rules (records listed, sensitive fields masked); the value
    # at its head and the diff's two values and delta are withheld like everywhere else.
    for kr, r in records.items():
        page = r.json()
        assert_withheld(page["value"])
        assert page["total"] == len(page["records"]) == int(SMALL[kr])
        assert {rec["fields"]["name"] for rec in page["records"]} == {"•••"}
    d = diff.json()
    assert_withheld(d["from"])
    assert_withheld(d["to"])
    assert d["delta"] is None


def test_hr_sees_the_small_groups(hr_server: Site) -> None:
    with client(hr_server, "hr") as c:
        krs = krs_of(c.get("/api/tree").json())
        history = c.get("/api/krs/KR-FIN-HEADCOUNT").json()["history"]
    for kr, value in SMALL.items():
        assert krs[kr]["value"] == value and krs[kr]["records"] == int(value)
        assert krs[kr]["status"] != "suppressed" and krs[kr]["progress"] is not None
    assert [h["value"] for h in history] == ["2"]


# ---- the CLI ----------------------------------------------------------------------------------
@pytest.fixture
def project(hr_template: Site, tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(hr_template.project_dir, tmp_path / "hr")
    yield tmp_path / "hr" / "okrsync.yaml"


def okrsync(project: Path, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env |= {"OKRSYNC_ROLE": role, "COLUMNS": "300"}
    out = subprocess.run([str(OKRSYNC), "-p", str(project), *args], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_cli_status_history_and_diff_withhold_small_groups_from_roles_without_sensitive(
    project: Path,
) -> None:
    for role in WITHHELD:
        krs = krs_of(json.loads(okrsync(project, role, "status", "--json").stdout))
        for kr in SMALL:
            assert_withheld(krs[kr])
        assert krs["KR-HEADCOUNT"]["value"] == "8"
        text = okrsync(project, role, "status").stdout
        assert f"Finance headcount: {LABEL}" in text and f"Leavers this quarter: {LABEL}" in text
        assert "Headcount: 8" in text
        history = json.loads(okrsync(project, role, "history", "KR-FIN-HEADCOUNT", "--json").stdout)
        for point in history["values"]:
            assert_withheld(point)
        table = okrsync(project, role, "history", "KR-LEAVERS").stdout
        assert table.count(LABEL) == 2 and "on track" not in table
    d = json.loads(okrsync(project, "leadership", "diff", "KR-LEAVERS", "--json").stdout)
    assert_withheld(d["from"])
    assert_withheld(d["to"])
    assert d["delta"] is None
    assert f"KR-LEAVERS: {LABEL}" in okrsync(project, "leadership", "diff", "KR-LEAVERS").stdout
    # the drill-down follows the role rules: leadership lists the records, names masked
    drill = json.loads(okrsync(project, "leadership", "drill", "KR-FIN-HEADCOUNT", "--format", "json").stdout)
    assert {r["fields"]["name"] for r in drill["records"]} == {"•••"}


def test_cli_shows_hr_the_small_groups(project: Path) -> None:
    krs = krs_of(json.loads(okrsync(project, "hr", "status", "--json").stdout))
    assert {kr: krs[kr]["value"] for kr in SMALL} == SMALL
    assert "Finance headcount: 2 " in okrsync(project, "hr", "status").stdout
    values = json.loads(okrsync(project, "hr", "history", "KR-LEAVERS", "--json").stdout)["values"]
    assert [v["value"] for v in values] == ["1", "1"]


def test_min_group_size_is_a_project_setting(project: Path) -> None:
    text = project.read_text().replace("  default_period: 2026-Q4\n", "  default_period: 2026-Q4\n"
                                       "  min_group_size: 2\n")
    project.write_text(text)
    krs = krs_of(json.loads(okrsync(project, "leadership", "status", "--json").stdout))
    assert krs["KR-FIN-HEADCOUNT"]["value"] == "2"  # n = 2 is not below 2
    assert krs["KR-LEAVERS"]["reason"] == "suppressed (n < 2)" and krs["KR-LEAVERS"]["value"] is None
    project.write_text(text.replace("min_group_size: 2", "min_group_size: 0"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    bad = subprocess.run([str(OKRSYNC), "-p", str(project), "status"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and "min_group_size" in bad.stderr
