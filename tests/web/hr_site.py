"""A small HR project for the small-group tests: eight people in CSV exports (`kind: hr`, `system: files`),
two runs through the real Prefect flow, one user per role.

Run 1, as of 2026-10-15: Engineering has 5 people, Finance 2, and the one Sales person left on 2026-10-05.
So the company's headcount is 7 (shown to everyone), Finance's is 2 and the quarter's leavers are 1
(both small groups: withheld from roles without ``sensitive``). Before run 2, as of 2026-10-20, Finance
hires a third person: its headcount moves 2 → 3, past the metric's ``max_jump_percent: 25``, and is held;
the company's moves 7 → 8 and is recorded.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

PROJECT = """\
version: 1
settings:
  timezone: Europe/Berlin
  default_period: 2026-Q4
sources:
  hr_exports:
    kind: hr
    system: files
    folder: exports
    pattern: "employees_*.csv"
    mode: snapshot
    columns:
      id: {type: integer}
      name: {type: string}
      department: {type: string}
      hireDate: {type: date}
      terminationDate: {type: date}
      salary: {type: "decimal(2)"}
streams:
  employees:
    source: hr_exports
    primary_key: id
    cursor: _file_modified
    fields: [name, department, hireDate, terminationDate, salary]
    sensitive: [name, salary]
metrics:
  headcount:
    stream: employees
    measure: count
    time_field: hireDate
    window: as_of_end
    until_field: terminationDate
    dimensions: [department]
    checks:
      - max_jump_percent: 25
  leavers:
    stream: employees
    measure: count
    time_field: terminationDate
objectives:
  - id: O-GROW
    title: Grow the team to plan
    key_results:
      - id: KR-HEADCOUNT
        title: Headcount
        metric: headcount
        baseline: 5
        target: 10
      - id: KR-FIN-HEADCOUNT
        title: Finance headcount
        metric: headcount
        dimensions: {department: Finance}
        baseline: 1
        target: 4
  - id: O-KEEP
    title: Keep the people we hired
    key_results:
      - id: KR-LEAVERS
        title: Leavers this quarter
        metric: leavers
        baseline: 4
        target: 0
        direction: decrease
"""
HEADER = "id,name,department,hireDate,terminationDate,salary\n"
PEOPLE = [
    "1,Ada Engel,Engineering,2024-01-08,,81000.00",
    "2,Bert Brandt,Engineering,2024-02-01,,78000.00",
    "3,Cleo Clausen,Engineering,2024-03-01,,90500.00",
    "4,Dirk Dorn,Engineering,2024-05-02,,72000.00",
    "5,Erna Eich,Engineering,2025-01-06,,69000.00",
    "6,Fritzi Faber,Finance,2025-02-03,,64000.00",
    "7,Gustav Gold,Finance,2025-06-02,,71000.00",
    "8,Hanna Holm,Sales,2024-09-02,2026-10-05,58000.00",
]
HIRE = "9,Ines Imhof,Finance,2026-10-18,,66000.00"
RUNS = (datetime(2026, 10, 15, 12, 0), datetime(2026, 10, 20, 12, 0))
# What each role must never read while Finance's headcount and the leavers are withheld
SMALL = {"KR-FIN-HEADCOUNT": "2", "KR-LEAVERS": "1"}


def _export(folder: Path, name: str, rows: list[str], at: datetime) -> None:
    """Write an export under a private name, then rename it into the folder, as an HR system would."""
    tmp = folder / f".{name}"
    tmp.write_text(HEADER + "\n".join(rows) + "\n")
    ns = int(at.timestamp() * 1e9)
    os.utime(tmp, ns=(ns, ns))
    tmp.rename(folder / name)


def build(d: Path, users: dict[str, tuple[str, str]]) -> None:
    """The project in ``d``, run twice (see the module's docstring), with ``users``: role → (name,
    password)."""
    from okr_store import users as stored
    from okr_store.store import Store
    from okrsync import users as accounts
    from okrsync.project import load_project
    from tests.flow_runs import run_flow

    (d / "exports").mkdir(parents=True)
    (d / "okrsync.yaml").write_text(PROJECT)
    _export(d / "exports", "employees_1.csv", PEOPLE, datetime(2026, 10, 15, 8, 0))
    assert run_flow(d / "okrsync.yaml", RUNS[0])["status"] == "succeeded"
    _export(d / "exports", "employees_2.csv", [*PEOPLE, HIRE], datetime(2026, 10, 20, 8, 0))
    summary = run_flow(d / "okrsync.yaml", RUNS[1])
    assert summary["status"] == "partial" and set(summary["held"]) == {"KR-FIN-HEADCOUNT"}, summary
    store = Store(load_project(d / "okrsync.yaml").store_url())
    try:
        with store.engine.begin() as conn:
            for role, (name, pw) in users.items():
                stored.add_user(conn, name, role, accounts.hash_password(pw), accounts.utcnow())
    finally:
        store.close()
