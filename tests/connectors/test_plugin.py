"""A connector from outside the project registers through the entry point alone and feeds a KR."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from flows import pipeline
from okr_store.store import Store
from okrsync.project import load_project

ROOT = Path(__file__).resolve().parents[2]

PROJECT = """\
version: 1
settings: {default_period: 2026-Q4}
sources:
  exports: {kind: csvfile, folder: exports}
streams:
  deals:
    source: exports
    file: deals.csv
    columns: {id: integer, amount: "decimal:2", closed_on: date, stage: string}
    primary_key: id
    cursor: closed_on
metrics:
  won: {stream: deals, measure: sum, field: amount, time_field: closed_on,
        filter: {field: stage, op: "=", value: won}}
objectives:
  - id: O1
    title: Sell
    key_results: [{id: KR-WON, title: Won deals, metric: won, target: 1000}]
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    """Install docs/examples/csvfile_connector.py as a distribution with an entry point."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(ROOT / "docs/examples/csvfile_connector.py", site / "csvfile_connector.py")
    info = site / "okrsync_csvfile-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: okrsync-csvfile\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[okrsync.connectors]\ncsvfile = csvfile_connector:CsvFileConnector\n")
    sys.path.insert(0, str(site))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("csvfile_connector", None)


def test_plugin_connector_feeds_a_key_result(plugin: Path) -> None:
    (plugin / "exports").mkdir()
    (plugin / "exports/deals.csv").write_text(
        "id,amount,closed_on,stage\n1,100.10,2026-10-02,won\n2,50.00,2026-10-03,lost\n3,0.05,2026-11-01,won\n")
    (plugin / "okrsync.yaml").write_text(PROJECT)
    project = load_project(plugin / "okrsync.yaml")
    store = Store(project.store_url())
    run_id = store.start_run(datetime(2026, 11, 20), None)
    pipeline.register_okrs(project, store)
    connector = project.connector("exports")
    counts = pipeline.sync_stream(project, store, connector, run_id, "deals")
    assert counts.inserted == 3
    values, held = pipeline.compute_values(project, store, run_id, None, datetime(2026, 11, 20), {})
    assert held == {} and values["KR-WON"].value == Decimal("100.15")
    # the watermark makes the second read empty
    assert pipeline.sync_stream(project, store, connector, run_id, "deals").rows_read == 0
