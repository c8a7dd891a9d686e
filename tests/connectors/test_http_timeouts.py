"""HTTP sources give every request a finite timeout: a stalled server ends in a transient error.

simple-salesforce sends its requests without a timeout; the kit's session (connectors/kit/http.py), which
Salesforce and BambooHR both send through, supplies ``timeout_seconds`` (login, REST and Bulk alike). No
test asserts elapsed times.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.base import StreamSpec
from connectors.salesforce import SalesforceConnector
from okrsync.errors import SourceError
from okrsync.sandboxes.salesforce import SalesforceSandbox


def salesforce(box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch,
               **options: Any) -> SalesforceConnector:
    c = box.credentials
    monkeypatch.setenv("SF_PASSWORD", c.password)
    monkeypatch.setenv("SF_TOKEN", c.security_token)
    base = {"auth": "password", "username": c.username, "password_env": "SF_PASSWORD",
            "security_token_env": "SF_TOKEN", "login_url": box.instance_url, "ca_bundle": str(box.cert_path),
            "retries": 0, "retry_backoff_seconds": 0}
    return SalesforceConnector("crm", base | options, Path.cwd(), sleep=lambda s: None)


OPPORTUNITIES = StreamSpec(name="opportunities", source="crm", primary_key="Id", cursor="SystemModstamp",
                           fields=("Amount",), options={"object": "Opportunity"})


def test_a_stalled_salesforce_login_times_out(make_salesforce_sandbox: Callable[..., SalesforceSandbox],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    box = make_salesforce_sandbox(opportunities=10, seed=3)
    box.faults.slow(2000, path_contains="/services/Soap/")
    conn = salesforce(box, monkeypatch, timeout_seconds=0.3)
    try:
        with pytest.raises(SourceError) as err:
            conn.check()
    finally:
        conn.close()
    assert err.value.transient
    assert "cannot reach the Salesforce login" in str(err.value) and "Timeout" in str(err.value)


def test_a_stalled_salesforce_query_times_out(make_salesforce_sandbox: Callable[..., SalesforceSandbox],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    box = make_salesforce_sandbox(opportunities=10, seed=3)
    conn = salesforce(box, monkeypatch, timeout_seconds=0.3)
    try:
        conn.schema(OPPORTUNITIES)  # logged in and described at full speed
        box.faults.slow(2000, path_contains="/query")
        with pytest.raises(SourceError) as err:
            list(conn.read(OPPORTUNITIES, None))
    finally:
        conn.close()
    assert err.value.transient
    assert "Salesforce did not answer after 1 tries (ReadTimeout)" in str(err.value)
