"""A connector from outside the project registers through the entry point alone, feeds a KR and keeps the
connector contract; one written against the bare Connector protocol (before SourceConnector) still runs,
its optional members read once into typed capabilities."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from pydantic import BaseModel

from connectors.base import SourceConnector, StreamSpec, Watermark
from connectors.registry import connector_kind
from connectors.testing import ContractSource, Key, contract_tests
from flows import compute, pipeline
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


def installed(tmp_path: Path, module: str, entry: str, source: Path | None = None) -> Iterator[Path]:
    """``module`` (a copy of ``source``, or a module already importable) as a distribution whose
    ``okrsync.connectors`` entry point ``entry`` names it."""
    site = tmp_path / "site"
    info = site / f"okrsync_{module}-0.1.dist-info"
    info.mkdir(parents=True)
    if source is not None:
        shutil.copy(source, site / f"{module}.py")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: okrsync-{module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[okrsync.connectors]\n{entry}\n")
    sys.path.insert(0, str(site))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(site))
        sys.modules.pop(module, None)


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    """Install docs/examples/csvfile_connector.py as a distribution with an entry point."""
    yield from installed(tmp_path, "csvfile_connector", "csvfile = csvfile_connector:CsvFileConnector",
                         ROOT / "docs/examples/csvfile_connector.py")


def test_plugin_connector_feeds_a_key_result(plugin: Path) -> None:
    (plugin / "exports").mkdir()
    (plugin / "exports/deals.csv").write_text(
        "id,amount,closed_on,stage\n1,100.10,2026-10-02,won\n2,50.00,2026-10-03,lost\n3,0.05,2026-11-01,won\n")
    (plugin / "okrsync.yaml").write_text(PROJECT)
    project = load_project(plugin / "okrsync.yaml")
    store = Store(project.store_url())
    run_id = store.start_run(datetime(2026, 11, 20), None)
    compute.register_okrs(project, store)
    connector = project.connector("exports")
    counts = pipeline.sync_stream(project, store, connector, run_id, "deals")
    assert counts.inserted == 3
    values, held = compute.compute_values(project, store, run_id, None, datetime(2026, 11, 20), {})
    assert held == {} and values["KR-WON"].value == Decimal("100.15")
    # the watermark makes the second read empty
    assert pipeline.sync_stream(project, store, connector, run_id, "deals").rows_read == 0


# -- the contract, on the CSV example -----------------------------------------------------------------


class CsvSource(ContractSource):
    """``tickets.csv``: 30 rows, two to a minute (ties), ``updated_at`` the cursor."""

    stream = StreamSpec(name="tickets", source="exports", primary_key="id", cursor="updated_at",
                        options={"file": "tickets.csv", "columns": {"id": "integer", "hours": "decimal:2",
                                                                     "updated_at": "datetime"}})

    def __init__(self, base_dir: Path) -> None:
        self.base_dir, self.folder = base_dir, base_dir / "exports"
        self.folder.mkdir()
        self.rows = {i: (f"{i / 4:.2f}", f"2026-10-01T09:{i // 2:02d}:00") for i in range(1, 31)}
        self._write()

    def _write(self, name: str = "tickets.csv") -> None:
        lines = [f"{i},{hours},{at}" for i, (hours, at) in sorted(self.rows.items(), key=lambda r: -r[0])]
        (self.folder / name).write_text("id,hours,updated_at\n" + "\n".join(lines) + "\n")

    def connector(self) -> SourceConnector:
        return connector_kind("csvfile")("exports", {"folder": "exports"}, self.base_dir)

    def touch(self, keys: Sequence[Key], at: datetime) -> None:
        for (i,) in keys:
            self.rows[i] = (self.rows[i][0], at.isoformat())
        self._write()

    def fail_next_read(self, after_rows: int) -> None:
        (self.folder / "tickets.csv").rename(self.folder / "away.csv")

    def mend(self) -> None:
        if (self.folder / "away.csv").exists():
            (self.folder / "away.csv").rename(self.folder / "tickets.csv")


@pytest.fixture
def contract_source(plugin: Path) -> CsvSource:
    return CsvSource(plugin)


TestCsvContract = contract_tests()


# -- a plugin written against the bare Connector protocol ---------------------------------------------


class MemoryOptions(BaseModel):
    rows: int = 20


class MemoryConnector:
    """Rows in memory, written as plugins were before SourceConnector: no base class, optional members
    found by name (tombstones, an API-call count, a default lookback)."""

    kind: ClassVar[str] = "memory"
    Options: ClassVar[type[BaseModel]] = MemoryOptions
    StreamOptions: ClassVar[type[BaseModel]] = MemoryOptions
    default_lookback_seconds: ClassVar[int] = 60

    def __init__(self, name: str, options: Any, base_dir: Path) -> None:
        self.calls = 0
        self.frame = pd.DataFrame({"id": pd.Series(range(1, 21), dtype="Int64"),
                                   "at": pd.Series([datetime(2026, 10, 1, 9, i // 3) for i in range(20)],
                                                   dtype="datetime64[us]")})

    @property
    def api_calls(self) -> int:
        return self.calls

    def check(self) -> None: ...

    def schema(self, stream: StreamSpec) -> Any:
        from okrsync.schema import Field, FieldType, StreamSchema

        return StreamSchema((Field("id", FieldType.INTEGER), Field("at", FieldType.DATETIME)))

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        self.calls += 1
        df = self.frame
        if since is not None:
            after = (df["at"] > since.cursor) | ((df["at"] == since.cursor) & (df["id"] > since.key[0]))
            df = df[after]
        yield df.reset_index(drop=True)

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        yield self.frame[["id"]]

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        yield self.frame.iloc[:0][["id"]]

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        return None

    def close(self) -> None: ...


def test_a_bare_protocol_plugin_is_wrapped_with_its_capabilities(tmp_path: Path) -> None:
    for _ in installed(tmp_path, "memory_plugin", f"memory = {__name__}:MemoryConnector"):
        kind = connector_kind("memory")
        assert issubclass(kind, SourceConnector) and kind.kind == "memory" and kind.Options is MemoryOptions
        conn = kind("mem", {}, tmp_path)
        assert conn.reports_deletions and not conn.supports_partitions and conn.default_lookback_seconds == 60
        stream = StreamSpec(name="s", source="mem", primary_key="id", cursor="at")
        assert conn.api_calls == 0 and len(pd.concat(conn.read(stream, None))) == 20 and conn.api_calls == 1
        assert conn.horizon(stream) is None and not conn.needs_full_refresh(stream)
        assert list(conn.excluded(stream, None)) == [] and list(conn.deleted(stream, None))[0].empty
