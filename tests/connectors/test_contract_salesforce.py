"""The connector contract (connectors.testing) on the Salesforce connector, against the loopback sandbox."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import SourceConnector, StreamSpec
from connectors.salesforce import SalesforceConnector
from connectors.testing import ContractSource, Key, contract_tests
from okrsync.sandboxes.salesforce import SalesforceSandbox


class SalesforceSource(ContractSource):
    """300 opportunities, read over REST in pages of 200 (a fault on page 2 fails a read midway)."""

    stream = StreamSpec(name="opportunities", source="crm", primary_key="Id", cursor="SystemModstamp",
                        fields=("Amount", "StageName"), options={"object": "Opportunity"})

    def __init__(self, box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.box, self.wrong = box, f"canary-{secrets.token_hex(8)}"
        monkeypatch.setenv("SF_PASSWORD", box.credentials.password)
        monkeypatch.setenv("SF_TOKEN", box.credentials.security_token)
        monkeypatch.setenv("SF_WRONG_PASSWORD", self.wrong)

    def connector(self, **options: Any) -> SourceConnector:
        c = self.box.credentials
        base = {"auth": "password", "username": c.username, "password_env": "SF_PASSWORD",
                "security_token_env": "SF_TOKEN", "login_url": self.box.instance_url,
                "ca_bundle": str(self.box.cert_path), "page_size": 200, "retry_backoff_seconds": 0}
        return SalesforceConnector("crm", base | options, Path.cwd(), sleep=lambda s: None)

    def secrets(self) -> Sequence[str]:
        c = self.box.credentials
        return (c.password, c.security_token, self.wrong)

    def touch(self, keys: Sequence[Key], at: datetime) -> None:
        self.box.org.clock.set(at.replace(tzinfo=UTC))
        for (record_id,) in keys:
            self.box.org.update("Opportunity", record_id)  # SystemModstamp moves to the clock

    def delete(self, key: Key, at: datetime) -> None:
        self.box.org.clock.set(at.replace(tzinfo=UTC))
        self.box.org.delete("Opportunity", key[0])

    def fail_next_read(self, after_rows: int) -> None:
        self.box.faults.http_error_on_query_page(2, always=True)

    def mend(self) -> None:
        self.box.faults.clear()

    def refusing_connector(self) -> SourceConnector:
        return self.connector(password_env="SF_WRONG_PASSWORD")


@pytest.fixture
def contract_source(make_salesforce_sandbox: Callable[..., SalesforceSandbox],
                    monkeypatch: pytest.MonkeyPatch) -> SalesforceSource:
    return SalesforceSource(make_salesforce_sandbox(opportunities=300, seed=5), monkeypatch)


TestContract = contract_tests()
