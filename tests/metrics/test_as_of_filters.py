"""``{days_before_as_of: N}``: filter values relative to the time a key result is computed for.

"Overdue as of now" cannot be stored on a record (the record does not change when its due date passes),
so a metric filter compares a date or datetime field with the as-of day (or instant) minus N days, and a
back-filled run sees what was overdue *then*. Checked against plain Python over the same rows, on SQLite
and (when configured) PostgreSQL, for date and datetime fields, with the period's timezone deciding the
as-of day.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from metrics.definition import build_definition
from metrics.evaluate import StreamView, contribution_parts, evaluate
from metrics.periods import parse_period
from metrics.spec import SimpleMetric
from okrsync.errors import ConfigError
from okrsync.project import load_project
from okrsync.schema import Field, FieldType, StreamSchema

SCHEMA = StreamSchema((Field("id", FieldType.INTEGER), Field("state", FieldType.STRING),
                       Field("due", FieldType.DATE), Field("due_at", FieldType.DATETIME)))
Q4 = parse_period("2026-Q4", timezone="Europe/Berlin")
# 23:30 UTC on the 20th is already the 21st in Berlin: the as-of day is the 21st there
AS_OF = datetime(2026, 11, 20, 23, 30)
ROWS = [{"id": i, "state": "done" if i % 3 == 0 else "waiting",
         "due": date(2026, 11, 10) + timedelta(days=i),
         "due_at": datetime(2026, 11, 10, 12) + timedelta(days=i)} for i in range(1, 21)]


def view(url: str) -> tuple[sa.Engine, StreamView]:
    engine = sa.create_engine(url)
    t = sa.Table("shipments", sa.MetaData(), sa.Column("_rid", sa.String(20)), sa.Column("id", sa.Integer),
                 sa.Column("state", sa.String(20)), sa.Column("due", sa.Date),
                 sa.Column("due_at", sa.DateTime))
    t.metadata.drop_all(engine)
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{**r, "_rid": str(r["id"])} for r in ROWS])
    return engine, StreamView("shipments", t, SCHEMA)


def overdue(field: str, days: int = 0, op: str = "<") -> SimpleMetric:
    return SimpleMetric.model_validate({
        "name": "overdue", "stream": "shipments", "measure": "count", "window": "all",
        "filter": {"and": [{"field": "state", "op": "!=", "value": "done"},
                           {"field": field, "op": op, "value": {"days_before_as_of": days}}]}})


def want(field: str, days: int, as_of: datetime) -> set[str]:
    day = date(2026, 11, 21) if as_of == AS_OF else as_of.date()  # Berlin's day at AS_OF
    limit = day - timedelta(days=days) if field == "due" else as_of - timedelta(days=days)
    return {str(r["id"]) for r in ROWS if r["state"] != "done" and r[field] < limit}  # type: ignore[operator]


def check(url: str) -> None:
    engine, v = view(url)
    cases = [(f, n, a) for f in ("due", "due_at") for n in (0, 3) for a in (AS_OF, datetime(2026, 11, 15, 9))]
    with engine.connect() as conn:
        for field, days, as_of in cases:
            spec = overdue(field, days)
            d = build_definition("KR-OVERDUE", spec, {"overdue": spec}, {}, Q4)
            expected = want(field, days, as_of)
            assert expected, (field, days, as_of)  # the case is not vacuous
            got = evaluate(conn, {"shipments": v}, [d], as_of)["KR-OVERDUE"]
            assert got.value == len(expected), (field, days, as_of)
            (part,) = contribution_parts({"shipments": v}, d, as_of)  # the drill-down agrees
            assert {r._rid for r in conn.execute(part.select)} == expected, (field, days, as_of)
    engine.dispose()


def test_relative_to_as_of_on_sqlite() -> None:
    check("sqlite://")


def test_relative_to_as_of_on_postgresql() -> None:
    url = os.environ.get("OKRSYNC_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("OKRSYNC_TEST_POSTGRES_URL is not set: no PostgreSQL server for this test "
                    "(.ci/run sets it)")
    check(url)


def test_a_relative_value_needs_a_comparison() -> None:
    with pytest.raises(ValidationError):  # a list of relative values is no value at all
        SimpleMetric.model_validate({"name": "m", "stream": "s", "measure": "count", "filter": {
            "field": "due", "op": "between", "value": [{"days_before_as_of": 1}, {"days_before_as_of": 0}]}})
    with pytest.raises(ValidationError, match="is a point in time"):
        SimpleMetric.model_validate({"name": "m", "stream": "s", "measure": "count", "filter": {
            "field": "due", "op": "contains", "value": {"days_before_as_of": 0}}})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        overdue("due", -1)


def test_a_relative_value_on_a_field_that_is_no_date_is_a_config_error() -> None:
    engine, v = view("sqlite://")
    spec = overdue("state")
    d = build_definition("KR-OVERDUE", spec, {"overdue": spec}, {}, Q4)
    with engine.connect() as conn, pytest.raises(ConfigError, match="compares with a date or datetime field"):
        evaluate(conn, {"shipments": v}, [d], AS_OF)
    engine.dispose()


def test_a_misspelt_relative_value_names_the_file_and_line(tmp_path: Path) -> None:
    project = tmp_path / "okrsync.yaml"
    project.write_text("""version: 1
sources:
  erp: {kind: sql, url: "sqlite:///erp.db"}
streams:
  shipments: {source: erp, table: shipments, primary_key: id}
metrics:
  overdue:
    stream: shipments
    measure: count
    filter: {field: due, op: "<", value: {days_before_asof: 0}}
objectives: []
""")
    with pytest.raises(ConfigError) as err:
        load_project(project)
    assert "okrsync.yaml:10" in str(err.value), str(err.value)
    assert "days_before_as_of" in str(err.value), str(err.value)
