"""Great Expectations checks on sync batches: aggregation, failing ids, masking, problems, Data Docs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from metrics.gx import BatchValidator, build_data_docs, check_problems, validation_record
from metrics.quality import CheckSpec, Outcome

ROOT = Path(__file__).resolve().parents[2]
CANARY = "Canary-Salary-98765"
CANARY_NUMBER = 98765.4321
SENSITIVE = {"nickname", "salary"}

CHECKS = [
    CheckSpec.model_validate(raw)
    for raw in (
        {"expect_column_values_to_not_be_null": {"column": "name"}},
        {"expect_column_values_to_be_between": {"column": "salary", "min_value": 0, "max_value": 100_000}},
        {"expect_column_values_to_be_in_set": {"column": "status", "value_set": ["open", "won", "lost"]}},
        {
            "expect_column_values_to_be_in_set": {"column": "nickname", "value_set": ["ok"]},
            "severity": "warn",
        },
        {"expect_column_values_to_be_unique": {"column": "id"}},
        {"expect_table_row_count_to_be_between": {"min_value": 4}},
        {"expect_column_max_to_be_between": {"column": "salary", "max_value": 1000}, "severity": "warn"},
        {"freshness": {"max_age_hours": 24}},  # a builtin: not GX, skipped by the validator
    )
]
NOT_NULL, BETWEEN, IN_SET, SENSITIVE_IN_SET, UNIQUE, ROW_COUNT, MAX = range(7)

BATCHES = [
    pd.DataFrame(
        {
            "_rid": ["r1", "r2", "r3", "r4", "r5"],
            "id": [1, 2, 2, 3, 4],
            "name": ["a", None, "c", "d", None],
            "status": ["open", "won", "Zebra-Status", "open", "lost"],
            "nickname": ["ok", "ok", CANARY, "ok", "ok"],
            "salary": [10.0, 20.0, CANARY_NUMBER, -1.0, 30.0],
        }
    ),
    pd.DataFrame(
        {
            "_rid": ["r6", "r7", "r8"],
            "id": [5, 6, 7],
            "name": [None, "x", "y"],
            "status": ["won", "Zebra-Status", "open"],
            "nickname": [CANARY, "ok", "ok"],
            "salary": [-5.0, 1.0, 2.0],
        }
    ),
]


def expected_ids(bad: Any) -> list[str]:
    """The failing record ids, batch by batch, computed with pandas alone."""
    return [rid for df in BATCHES for rid in df.loc[bad(df), "_rid"]]


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    validator = BatchValidator("deals", CHECKS, sensitive=SENSITIVE)
    for df in BATCHES:
        validator.validate(df)
    validator.validate(BATCHES[0].iloc[:0])  # a zero-row batch changes nothing
    result = validator.outcomes()
    validator.close()
    return result


def test_counts_and_failing_ids_are_aggregated_over_batches(outcomes: list[Outcome]) -> None:
    assert len(outcomes) == 7  # builtins skipped
    assert [o.check for o in outcomes] == CHECKS[:7]
    bad = {
        NOT_NULL: lambda df: df["name"].isna(),
        BETWEEN: lambda df: (df["salary"] < 0) | (df["salary"] > 100_000),
        IN_SET: lambda df: ~df["status"].isin(["open", "won", "lost"]),
        SENSITIVE_IN_SET: lambda df: ~df["nickname"].isin(["ok"]),
        UNIQUE: lambda df: df["id"].duplicated(keep=False),  # GX checks uniqueness within a batch
    }
    rows = sum(len(df) for df in BATCHES)
    for index, condition in bad.items():
        outcome, ids = outcomes[index], expected_ids(condition)
        assert not outcome.success, outcome.check.label
        assert outcome.element_count == rows, outcome.check.label
        assert outcome.unexpected_count == len(ids), outcome.check.label
        assert list(outcome.failing_record_ids) == ids, outcome.check.label
    assert outcomes[NOT_NULL].observed == "3 of 8 rows (37.50 %) failed"
    row_count = outcomes[ROW_COUNT]
    assert not row_count.success and row_count.failing_record_ids == ()
    assert row_count.observed == "observed 3 (1 of 2 batches failed; first failing batch)"
    for outcome in outcomes:
        json.dumps(outcome.result)  # JSON-serialisable
        assert outcome.result["expectation_config"]["type"] == outcome.check.kind


def test_severity_decides_blocking(outcomes: list[Outcome]) -> None:
    assert outcomes[IN_SET].blocking  # error (the default)
    assert not outcomes[SENSITIVE_IN_SET].success and not outcomes[SENSITIVE_IN_SET].blocking  # warn
    assert not outcomes[MAX].blocking
    assert outcomes[SENSITIVE_IN_SET].result["expectation_config"]["severity"] == "warning"


def test_sensitive_values_never_leave_the_validator(outcomes: list[Outcome]) -> None:
    for index in (BETWEEN, SENSITIVE_IN_SET, MAX):
        outcome = outcomes[index]
        text = json.dumps(outcome.result) + (outcome.observed or "")
        assert CANARY not in text and str(CANARY_NUMBER) not in text, outcome.check.label
        assert "partial_unexpected_list" not in outcome.result["result"]
    assert outcomes[SENSITIVE_IN_SET].result["result"]["partial_unexpected_index_list"] == [{"_rid": "r3"}]
    assert "hidden" in (outcomes[MAX].observed or "")
    # non-sensitive failing values are GX's usual sample
    in_set = outcomes[IN_SET].result["result"]
    assert in_set["partial_unexpected_list"] == ["Zebra-Status"]
    assert in_set["partial_unexpected_index_list"] == [{"status": "Zebra-Status", "_rid": "r3"}]


def test_samples_are_bounded() -> None:
    df = pd.DataFrame({"_rid": [f"x{i}" for i in range(50)], "v": [None] * 50})
    check = CheckSpec.model_validate({"expect_column_values_to_not_be_null": {"column": "v"}})
    validator = BatchValidator("big", [check], sample_size=3)
    validator.validate(df)
    validator.validate(df.assign(_rid=[f"y{i}" for i in range(50)]))
    (outcome,) = validator.outcomes()
    validator.close()
    assert outcome.failing_record_ids == ("x0", "x1", "x2")
    assert outcome.unexpected_count == 100 and outcome.element_count == 100
    assert all(len(v) <= 3 for v in outcome.result["result"].values() if isinstance(v, list))


def test_check_problems() -> None:
    checks = [
        CheckSpec.model_validate({"expect_column_values_to_not_be_nul": {"column": "name"}}),
        CheckSpec.model_validate(
            {"expect_column_values_to_be_between": {"column": "salary", "min_value": "x"}}
        ),
        CheckSpec.model_validate({"expect_column_values_to_be_between": {"colum": "salary", "min_value": 1}}),
        CheckSpec.model_validate({"expect_column_values_to_not_be_null": {"column": "nope"}}),
        CheckSpec.model_construct(kind="freshness", kwargs={"max_age_hours": -1}, severity="error"),
        CheckSpec.model_construct(kind="volume_change", kwargs={"max_percent": 5, "x": 1}, severity="error"),
        CheckSpec.model_construct(kind="max_jump_percent", kwargs={}, severity="error"),
        *CHECKS,
    ]
    problems = dict(check_problems(checks, fields=["id", "name", "status", "nickname", "salary"]))
    assert set(problems) == {0, 1, 2, 3, 4, 5, 6}
    assert "did you mean `expect_column_values_to_not_be_null`" in problems[0]
    assert "argument `min_value`: value is not a valid float" in problems[1]
    assert "unknown argument `colum` (did you mean `column`?)" in problems[2]
    assert "column `nope` not in the stream" in problems[3] and "nickname, salary, status" in problems[3]
    assert "`max_age_hours`" in problems[4] and "-1" in problems[4]
    assert "unknown argument `x`" in problems[5]
    assert "`percent`" in problems[6] and "missing" in problems[6]
    assert check_problems(CHECKS, fields=None) == []


def test_importing_and_builtin_checks_do_not_load_great_expectations() -> None:
    code = (
        "import sys, pandas as pd\n"
        "from metrics.gx import BatchValidator, check_problems\n"
        "from metrics.quality import CheckSpec\n"
        "builtin = [CheckSpec.model_validate({'freshness': {'max_age_hours': 2}})]\n"
        "assert check_problems(builtin, ['a']) == []\n"
        "gx = [CheckSpec.model_validate({'expect_column_values_to_not_be_null': {'column': 'a'}})]\n"
        "v = BatchValidator('s', gx)\n"
        "v.validate(pd.DataFrame({'_rid': pd.Series([], dtype=str), 'a': []}))\n"
        "(o,) = v.outcomes()\n"
        "assert o.success and o.observed == 'no rows to validate', o\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'great_expectations'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_data_docs_from_stored_records(outcomes: list[Outcome], tmp_path: Path) -> None:
    run_time = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    builtin = Outcome(check=CHECKS[-1], success=True, observed="newest record is 1.0 h old")
    record = validation_record("deals", [*outcomes, builtin], run_time)
    stored = json.loads(json.dumps(record))  # what a store would give back
    assert stored["suite"] == "okrsync-deals" and stored["success"] is False
    assert stored["run_time"] == "2026-11-25T08:30:00+00:00"
    assert [e["type"] for e in stored["expectations"]] == [c.kind for c in CHECKS[:7]]
    assert stored["results"][NOT_NULL]["result"]["unexpected_count"] == 3
    assert stored["results"][NOT_NULL]["meta"]["okrsync"]["failing_record_ids"] == ["r2", "r5", "r6"]
    assert stored["builtins"] == [
        {
            "kind": "freshness",
            "kwargs": {"max_age_hours": 24},
            "severity": "error",
            "success": True,
            "observed": "newest record is 1.0 h old",
        }
    ]

    index = build_data_docs([stored], tmp_path / "docs")
    assert index.name == "index.html" and index.is_file()
    assert "okrsync-deals" in index.read_text()
    pages = {
        p: p.read_text(errors="replace")
        for p in (tmp_path / "docs").rglob("*")
        if p.suffix in (".html", ".json")
    }
    validation_pages = [text for p, text in pages.items() if "validations" in p.parts and p.suffix == ".html"]
    assert len(validation_pages) == 1
    page = validation_pages[0]
    assert "values must never be null" in page and "Zebra-Status" in page  # rendered by GX
    for path, text in pages.items():
        assert CANARY not in text and str(CANARY_NUMBER) not in text, path
        assert "dataContextId" not in text, path  # GX's logo beacon is stripped
