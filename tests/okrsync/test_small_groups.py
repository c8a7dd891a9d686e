"""Which values are small groups (okrsync.small_groups), on a project file alone: personal streams, n
against settings.min_group_size, and the roles that see them. The values are built here, not computed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from okr_store.queries import StoredValue
from okrsync.project import Project, load_project
from okrsync.small_groups import personal_streams, small_groups

PROJECT = """\
version: 1
settings: {default_period: 2026-Q4}
sources:
  erp: {kind: sql, url: "sqlite:///erp.db"}
  hr: {kind: hr, system: files, folder: exports, columns: {id: integer, department: string}}
streams:
  orders: {source: erp, table: orders, primary_key: id}
  deals: {source: erp, table: deals, primary_key: id, sensitive: [owner]}
  staff: {source: hr, primary_key: id}
metrics:
  orders: {stream: orders, measure: count}
objectives:
  - id: O
    title: O
    key_results:
      - {id: KR, title: KR, metric: orders, target: 10}
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "okrsync.yaml").write_text(PROJECT)
    return load_project(tmp_path / "okrsync.yaml")


def value(stream: str, n: int) -> StoredValue:
    at = datetime(2026, 11, 1)
    progress = Decimal(n) / 10
    return StoredValue(1, "KR", Decimal(n), None, n, Decimal(0), Decimal(10), progress, progress,
                       Decimal("0.3"), "on_track", at, at, "h", {stream: 1}, "run", None)


def test_personal_streams_have_sensitive_fields_or_come_from_an_hr_source(project: Project) -> None:
    assert personal_streams(project) == {"deals", "staff"}  # staff lists no sensitive field: hr holds people


@pytest.mark.parametrize(
    ("stream", "n", "withheld"),
    [
        ("staff", 1, True),
        ("staff", 4, True),
        ("staff", 5, False),  # not below 5
        ("staff", 0, False),  # about nobody
        ("deals", 2, True),
        ("orders", 2, False),  # no personal data
        ("gone", 2, True),  # a stream the project no longer names: fail closed
    ],
)
def test_a_value_is_withheld_below_the_group_size_from_roles_without_sensitive(
    project: Project, stream: str, n: int, withheld: bool
) -> None:
    roles = project.settings.roles
    v = value(stream, n)
    seen = small_groups(project, roles["leadership"]).value(v)
    if withheld:
        assert (seen.value, seen.progress, seen.progress_raw, seen.records) == (None, None, None, 0)
        assert (seen.status, seen.reason) == ("suppressed", "suppressed (n < 5)")
    else:
        assert seen == v
    for role in ("viewer", "admin"):
        assert small_groups(project, roles[role]).value(v) == seen
    for role in ("hr", "owner"):
        assert small_groups(project, roles[role]).value(v) == v
