"""Errors at the command line: a wrong project file or argument exits 2 with a message naming
``file:line: key.path`` and what is allowed, never a Python traceback (unless --debug asks for one).

Everything here runs the real ``okrsync`` console script; nothing needs a Prefect API.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from okrsync.demo_erp import build_erp
from tests.okrsync.conftest import Cli, Result

# Line numbers matter: each case below changes one line and expects that line in the message.
PROJECT = """\
version: 1
settings:
  timezone: Europe/Berlin
  default_period: 2026-Q4
sources:
  erp:
    kind: sql
    url: sqlite:///erp.db
streams:
  orders:
    source: erp
    table: orders
    primary_key: id
    cursor: [write_date, create_date]
metrics:
  revenue:
    stream: orders
    measure: sum
    field: untaxed_amount
    time_field: order_date
    filter: {field: state, op: in, value: [confirmed, done]}
objectives:
  - id: O1
    title: Grow revenue
    key_results:
      - id: KR1
        title: Booked revenue
        metric: revenue
        target: 1000000
"""


def edit(line: int, new: str) -> str:
    """PROJECT with line ``line`` (1-based) replaced by ``new`` (which may hold several lines)."""
    lines = PROJECT.splitlines()
    assert lines[line - 1].strip(), "the cases edit lines that exist"
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ERP (a SQLite file), built once for the module."""
    path = tmp_path_factory.mktemp("erp") / "erp.db"
    build_erp(path, today=date(2026, 11, 20))
    return path


@pytest.fixture
def project_dir(tmp_path: Path, erp: Path) -> Path:
    (tmp_path / "erp.db").symlink_to(erp)
    return tmp_path


def test_the_base_project_is_valid_against_the_demo_erp(cli: Cli, project_dir: Path) -> None:
    (project_dir / "okrsync.yaml").write_text(PROJECT)
    r = cli("validate", "--check-sources", cwd=project_dir)
    assert r.code == 0 and "OK" in r.out and r.err == "", r


CASES = {
    "unknown key": (
        edit(19, "    field: untaxed_amount\n    colour: blue"), (),
        "okrsync.yaml:20: metrics.revenue.colour: unknown key 'colour'", ("allowed:", "measure"),
    ),
    "misspelt measure": (
        edit(18, "    measure: summ"), (),
        "okrsync.yaml:18: metrics.revenue.measure: 'summ' is not one of", ("did you mean 'sum'?",),
    ),
    "bad period": (
        edit(4, "  default_period: 2026-Q5"), (),
        "okrsync.yaml:4: settings.default_period: '2026-Q5' is not a period", ("2026-Q4",),
    ),
    "bad period of a key result": (
        edit(29, "        target: 1000000\n        period: Q4-2026"), (),
        "okrsync.yaml:30: objectives[0].key_results[0].period: 'Q4-2026' is not a period", (),
    ),
    "missing metric field (checked at the source)": (
        edit(19, "    field: untaxed_amnt"), ("--check-sources",),
        "okrsync.yaml:19: metrics.revenue.field: stream 'orders' has no field 'untaxed_amnt'",
        ("did you mean 'untaxed_amount'?",),
    ),
    "invalid YAML": (
        edit(21, "    filter: {field: state, op: in, value: [confirmed, done]"), (),
        "okrsync.yaml:22:", ("invalid YAML",),
    ),
}


def validate_all(cli: Cli, project_dir: Path) -> dict[str, Result]:
    """Every case in a folder of its own, validated concurrently."""
    calls = []
    for i, (text, flags, _, _) in enumerate(CASES.values()):
        d = project_dir / f"case{i}"
        d.mkdir()
        (d / "erp.db").symlink_to((project_dir / "erp.db").resolve())
        (d / "okrsync.yaml").write_text(text)
        calls.append((("validate", *flags), d))
    return dict(zip(CASES, cli.many(*calls), strict=True))


def test_validation_errors_name_file_line_and_key_path(cli: Cli, project_dir: Path) -> None:
    results = validate_all(cli, project_dir)
    for case, (_, _, where, needles) in CASES.items():
        r = results[case]
        assert r.code == 2, (case, str(r))
        assert "Traceback" not in r.err, (case, str(r))
        assert r.out == "", (case, str(r))  # errors go to stderr; stdout stays clean for pipes
        assert where in one_line(r.err), (case, str(r))
        for needle in needles:
            assert needle in one_line(r.err), (case, needle, str(r))


def test_missing_stream_field_names_its_key(cli: Cli, project_dir: Path) -> None:
    (project_dir / "okrsync.yaml").write_text(edit(14, "    cursor: [write_date, created]"))
    r = cli("validate", "--check-sources", cwd=project_dir)
    assert r.code == 2 and "Traceback" not in r.err, r
    assert "okrsync.yaml:14: streams.orders.cursor: the source has no field 'created'" in one_line(r.err), r


