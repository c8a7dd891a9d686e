"""The example API connector of docs/connectors.md (docs/examples/helpdesk_connector.py), installed as a
plugin through its entry point, keeps the connector contract against a loopback helpdesk API and feeds a
key result: the guide cannot rot."""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.base import SourceConnector, StreamSpec
from connectors.registry import connector_kind
from connectors.testing import ContractSource, Key, contract_tests
from flows import compute, pipeline
from okr_store.store import Store
from okrsync.project import load_project
from tests.connectors.helpdesk_api import HelpdeskApi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api() -> Iterator[HelpdeskApi]:
    server = HelpdeskApi().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    """docs/examples/helpdesk_connector.py installed as a distribution with an entry point."""
    site = tmp_path / "site"
    (site / "okrsync_helpdesk-0.1.dist-info").mkdir(parents=True)
    shutil.copy(ROOT / "docs/examples/helpdesk_connector.py", site / "helpdesk_connector.py")
    info = site / "okrsync_helpdesk-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: okrsync-helpdesk\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[okrsync.connectors]\nhelpdesk = helpdesk_connector:HelpdeskConnector\n")
    sys.path.insert(0, str(site))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("helpdesk_connector", None)


class HelpdeskSource(ContractSource):
    stream = StreamSpec(name="tickets", source="desk", primary_key="id", cursor="updated_at")

    def __init__(self, api: HelpdeskApi, monkeypatch: pytest.MonkeyPatch, base_dir: Path) -> None:
        self.api, self.base_dir, self.wrong = api, base_dir, f"canary-{secrets.token_hex(8)}"
        monkeypatch.setenv("HELPDESK_TOKEN", api.token)
        monkeypatch.setenv("HELPDESK_WRONG_TOKEN", self.wrong)

    def connector(self, token_env: str = "HELPDESK_TOKEN") -> SourceConnector:
        options = {"base_url": self.api.url, "token_env": token_env, "retries": 2}
        return connector_kind("helpdesk")("desk", options, self.base_dir)

    def secrets(self) -> Sequence[str]:
        return (self.api.token, self.wrong)

    def touch(self, keys: Sequence[Key], at: datetime) -> None:
        for (ticket_id,) in keys:
            self.api.touch(ticket_id, at.replace(tzinfo=UTC))

    def delete(self, key: Key, at: datetime) -> None:
        self.api.delete(key[0], at.replace(tzinfo=UTC))

    def fail_next_read(self, after_rows: int) -> None:
        self.api.fail("tickets", 503, page=2, retry_after=0)  # page 2 of 3 never comes

    def mend(self) -> None:
        self.api.faults.clear()

    def refusing_connector(self) -> SourceConnector:
        return self.connector("HELPDESK_WRONG_TOKEN")


@pytest.fixture
def contract_source(api: HelpdeskApi, plugin: Path, monkeypatch: pytest.MonkeyPatch) -> HelpdeskSource:
    return HelpdeskSource(api, monkeypatch, plugin)


TestContract = contract_tests()


PROJECT = """\
version: 1
settings: {default_period: 2026-Q4}
sources:
  desk: {kind: helpdesk, base_url: "URL", token_env: HELPDESK_TOKEN}
streams:
  tickets: {source: desk, primary_key: id, cursor: updated_at, deletes: tombstones}
metrics:
  hours_solved: {stream: tickets, measure: sum, field: hours, time_field: updated_at,
                 filter: {field: status, op: "=", value: solved}}
objectives:
  - id: O1
    title: Support
    key_results: [{id: KR-HOURS, title: Hours on solved tickets, metric: hours_solved, target: 100}]
"""


def test_the_plugin_feeds_a_key_result(api: HelpdeskApi, plugin: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPDESK_TOKEN", api.token)
    (plugin / "okrsync.yaml").write_text(PROJECT.replace("URL", api.url))
    project = load_project(plugin / "okrsync.yaml")
    store = Store(project.store_url())
    run_id = store.start_run(datetime(2026, 11, 20), None)
    compute.register_okrs(project, store)
    connector = project.connector("desk")
    assert pipeline.sync_stream(project, store, connector, run_id, "tickets").inserted == len(api.records)
    solved = [t for t in api.records.values() if t.status == "solved"]
    gone = solved[0]
    api.delete(gone.id, datetime(2026, 10, 2, tzinfo=UTC))  # a tombstone the next sync reads
    assert pipeline.sync_stream(project, store, connector, run_id, "tickets").deleted == 1
    values, held = compute.compute_values(project, store, run_id, None, datetime(2026, 11, 20), {})
    want = sum(Decimal(repr(t.hours)) for t in solved[1:] if t.hours is not None)
    assert held == {} and values["KR-HOURS"].value == want


def test_the_guide_quotes_the_example_as_it_is() -> None:
    """Every Python excerpt of docs/connectors.md's walk-through is in the example file, verbatim."""
    guide = (ROOT / "docs/connectors.md").read_text()
    example = (ROOT / "docs/examples/helpdesk_connector.py").read_text()
    blocks = guide.split("```")[1::2]
    excerpts = [block.split("\n", 1)[1] for block in blocks if block.startswith("python\n")]
    quoted = [e for e in excerpts if "..." not in e]  # the contract sketch abridges a test file
    assert len(quoted) >= 4
    for excerpt in quoted:
        assert excerpt.rstrip("\n") in example, f"the guide quotes code the example lacks:\n{excerpt}"
