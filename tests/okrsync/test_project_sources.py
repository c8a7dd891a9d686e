"""check_sources: streams and metrics compared with the real schema of a SQLite database."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.sql import SqlConnector
from okrsync.project import check_sources, load_project
from okrsync.project_problems import ProjectFileError

PROJECT = """\
version: 1
settings:
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
    cursor: write_date
metrics:
  revenue:
    stream: orders
    measure: sum
    field: total_amount
    time_field: order_date
    filter: {field: status, op: "=", value: confirmed}
    dimensions: [region]
objectives:
  - id: O1
    title: Grow
    key_results:
      - {id: KR1, title: Revenue, metric: revenue, target: 100}
"""


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'erp.db'}")
    meta = sa.MetaData()
    sa.Table(
        "orders", meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("region", sa.Text),
        sa.Column("status", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("order_date", sa.Date),
        sa.Column("total_amount", sa.Numeric(12, 2)),
        sa.Column("write_date", sa.DateTime),
    )
    meta.create_all(engine)
    engine.dispose()
    return tmp_path


def write_project(*changes: tuple[str, str]) -> Path:
    text = PROJECT
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = Path("okrsync.yaml")
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_project_that_matches_its_database(project_dir: Path) -> None:
    assert check_sources(load_project(write_project())) == []


def test_a_metric_field_that_is_not_a_column(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("field: total_amount", "field: total"))))
    assert found == [
        "okrsync.yaml:18: metrics.revenue.field: stream 'orders' has no field 'total' (did you mean "
        "'total_amount'?) (fields: id, region, status, note, order_date, total_amount, write_date)"
    ]


def test_a_sum_over_text(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("field: total_amount", "field: note"))))
    assert found == [
        "okrsync.yaml:18: metrics.revenue.field: measure 'sum' needs a numeric field; 'note' is string"
    ]


def test_a_median_over_text_a_distinct_count_of_text(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("measure: sum", "measure: median"),
                                                     ("field: total_amount", "field: note"))))
    assert found == [
        "okrsync.yaml:18: metrics.revenue.field: measure 'median' needs a numeric field; 'note' is string"
    ]
    project = load_project(write_project(("measure: sum", "measure: count_distinct"),
                                         ("field: total_amount", "field: note")))
    assert check_sources(project) == []


def test_a_time_field_that_is_not_a_date(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("time_field: order_date", "time_field: id"))))
    assert found == [
        "okrsync.yaml:19: metrics.revenue.time_field: time_field 'id' must be a date or datetime field; it "
        "is integer"
    ]


def test_filter_and_dimension_fields_must_exist(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("field: status", "field: state"),
                                                     ("dimensions: [region]", "dimensions: [country]"))))
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["okrsync.yaml:21", "metrics.revenue.dimensions"],
        ["okrsync.yaml:20", "metrics.revenue.filter"],
    ]
    assert "has no field 'state' (did you mean 'status'?)" in found[1]


def test_fields_the_stream_does_not_keep(project_dir: Path) -> None:
    fields = "    cursor: write_date\n    fields: [id, status, order_date, total_amount]\n"
    with pytest.raises(ProjectFileError) as info:  # found when the file loads, before any source is asked
        load_project(write_project(("    cursor: write_date\n", fields)))
    assert [str(p) for p in info.value.problems] == [
        "okrsync.yaml:22: metrics.revenue.dimensions: stream 'orders' does not keep field 'region' (its "
        "fields: id, status, order_date, total_amount, write_date; add it to streams.orders.fields)"
    ]


def test_a_missing_table(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("table: orders", "table: sales_orders"))))
    assert len(found) == 1
    assert found[0].startswith("okrsync.yaml:9: streams.orders: ")
    assert "sales_orders" in found[0]


def test_a_declared_field_the_table_lacks(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("cursor: write_date", "cursor: updated_at"))))
    assert len(found) == 1
    assert found[0].startswith("okrsync.yaml:13: streams.orders.cursor: the source has no field 'updated_at'")


def test_a_database_file_that_does_not_exist(project_dir: Path) -> None:
    found = check_sources(load_project(write_project(("sqlite:///erp.db", "sqlite:///crm.db"))))
    assert len(found) == 1
    assert found[0].startswith("okrsync.yaml:5: sources.erp: ")
    assert "crm.db does not exist" in found[0]


def test_connectors_are_always_closed(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    original = SqlConnector.close

    def close(self: SqlConnector) -> None:
        closed.append(self.name)
        original(self)

    monkeypatch.setattr(SqlConnector, "close", close)
    check_sources(load_project(write_project(("table: orders", "table: sales_orders"))))
    check_sources(load_project(write_project()))
    assert closed == ["erp", "erp"]


CHECKS = """    cursor: write_date
    sensitive: [note]
    checks:
      - expect_column_values_to_be_between: {column: totl_amount, min_value: 0}
      - expect_column_values_to_not_be_nul: {column: id}
      - expect_column_values_to_be_in_set: {column: status}
      - volume_change: {max_percent: 50}
"""


def test_checks_naming_a_missing_column_or_a_wrong_expectation_fail_validation(project_dir: Path) -> None:
    from okrsync.project import check_declarations

    project = load_project(write_project(("    cursor: write_date\n", CHECKS)))
    found = check_declarations(project, with_sources=True)
    assert len(found) == 3, found
    missing, unknown, args = found
    assert missing.startswith("okrsync.yaml:16: streams.orders.checks[0]:") and "totl_amount" in missing
    assert "total_amount" in missing  # the available fields are listed
    assert unknown.startswith("okrsync.yaml:17: streams.orders.checks[1]:")
    assert "expect_column_values_to_not_be_null" in unknown  # did you mean
    assert args.startswith("okrsync.yaml:18: streams.orders.checks[2]:") and "value_set" in args


def test_a_malformed_check_is_a_load_error_with_its_line(project_dir: Path) -> None:
    from okrsync.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        bad = "    cursor: write_date\n    checks:\n      - freshness: {max_age: 3}\n"
        load_project(write_project(("    cursor: write_date\n", bad)))
    assert "okrsync.yaml:15: streams.orders.checks[0]" in str(err.value)
    assert "max_age_hours" in str(err.value)


def test_days_between_fields_are_checked_with_their_line(project_dir: Path) -> None:
    avg_days = ("measure: sum\n    field: total_amount", "measure: avg\n    days_between: [order_date, note]")
    found = check_sources(load_project(write_project(avg_days)))
    assert found == [
        "okrsync.yaml:18: metrics.revenue.days_between: days_between: the to field 'note' is a string "
        "field; days_between counts the days between two date fields"
    ]
    sent = ("measure: sum\n    field: total_amount", "measure: avg\n    days_between: [order_date, sent]")
    missing = check_sources(load_project(write_project(sent)))
    assert [line.split(": ", 2)[:2] for line in missing] == [
        ["okrsync.yaml:18", "metrics.revenue.days_between"]
    ]
    assert "has no field 'sent'" in missing[0]
