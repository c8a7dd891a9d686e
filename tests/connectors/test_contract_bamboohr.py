"""The connector contract (connectors.testing) on the hr connector's BambooHR system, against its sandbox."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import SourceConnector, StreamSpec
from connectors.hr import HrConnector
from connectors.testing import ContractSource, Key, contract_tests
from okrsync.sandboxes.bamboohr import BambooHrSandbox

KEY_ENV, WRONG_ENV = "OKRSYNC_TEST_BAMBOOHR_KEY", "OKRSYNC_TEST_BAMBOOHR_WRONG_KEY"


class BambooHrSource(ContractSource):
    """120 employees; a read fails while the custom report answers 503."""

    stream = StreamSpec(name="employees", source="people", primary_key="id", cursor="lastChanged",
                        fields=("department", "status", "payRate"), options={"report": "employees"})

    def __init__(self, box: BambooHrSandbox, monkeypatch: pytest.MonkeyPatch, base_dir: Path) -> None:
        self.box, self.base_dir, self.wrong = box, base_dir, f"canary{secrets.token_hex(8)}"
        monkeypatch.setenv(KEY_ENV, box.api_key)
        monkeypatch.setenv(WRONG_ENV, self.wrong)

    def connector(self, key_env: str = KEY_ENV) -> SourceConnector:
        options = self.box.source_options(api_key_env=key_env, retry_backoff_seconds=0)
        return HrConnector("people", options, self.base_dir, sleep=lambda s: None)

    def secrets(self) -> Sequence[str]:
        return (self.box.api_key, self.wrong)

    def touch(self, keys: Sequence[Key], at: datetime) -> None:
        for (emp_id,) in keys:
            self.box.org.change(emp_id, at=at.replace(tzinfo=UTC))

    def delete(self, key: Key, at: datetime) -> None:
        self.box.org.delete(key[0], at=at.replace(tzinfo=UTC))

    def fail_next_read(self, after_rows: int) -> None:
        self.box.faults.unavailable(times=None, path_contains="reports/custom")

    def mend(self) -> None:
        self.box.faults.clear()

    def refusing_connector(self) -> SourceConnector:
        return self.connector(key_env=WRONG_ENV)


@pytest.fixture
def contract_source(make_bamboohr_sandbox: Callable[..., BambooHrSandbox], monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> BambooHrSource:
    return BambooHrSource(make_bamboohr_sandbox(employees=120, seed=5), monkeypatch, tmp_path)


TestContract = contract_tests()