def test_every_problem_is_reported_at_once(cli: Cli, project_dir: Path) -> None:
    text = edit(18, "    measure: summ").replace("default_period: 2026-Q4", "default_period: 2026-Q5")
    (project_dir / "okrsync.yaml").write_text(text)
    r = cli("validate", cwd=project_dir)
    assert r.code == 2 and "Traceback" not in r.err, r
    lines = [line.strip() for line in r.err.splitlines()]
    assert any(line.startswith("okrsync.yaml:4: settings.default_period:") for line in lines), r
    assert any(line.startswith("okrsync.yaml:18: metrics.revenue.measure:") for line in lines), r
    assert "2 problems" in r.err, r


@pytest.fixture(scope="module")
def debug_run(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """`okrsync --debug validate` of a file with a misspelt measure (one call for two tests)."""
    d = tmp_path_factory.mktemp("debug")
    (d / "okrsync.yaml").write_text(edit(18, "    measure: summ"))
    return cli("--debug", "validate", cwd=d)


def test_debug_shows_the_traceback(debug_run: Result) -> None:
    r = debug_run
    assert r.code != 0, r
    assert "Traceback (most recent call last)" in r.err, r
    assert "ProjectFileError" in r.err and "okrsync.yaml:18: metrics.revenue.measure" in r.err, r


def test_debug_keeps_the_exit_status(debug_run: Result) -> None:
    assert "Traceback" in debug_run.err
    assert debug_run.code == 2, debug_run


def test_errors_are_one_line_each_when_piped(cli: Cli, project_dir: Path) -> None:
    """A long path (run from elsewhere) must not be wrapped at 80 columns: CI logs and editors jump to
    ``file:line:`` and scripts grep for it."""
    deep = project_dir / "a-rather-long-folder-name-for-okr-projects" / "of-the-sales-team-in-emea"
    deep.mkdir(parents=True)
    (deep / "okrsync.yaml").write_text(edit(18, "    measure: summ"))
    r = cli("-p", deep / "okrsync.yaml", "validate", cwd=Path("/"))
    assert r.code == 2, r
    shown = str(deep / "okrsync.yaml").lstrip("/")  # relative to the working directory
    assert any(shown + ":18: metrics.revenue.measure: 'summ'" in line for line in r.err.splitlines()), r


def test_validate_json_reports_project_file_problems(cli: Cli, project_dir: Path) -> None:
    (project_dir / "okrsync.yaml").write_text(edit(18, "    measure: summ"))
    r = cli("validate", "--json", cwd=project_dir)
    assert r.code == 2, r
    report = json.loads(r.out)
    assert report["ok"] is False, report
    assert any("okrsync.yaml:18: metrics.revenue.measure" in p for p in report["problems"]), report


def test_check_sources_json_lists_the_problems(cli: Cli, project_dir: Path) -> None:
    (project_dir / "okrsync.yaml").write_text(edit(19, "    field: untaxed_amnt"))
    r = cli("validate", "--check-sources", "--json", cwd=project_dir)
    assert r.code == 2 and "Traceback" not in r.err, r
    report = json.loads(r.out)
    assert report["ok"] is False and len(report["problems"]) == 1, report
    assert report["problems"][0].startswith("okrsync.yaml:19: metrics.revenue.field:"), report


def test_usage_errors(cli: Cli, tmp_path: Path) -> None:
    missing, command, option, no_file = cli.many(
        (("-p", "nothere.yaml", "status"), tmp_path),
        (("frobnicate",), tmp_path),
        (("status", "--frob"), tmp_path),
        (("validate",), tmp_path),
    )
    for r in (missing, command, option, no_file):
        assert r.code == 2 and "Traceback" not in r.err, r
    assert "no project file at nothere.yaml" in missing.err and "okrsync init" in missing.err, missing
    assert "no project file at okrsync.yaml" in no_file.err, no_file
    assert "frobnicate" in command.err and "--frob" in option.err


def test_check_sources_refuses_a_reconcile_cadence_on_a_query_stream(cli: Cli, project_dir: Path) -> None:
    text = edit(12, "    query: SELECT * FROM orders WHERE state = 'done'\n    reconcile_every_hours: 24")
    (project_dir / "okrsync.yaml").write_text(text)
    r = cli("validate", "--check-sources", cwd=project_dir)
    assert r.code == 2 and "Traceback" not in r.err, r
    assert ("okrsync.yaml:13: streams.orders.reconcile_every_hours: stream 'orders': its rows come through a "
            "filter only the source knows") in one_line(r.err), r
