"""``days_between: [from, to]``: the days from one date field to another as the value a metric aggregates.

Values are checked against plain Python over the same rows, on SQLite and (when configured) PostgreSQL;
contributions are each record's days and average to the value; bad declarations name the file and line.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random

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

SCHEMA = StreamSchema((Field("id", FieldType.INTEGER), Field("dept", FieldType.STRING),
                       Field("applied", FieldType.DATE), Field("hired", FieldType.DATE),
                       Field("stamp", FieldType.DATETIME)))
Q3 = parse_period("2026-Q3", timezone="Europe/Berlin")
AS_OF = datetime(2026, 10, 15, 12, 0)
PLACES = Decimal("1e-12")


def rows(n: int = 120) -> list[dict[str, object]]:
    rng = Random(5)
    out: list[dict[str, object]] = []
    for i in range(1, n + 1):
        hired = date(2026, 6, 1) + timedelta(days=rng.randrange(150))
        applied = hired - timedelta(days=rng.randrange(90))
        out.append({"id": i, "dept": rng.choice(["Eng", "Sales"]), "applied": applied,
                    "hired": None if rng.random() < 0.2 else hired, "stamp": datetime(2026, 7, 1)})
    out.append({"id": n + 1, "dept": "Eng", "applied": None, "hired": date(2026, 8, 1), "stamp": None})
    # a hire dated before the application (a data-entry slip): a negative span, kept as it is
    out.append({"id": n + 2, "dept": "Eng", "applied": date(2026, 8, 9), "hired": date(2026, 8, 6),
                "stamp": None})
    return out


def view(url: str, data: list[dict[str, object]]) -> tuple[sa.Engine, StreamView]:
    engine = sa.create_engine(url)
    t = sa.Table("apps", sa.MetaData(), sa.Column("_rid", sa.String(20)), sa.Column("id", sa.Integer),
                 sa.Column("dept", sa.String(20)), sa.Column("applied", sa.Date), sa.Column("hired", sa.Date),
                 sa.Column("stamp", sa.DateTime))
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{**r, "_rid": str(r["id"])} for r in data])
    return engine, StreamView("apps", t, SCHEMA)


def metric(measure: str = "avg", **kw: object) -> SimpleMetric:
    return SimpleMetric.model_validate({"name": "time_to_hire", "stream": "apps", "measure": measure,
                                        "days_between": ["applied", "hired"], "time_field": "hired",
                                        "dimensions": ["dept"], **kw})


def in_q3(data: list[dict[str, object]], dept: str | None = None) -> dict[str, int]:
    return {str(r["id"]): (r["hired"] - r["applied"]).days  # type: ignore[operator]
            for r in data if r["hired"] is not None and r["applied"] is not None
            and date(2026, 7, 1) <= r["hired"] <= date(2026, 9, 30)  # type: ignore[operator]
            and (dept is None or r["dept"] == dept)}


def check_store(url: str) -> None:
    data = rows()
    engine, v = view(url, data)
    metrics = {m: metric(m) for m in ("avg", "sum", "min", "max")}
    defs = [build_definition(f"KR-{m}-{d or 'all'}", spec, metrics, {"dept": d} if d else {}, Q3)
            for m, spec in metrics.items() for d in (None, "Eng")]
    with engine.connect() as conn:
        got = evaluate(conn, {"apps": v}, defs, AS_OF)
        for d in defs:
            days = in_q3(data, d.dimensions.get("dept"))  # type: ignore[arg-type]
            want = {"avg": (Decimal(sum(days.values())) / len(days)).quantize(PLACES),
                    "sum": Decimal(sum(days.values())), "min": Decimal(min(days.values())),
                    "max": Decimal(max(days.values()))}[d.kr_id.split("-")[1]]
            assert got[d.kr_id].value == want, d.kr_id
            assert got[d.kr_id].records == len(days)
            (part,) = contribution_parts({"apps": v}, d, AS_OF)
            contributions = {r._rid: r.contribution for r in conn.execute(part.select)}
            assert {k: int(c) for k, c in contributions.items()} == days
            if d.kr_id.startswith("KR-avg"):
                assert (Decimal(sum(contributions.values())) / len(contributions)).quantize(PLACES) == want
    assert min(in_q3(data).values()) < 0  # a negative span is kept, not dropped
    engine.dispose()


def test_days_between_on_sqlite() -> None:
    check_store("sqlite://")


def test_days_between_on_postgresql(pg_url: str) -> None:
    check_store(pg_url)


def test_no_hire_in_the_period_gives_no_value() -> None:
    engine, v = view("sqlite://", [{"id": 1, "dept": "Eng", "applied": date(2026, 1, 2),
                                    "hired": date(2026, 2, 1), "stamp": None}])
    d = build_definition("KR", metric(), {}, {}, Q3)
    with engine.connect() as conn:
        got = evaluate(conn, {"apps": v}, [d], AS_OF)["KR"]
    assert got.value is None and got.reason is not None and "no records" in got.reason


@pytest.mark.parametrize(("pair", "why"), [
    (["applied", "dept"], "the to field 'dept' is a string field; days_between counts the days between"),
    (["stamp", "hired"], "the from field 'stamp' is a datetime field"),
    (["applied", "hiredd"], "the to field 'hiredd' is not a field of the stream"),
])
def test_a_field_that_is_not_a_date_is_refused_naming_it(pair: list[str], why: str) -> None:
    engine, v = view("sqlite://", rows(3))
    d = build_definition("KR", metric(days_between=pair), {}, {}, Q3)
    with engine.connect() as conn, pytest.raises(ConfigError) as err:
        evaluate(conn, {"apps": v}, [d], AS_OF)
    assert why in err.value.message and "metric 'time_to_hire'" in err.value.message


@pytest.mark.parametrize(("changes", "why"), [
    ({"field": "applied"}, "either 'field' or 'days_between'"),
    ({"measure": "count"}, "needs measure sum, avg, min, max"),
    ({"days_between": ["applied", "applied"]}, "two different date fields"),
    ({"days_between": ["applied"]}, "Field required"),
])
def test_bad_declarations_are_refused(changes: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        metric(**changes)


def test_the_definition_hash_of_other_metrics_is_unchanged() -> None:
    plain = SimpleMetric(name="n", stream="s", measure="count")
    assert "days_between" not in plain.model_dump()


def test_a_bad_declaration_in_the_project_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "okrsync.yaml"
    path.write_text("""version: 1
sources:
  people: {kind: hr, system: files, folder: x, columns: {id: integer, applied: date, hired: date}}
streams:
  apps: {source: people, primary_key: id}
metrics:
  time_to_hire:
    stream: apps
    measure: count
    days_between: [applied, hired]
objectives:
  - id: O
    title: Hire faster
    period: 2026-Q3
    key_results:
      - {id: KR, title: Time to hire, metric: time_to_hire, baseline: 40, target: 30, direction: decrease}
""", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_project(path)
    text = str(err.value)
    assert "okrsync.yaml:7" in text and "needs measure sum, avg, min, max" in text, text
