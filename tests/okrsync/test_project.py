"""Loading and validating the project file: every problem names file:line, key path and what is allowed."""

from __future__ import annotations

import shutil
import textwrap
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import pytest

from connectors.base import StreamSpec
from metrics.spec import RatioMetric, SimpleMetric
from okrsync.errors import ConfigError, NotFound
from okrsync.project import Project, Settings, load_project
from okrsync.project_file import load_document
from okrsync.project_problems import ProjectFileError

# Line numbers matter: tests below change one line of this file and expect that line in the message.
BASE = """\
version: 1
sources:
  erp:
    kind: sql
    url: sqlite:///erp.db
streams:
  orders:
    source: erp
    table: orders
    primary_key: id
metrics:
  revenue:
    stream: orders
    measure: sum
    field: total_amount
    time_field: order_date
    dimensions: [region]
objectives:
  - id: O1
    title: Grow
    period: 2026-Q4
    key_results:
      - id: KR1
        title: Revenue
        metric: revenue
        target: 100
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)
    return tmp_path


def write(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def base(*changes: tuple[str, str]) -> Path:
    """okrsync.yaml: BASE with each (old, new) replaced (each old text must occur exactly once)."""
    text = BASE
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return write("okrsync.yaml", text)


def problems(path: str | Path = "okrsync.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_project(path)
    err = info.value
    assert isinstance(err, ProjectFileError), str(err)
    return [str(p) for p in err.problems]


def only_problem(path: str | Path = "okrsync.yaml") -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


# -- a valid project -------------------------------------------------------------------------------

MAIN = """\
version: 1
include: [more/*.yaml]
settings:
  timezone: Europe/Berlin
  fiscal_year_start_month: 4
  default_period: FY2027-Q3
  at_risk_gap: 5%
sources:
  erp:
    kind: sql
    url: sqlite:///erp.db
streams:
  orders:
    source: erp
    table: orders
    primary_key: [id]
    cursor: [write_date, create_date]
    fields: [id, region, country, status, order_date, total_amount]
    deletes: none
    lookback_seconds: 60
    timezone: UTC
  shipments:
    source: erp
    query: SELECT id, late, region, shipped_at FROM shipments
    primary_key: id
metrics:
  revenue:
    stream: orders
    measure: sum
    field: total_amount
    time_field: order_date
    window: {trailing_days: 30}
    filter:
      and:
        - {field: status, op: in, value: [confirmed, shipped]}
        - not: {field: total_amount, op: "<=", value: 0.1}
    dimensions: [region, country]
    unit: EUR
objectives:
  - id: O1
    title: Grow revenue
    period: 2026-Q4
    key_results:
      - id: KR-REV
        title: Revenue
        metric: revenue
        target: 1.2e6
        dimensions: {country: NO}
      - id: KR-REV-2026
        title: Revenue in the year
        metric: revenue
        period: 2026
        target: 5000000
    objectives:
      - id: O1.1
        title: Europe
        key_results:
          - id: KR-EMEA
            title: EMEA revenue
            metric: revenue
            dimensions: {region: EMEA}
            target: 400000
"""

MORE = """\
metrics:
  shipments:
    stream: shipments
    measure: count
    time_field: shipped_at
    dimensions: [region]
  late_shipments:
    stream: shipments
    measure: count
    time_field: shipped_at
    filter: {field: late, op: "=", value: true}
    dimensions: [region, carrier]
  late_rate:
    measure: ratio
    numerator: late_shipments
    denominator: shipments
    unit: percent
objectives:
  - id: O2
    title: Ship on time
    key_results:
      - id: KR-LATE
        title: Late shipments
        metric: late_rate
        baseline: 12%
        target: 5%
        direction: decrease
        dimensions: {region: EMEA}
"""


def test_a_full_project_with_includes_and_nested_objectives(in_tmp: Path) -> None:
    write("okrsync.yaml", MAIN)
    write("more/shipping.yaml", MORE)
    project = load_project("okrsync.yaml")

    assert isinstance(project, Project)
    assert project.path == in_tmp / "okrsync.yaml"
    assert project.base_dir == in_tmp
    assert project.settings == Settings(timezone="Europe/Berlin", fiscal_year_start_month=4,
                                        default_period="FY2027-Q3", at_risk_gap=Decimal("0.05"))
    assert project.sources["erp"].kind == "sql"
    assert project.sources["erp"].options.url == "sqlite:///erp.db"  # type: ignore[attr-defined]
    orders = project.streams["orders"]
    assert isinstance(orders, StreamSpec)
    assert orders.primary_key == ("id",) and orders.cursor == ("write_date", "create_date")
    assert orders.options["table"] == "orders" and orders.lookback_seconds == 60
    assert project.streams["shipments"].options["query"].startswith("SELECT")
    assert isinstance(project.metrics["revenue"], SimpleMetric)
    assert isinstance(project.metrics["late_rate"], RatioMetric)
    assert project.metrics["revenue"].name == "revenue"

    bound = project.key_results()
    assert [(b.spec.id, b.objective_id, b.period.label) for b in bound] == [
        ("KR-REV", "O1", "2026-Q4"),  # the objective's period
        ("KR-REV-2026", "O1", "2026"),  # its own (`period: 2026` is a year, not a number)
        ("KR-EMEA", "O1.1", "2026-Q4"),  # inherited from the parent objective
        ("KR-LATE", "O2", "FY2027-Q3"),  # settings.default_period, fiscal year starting in April
    ]
    assert bound[3].period.start.isoformat() == "2026-10-01"
    assert bound[0].period.timezone == "Europe/Berlin"
    assert bound[0].spec.target == Decimal("1200000")
    assert bound[0].spec.dimensions == {"country": "NO"}  # YAML 1.2 booleans: NO stays Norway
    assert bound[3].spec.baseline == Decimal("0.12")
    assert project.key_result("KR-LATE") == bound[3]
    assert project.streams_of("late_rate") == {"shipments"}
    assert project.streams_of("revenue") == {"orders"}
    assert project.marks.locate(("metrics", "late_rate")) == (in_tmp / "more/shipping.yaml", 13)
    assert project.marks.locate(("objectives", 1, "key_results", 0, "target")) == (
        in_tmp / "more/shipping.yaml", 26)


def test_lookups_name_close_matches(in_tmp: Path) -> None:
    project = load_project(base())
    with pytest.raises(NotFound) as info:
        project.key_result("KR2")
    assert "no key result 'KR2'" in str(info.value) and "did you mean 'KR1'?" in str(info.value)
    with pytest.raises(NotFound):
        project.streams_of("revenu")
    with pytest.raises(NotFound):
        project.connector("crm")


def test_store_url_from_environment_or_sqlite_next_to_the_file(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(base())
    assert project.store_url() == f"sqlite:///{in_tmp}/.okrsync/store.db"
    monkeypatch.setenv("OKRSYNC_STORE_URL", "postgresql+psycopg://okr@db/okr")
    assert project.store_url() == "postgresql+psycopg://okr@db/okr"


def test_connector_is_built_from_the_source_without_connecting(in_tmp: Path) -> None:
    project = load_project(base())
    connector = project.connector("erp")
    try:
        assert connector.kind == "sql"
    finally:
        connector.close()


def test_a_directory_means_its_okrsync_yaml(in_tmp: Path) -> None:
    base()
    assert load_project(in_tmp).path == in_tmp / "okrsync.yaml"


def test_the_template_validates(in_tmp: Path) -> None:
    template = files("okrsync") / "templates" / "okrsync.yaml"
    with template.open("rb") as src, (in_tmp / "okrsync.yaml").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    project = load_project("okrsync.yaml")
    assert project.key_results()
    assert set(project.metrics) >= {"revenue"}


def test_yaml_anchors_and_merge_keys(in_tmp: Path) -> None:
    base(("  orders:\n    source: erp\n    table: orders\n    primary_key: id\n",
          "  orders: &common\n    source: erp\n    table: orders\n    primary_key: id\n"
          "  archive:\n    <<: *common\n    table: orders_archive\n"))
    project = load_project("okrsync.yaml")
    assert project.streams["archive"].options["table"] == "orders_archive"
    assert project.streams["archive"].source == "erp"


# -- one mistake each ------------------------------------------------------------------------------


def test_unknown_key_lists_the_allowed_ones(in_tmp: Path) -> None:
    base(("        target: 100\n", "        target: 100\n        ownr: Ann\n"))
    assert only_problem() == (
        "okrsync.yaml:27: objectives[0].key_results[0].ownr: unknown key 'ownr' (did you mean 'owner'?) "
        "(allowed: baseline, close_after_days, dimensions, direction, id, metric, owner, pace, period, "
        "target, title, unit, weight)"
    )


def test_unknown_stream_key_lists_common_and_connector_keys(in_tmp: Path) -> None:
    base(("    table: orders\n", "    tabel: orders\n"))
    assert only_problem() == (
        "okrsync.yaml:9: streams.orders.tabel: unknown key 'tabel' (did you mean 'table'?) (allowed: "
        "batch_size, checks, "
        "cursor, deletes, fields, lookback_seconds, partitions, primary_key, query, reconcile_every_hours, "
        "schema, sensitive, source, table, timezone)"
    )


def test_misspelt_measure(in_tmp: Path) -> None:
    base(("measure: sum", "measure: summ"))
    assert only_problem() == (
        "okrsync.yaml:14: metrics.revenue.measure: 'summ' is not one of count, count_distinct, sum, avg, "
        "min, max, median, "
        "ratio (did you mean 'sum'?)"
    )


def test_measure_without_its_field(in_tmp: Path) -> None:
    base(("    field: total_amount\n", ""))
    assert only_problem() == (
        "okrsync.yaml:12: metrics.revenue: measure 'sum' needs a 'field' to aggregate (or, for a number "
        "of days, 'days_between: [from, to]')"
    )


def test_missing_required_key(in_tmp: Path) -> None:
    base(("    primary_key: id\n", ""))
    assert only_problem() == "okrsync.yaml:7: streams.orders: missing required key 'primary_key'"


def test_bad_period(in_tmp: Path) -> None:
    base(("period: 2026-Q4", "period: 2026-Q5"))
    found = only_problem()
    assert found.startswith("okrsync.yaml:21: objectives[0].period: '2026-Q5' is not a period")
    assert "quarters are numbered 1 to 4" in found


def test_unknown_stream(in_tmp: Path) -> None:
    base(("stream: orders", "stream: order"))
    assert only_problem() == (
        "okrsync.yaml:13: metrics.revenue.stream: unknown stream 'order' (did you mean 'orders'?) (defined: "
        "orders)"
    )


def test_unknown_metric(in_tmp: Path) -> None:
    base(("metric: revenue", "metric: revenu"))
    assert only_problem() == (
        "okrsync.yaml:25: objectives[0].key_results[0].metric: unknown metric 'revenu' (did you mean "
        "'revenue'?) "
        "(defined: revenue)"
    )


def test_unknown_source_and_kind(in_tmp: Path) -> None:
    base(("    source: erp\n", "    source: epr\n"), ("kind: sql", "kind: postgres"))
    assert problems() == [
        "okrsync.yaml:4: sources.erp.kind: unknown source kind 'postgres' (installed: hr, salesforce, sql)",
        "okrsync.yaml:8: streams.orders.source: unknown source 'epr' (did you mean 'erp'?) (defined: erp)",
    ]


def test_duplicate_ids_across_the_tree(in_tmp: Path) -> None:
    base(("        target: 100\n", "        target: 100\n    objectives:\n      - id: O2\n"
          "        title: Sub\n        key_results:\n"
          "          - {id: KR1, title: Again, metric: revenue, target: 5}\n"
          "  - id: O2\n    title: Other\n"))
    assert problems() == [
        "okrsync.yaml:31: objectives[0].objectives[0].key_results[0].id: duplicate id 'KR1' (first used at "
        "okrsync.yaml:23); objective and key result ids must be unique across the project",
        "okrsync.yaml:32: objectives[1].id: duplicate id 'O2' (first used at okrsync.yaml:28); objective "
        "and key "
        "result ids must be unique across the project",
    ]


def test_duplicate_yaml_key_is_an_error(in_tmp: Path) -> None:
    base(("    field: total_amount\n", "    field: total_amount\n    field: tax_amount\n"))
    assert only_problem() == (
        "okrsync.yaml:16: metrics.revenue.field: duplicate key 'field' (first at line 15)"
    )


def test_yaml_syntax_error_names_line_and_column(in_tmp: Path) -> None:
    write("okrsync.yaml", "version: 1\nsources:\n  erp:\n    kind: sql\n   url: x\n")
    with pytest.raises(ConfigError) as info:
        load_project("okrsync.yaml")
    assert info.value.message.startswith("okrsync.yaml:5:")
    assert "invalid YAML" in info.value.message


def test_yaml_syntax_error_in_flow_sequence(in_tmp: Path) -> None:
    write("okrsync.yaml", "version: 1\ninclude: [a.yaml\nsettings: {}\n")
    with pytest.raises(ConfigError) as info:
        load_project("okrsync.yaml")
    assert info.value.message == "okrsync.yaml:3:9: invalid YAML: expected ',' or ']', but got ':'"
    assert info.value.hint == "while parsing a flow sequence (line 2, column 10)"


def test_include_duplicates_name_both_places(in_tmp: Path) -> None:
    base(("version: 1\n", "version: 1\ninclude: metrics/*.yaml\n"))
    write("metrics/a.yaml", "metrics:\n  revenue:\n    stream: orders\n    measure: count\n")
    assert only_problem() == (
        "metrics/a.yaml:2: metrics.revenue: metric 'revenue' is already defined at okrsync.yaml:13 "
        "(names must be unique across the project file and its includes)"
    )


def test_include_rules(in_tmp: Path) -> None:
    base(("version: 1\n", "version: 1\ninclude: [more/*.yaml, missing.yaml]\n"))
    write("more/a.yaml", "settings:\n  timezone: UTC\n")
    assert problems() == [
        "more/a.yaml:1: settings: an included file may hold only sources, streams, metrics, objectives",
        "okrsync.yaml:2: include[1]: 'missing.yaml' matches no file (globs are relative to .)",
    ]


def test_problems_in_included_files_name_that_file(in_tmp: Path) -> None:
    base(("version: 1\n", "version: 1\ninclude: extra.yaml\n"))
    write("extra.yaml", "objectives:\n  - id: O9\n    title: More\n    period: 2026\n    key_results:\n"
                        "      - {id: KR9, title: x, metric: revenue, target: 1, weight: -1}\n")
    assert only_problem() == (
        "extra.yaml:6: objectives[1].key_results[0].weight: input should be greater than or equal to 0, got "
        "int -1"
    )


def test_password_in_url(in_tmp: Path) -> None:
    base(("url: sqlite:///erp.db", "url: postgresql://erp:s3cret@db/erp"))
    found = only_problem()
    assert found.startswith("okrsync.yaml:3: sources.erp: url may not contain a password")
    assert "s3cret" not in found


def test_direction_and_target_disagree(in_tmp: Path) -> None:
    base(("        target: 100\n", "        target: 100\n        baseline: 200\n"))
    assert only_problem() == (
        "okrsync.yaml:23: objectives[0].key_results[0]: direction 'increase' needs target > baseline "
        "(or set direction: decrease)"
    )


def test_dimension_not_declared_by_the_metric(in_tmp: Path) -> None:
    base(("        target: 100\n", "        target: 100\n        dimensions: {regoin: EMEA}\n"))
    assert only_problem() == (
        "okrsync.yaml:27: objectives[0].key_results[0].dimensions.regoin: metric 'revenue' has no dimension "
        "'regoin' (did you mean 'region'?) (its dimensions: region)"
    )


def test_a_ratio_pins_only_dimensions_both_parts_declare(in_tmp: Path) -> None:
    write("okrsync.yaml", MAIN.replace("dimensions: {region: EMEA}\n", "dimensions: {carrier: X}\n"))
    write("more/shipping.yaml", MORE.replace("{region: EMEA}", "{carrier: DHL}"))
    assert problems() == [
        "more/shipping.yaml:28: objectives[1].key_results[0].dimensions.carrier: metric 'late_rate' has no "
        "dimension 'carrier' (its dimensions: region)",
        "okrsync.yaml:61: objectives[0].objectives[0].key_results[0].dimensions.carrier: metric 'revenue' "
        "has no "
        "dimension 'carrier' (its dimensions: country, region)",
    ]


def test_ratio_parts_must_be_simple_metrics(in_tmp: Path) -> None:
    write("okrsync.yaml", MAIN)
    write("more/shipping.yaml", MORE.replace("denominator: shipments", "denominator: late_rate"))
    assert only_problem() == (
        "more/shipping.yaml:16: metrics.late_rate.denominator: 'late_rate' is a ratio; a ratio's parts must "
        "be "
        "simple metrics"
    )


def test_filter_errors_point_into_the_right_branch(in_tmp: Path) -> None:
    write("okrsync.yaml", MAIN.replace("{field: status, op: in, value: [confirmed, shipped]}",
                                       "{field: status, op: inn, value: [confirmed, shipped]}"))
    write("more/shipping.yaml", MORE.replace("{field: late, op: \"=\", value: true}", "[late]"))
    assert problems() == [
        "more/shipping.yaml:11: metrics.late_shipments.filter: expected a mapping, got a list",
        "okrsync.yaml:35: metrics.revenue.filter.and[0].op: 'inn' is not one of =, !=, <, <=, >, >=, in, "
        "not_in, "
        "is_null, not_null, between, contains, starts_with (did you mean 'in'?)",
    ]


def test_window_and_dimension_value_kinds(in_tmp: Path) -> None:
    base(("    dimensions: [region]\n", "    dimensions: [region]\n    window: {trailing_day: 30}\n"),
         ("        target: 100\n", "        target: 100\n        dimensions: {region: [EMEA]}\n"))
    found = problems()
    assert found[:2] == [
        "okrsync.yaml:18: metrics.revenue.window: missing required key 'trailing_days'",
        "okrsync.yaml:18: metrics.revenue.window.trailing_day: unknown key 'trailing_day' "
        "(did you mean 'trailing_days'?) (allowed: trailing_days)",
    ]
    # one line for the whole union of scalar kinds, not one per kind tried
    assert len(found) == 3
    assert found[2].startswith(
        "okrsync.yaml:28: objectives[0].key_results[0].dimensions.region: expected true or false or "
    )
    assert found[2].endswith(" or text, got a list")


def test_no_period_anywhere(in_tmp: Path) -> None:
    base(("    period: 2026-Q4\n", ""))
    assert only_problem() == (
        "okrsync.yaml:22: objectives[0].key_results[0]: no period: set `period` on this key result or an "
        "enclosing objective, or set settings.default_period"
    )


def test_settings_are_checked(in_tmp: Path) -> None:
    base(("version: 1\n", "version: 1\nsettings:\n  timezone: Europe/Berln\n  fiscal_year_start_month: 13\n"
                          "  default_period: FY2027-Q5\n"))
    assert problems() == [
        "okrsync.yaml:3: settings.timezone: unknown timezone 'Europe/Berln' (did you mean "
        "'Europe/Berlin'?): use "
        "an IANA name like Europe/Berlin",
        "okrsync.yaml:4: settings.fiscal_year_start_month: input should be less than or equal to 12, got "
        "int 13",
        "okrsync.yaml:5: settings.default_period: 'FY2027-Q5' is not a period (quarters are numbered 1 to "
        "4); "
        "write one of: 2026-Q4 (quarter), 2026-H1 (half year), 2026 (year), 2026-11 (month), FY2027-Q1, "
        "FY2027-H2, FY2027 (fiscal quarter, half, year) or 2026-10-01..2026-12-31 (inclusive dates)",
    ]


def test_gaps_must_be_ordered(in_tmp: Path) -> None:
    base(("version: 1\n", "version: 1\nsettings:\n  at_risk_gap: 0.3\n"))
    assert only_problem() == "okrsync.yaml:2: settings: at_risk_gap must not exceed off_track_gap"


def test_top_level_keys_and_version(in_tmp: Path) -> None:
    base(("version: 1\n", "version: 2\nmetric: {}\n"))
    assert problems() == [
        "okrsync.yaml:1: version: version must be 1, got int 2",
        "okrsync.yaml:2: metric: unknown key 'metric' (did you mean 'metrics'?) (allowed: version, include, "
        "settings, sources, streams, metrics, objectives, reconciliations, alerts)",
    ]
    base(("version: 1\n", ""))
    assert only_problem() == (
        "okrsync.yaml:1: missing required key 'version' (start the file with `version: 1`)"
    )


def test_metric_name_is_its_key(in_tmp: Path) -> None:
    base(("    stream: orders\n", "    name: revenue\n    stream: orders\n"))
    assert only_problem() == (
        "okrsync.yaml:13: metrics.revenue.name: unknown key 'name': a metric's name is its key"
    )


def test_text_where_a_number_is_expected_and_numbers_where_text(in_tmp: Path) -> None:
    base(("target: 100", "target: lots"), ("title: Grow", "title: 1.5"))
    assert problems() == [
        "okrsync.yaml:20: objectives[0].title: expected text, got float 1.5 (quote it)",
        "okrsync.yaml:26: objectives[0].key_results[0].target: 'lots' is not a number (write 1200000, 1.2e6 "
        "or "
        "12%)",
    ]


def test_all_problems_are_reported_together(in_tmp: Path) -> None:
    base(("measure: sum", "measure: summ"), ("metric: revenue", "metric: nope"),
         ("kind: sql", "kind: sql\n    port: 1"))
    with pytest.raises(ConfigError) as info:
        load_project("okrsync.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == "the project file has 3 problems:"
    assert [line.split(":")[1] for line in lines[1:]] == ["5", "15", "26"]
    assert info.value.exit_code == 2


# -- the file itself -------------------------------------------------------------------------------


def test_missing_file_suggests_init(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_project("okrsync.yaml")
    assert info.value.message == "no project file at okrsync.yaml"
    assert info.value.hint is not None and "okrsync init" in info.value.hint


def test_top_level_must_be_a_mapping(in_tmp: Path) -> None:
    write("okrsync.yaml", "- version: 1\n")
    with pytest.raises(ConfigError) as info:
        load_project("okrsync.yaml")
    assert info.value.message.startswith("okrsync.yaml:1: the top level must be a mapping of sections")
    assert info.value.message.endswith("not a list")


def test_files_outside_the_working_directory_are_shown_as_given(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    write(elsewhere / "okrsync.yaml", BASE.replace("measure: sum", "measure: summ"))
    assert only_problem(elsewhere / "okrsync.yaml").startswith(f"{elsewhere}/okrsync.yaml:14: ")


def test_load_document_marks_every_key_and_item(in_tmp: Path) -> None:
    doc, marks = load_document(base())
    assert doc["objectives"][0]["key_results"][0]["target"] == 100
    here = in_tmp / "okrsync.yaml"
    assert marks[("metrics", "revenue", "dimensions", 0)] == (here, 17)
    assert marks[("objectives", 0)] == (here, 19)
    assert marks[("objectives", 0, "key_results", 0, "target")] == (here, 26)
    assert marks.locate(("streams", "orders", "cursor")) == (here, 7)


def test_only_true_and_false_are_booleans(in_tmp: Path) -> None:
    write("okrsync.yaml", "a: [yes, no, on, off, y, n, true, False]\n")
    doc, _ = load_document("okrsync.yaml")
    assert doc["a"] == ["yes", "no", "on", "off", "y", "n", True, False]


def test_unsafe_tags_are_refused(in_tmp: Path) -> None:
    write("okrsync.yaml", "version: !!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(ConfigError) as info:
        load_document("okrsync.yaml")
    assert "unsupported YAML tag" in str(info.value)
    write("okrsync.yaml", "version: !!python/name:os.system\n")
    with pytest.raises(ConfigError, match=r"okrsync.yaml:1:10: invalid YAML"):
        load_document("okrsync.yaml")


def test_a_typo_in_a_required_key_is_named_with_a_guess(in_tmp: Path) -> None:
    base(("measure: sum", "measur: sum"))
    assert problems() == [
        "okrsync.yaml:12: metrics.revenue: missing required key 'measure' (one of count, count_distinct, "
        "sum, avg, min, max, median, ratio)",
        "okrsync.yaml:14: metrics.revenue.measur: unknown key 'measur' (did you mean 'measure'?) (allowed: "
        "checks, days_between, denominator, description, dimensions, field, filter, measure, numerator, "
        "stream, time_field, unit, until_field, window)",
    ]
    base(("    kind: sql\n", "    knd: sql\n"))
    found = problems()
    assert found[1] == "okrsync.yaml:4: sources.erp.knd: unknown key 'knd' (did you mean 'kind'?)", (
        found)
    base(("    source: erp\n", "    sourc: erp\n"))
    found = problems()
    assert "okrsync.yaml:8: streams.orders.sourc: unknown key 'sourc' (did you mean 'source'?)" in found, (
        found)


def test_a_metric_on_a_field_the_stream_does_not_keep(in_tmp: Path) -> None:
    base(("    primary_key: id\n", "    primary_key: id\n    fields: [total_amount, order_date, region]\n"),
         ("    dimensions: [region]\n",
          "    dimensions: [regoin]\n    filter: {field: state, op: '=', value: x}\n"))
    assert problems() == [
        "okrsync.yaml:18: metrics.revenue.dimensions: stream 'orders' does not keep field 'regoin' (did you "
        "mean 'region'?) (its fields: id, total_amount, order_date, region; add it to streams.orders.fields)",
        "okrsync.yaml:19: metrics.revenue.filter: stream 'orders' does not keep field 'state' "
        "(its fields: id, total_amount, order_date, region; add it to streams.orders.fields)",
    ]


def test_a_ratio_refuses_a_check_on_the_stream_data_naming_its_line(in_tmp: Path) -> None:
    write("okrsync.yaml", MAIN)
    write("more/shipping.yaml", MORE.replace(
        "    unit: percent\n",
        "    unit: percent\n    checks:\n      - expect_column_values_to_not_be_null: {column: late}\n"))
    found = only_problem()
    assert found.startswith("more/shipping.yaml:18: metrics.late_rate.checks: ")
    assert ("'expect_column_values_to_not_be_null' checks data, so it belongs under the stream's `checks`"
            in found)


# -- measures: median and count_distinct ---------------------------------------------------------------

@pytest.mark.parametrize(("measure", "field"), [("median", "total_amount"), ("count_distinct", "customer")])
def test_median_and_count_distinct_are_measures(in_tmp: Path, measure: str, field: str) -> None:
    base(("measure: sum\n    field: total_amount", f"measure: {measure}\n    field: {field}"))
    metric = load_project("okrsync.yaml").metrics["revenue"]
    assert isinstance(metric, SimpleMetric) and metric.measure == measure and metric.field == field


@pytest.mark.parametrize("measure", ["median", "count_distinct"])
def test_median_and_count_distinct_need_their_field(in_tmp: Path, measure: str) -> None:
    base(("measure: sum\n    field: total_amount\n", f"measure: {measure}\n"))
    assert only_problem() == (
        f"okrsync.yaml:12: metrics.revenue: measure '{measure}' needs a 'field' to aggregate (or, for a "
        "number of days, 'days_between: [from, to]')"
    )


def test_a_median_takes_days_between_a_distinct_count_does_not(in_tmp: Path) -> None:
    days = "    days_between: [order_date, shipped_date]\n"
    base(("measure: sum\n    field: total_amount\n", "measure: median\n" + days))
    metric = load_project("okrsync.yaml").metrics["revenue"]
    assert isinstance(metric, SimpleMetric) and metric.days_between == ("order_date", "shipped_date")
    base(("measure: sum\n    field: total_amount\n", "measure: count_distinct\n" + days))
    assert only_problem() == (
        "okrsync.yaml:12: metrics.revenue: days_between is a number of days to aggregate: it needs measure "
        "sum, avg, min, max, median, not 'count_distinct'"
    )


def test_a_sensitive_field_may_be_counted_distinct_but_not_take_a_median(in_tmp: Path) -> None:
    sealed = ("    primary_key: id\n", "    primary_key: id\n    sensitive: [customer]\n")
    base(sealed, ("measure: sum\n    field: total_amount", "measure: count_distinct\n    field: customer"))
    assert load_project("okrsync.yaml").metrics["revenue"].measure == "count_distinct"
    base(sealed, ("measure: sum\n    field: total_amount", "measure: median\n    field: customer"))
    assert only_problem() == (
        "okrsync.yaml:16: metrics.revenue.field: 'customer' is sensitive (stored encrypted): only count and "
        "count_distinct may use it"
    )
