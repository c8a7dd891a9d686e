"""A project file with a ``kind: salesforce`` source, against the loopback sandbox: ``check_sources``
names misspelled fields with their file and line, and a sync leaves no secret in the store's files.

Password auth through environment variables, as a user would configure it. Expected values come from
the sandbox org (``box.org``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows import compute, pipeline
from okr_store import queries
from okr_store.store import Store
from okrsync.errors import OkrsyncError
from okrsync.project import Project, check_sources, load_project
from okrsync.project_problems import ProjectFileError
from okrsync.sandboxes.salesforce import SalesforceSandbox
from okrsync.sandboxes.salesforce.auth import Credentials

AS_OF = datetime(2026, 6, 15, 18, 0)  # inside 2026-Q2; the sandbox clock starts at 2026-06-15 12:00 UTC
Q2 = (date(2026, 4, 1), date(2026, 6, 15))

PROJECT = """\
version: 1
settings:
  timezone: UTC
  default_period: 2026-Q2
sources:
  crm:
    kind: salesforce
    auth: password
    username: {username}
    password_env: SF_PASSWORD
    security_token_env: SF_TOKEN
    login_url: {login_url}
    ca_bundle: {ca_bundle}
    retry_backoff_seconds: 0
    page_size: 200
streams:
  opportunities:
    source: crm
    object: Opportunity
    primary_key: Id
    cursor: SystemModstamp
    fields: [Amount, StageName, IsWon, CloseDate, CurrencyIsoCode]
    where: {{field: CurrencyIsoCode, op: "=", value: USD}}
metrics:
  closed_won:
    stream: opportunities
    measure: sum
    field: Amount
    time_field: CloseDate
    filter: {{field: IsWon, op: "=", value: true}}
    unit: USD
objectives:
  - id: O1
    title: Grow
    key_results:
      - {{id: KR-WON, title: Closed-won revenue in USD, metric: closed_won, target: 2000000}}
"""


@pytest.fixture
def box(make_salesforce_sandbox: Callable[..., SalesforceSandbox], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> SalesforceSandbox:
    """A sandbox org, its password and token in SF_PASSWORD / SF_TOKEN, the working directory tmp_path."""
    box = make_salesforce_sandbox(opportunities=300, seed=17)
    monkeypatch.setenv("SF_PASSWORD", box.credentials.password)
    monkeypatch.setenv("SF_TOKEN", box.credentials.security_token)
    monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)  # the store is SQLite in .okrsync/
    monkeypatch.chdir(tmp_path)
    return box


def write_project(box: SalesforceSandbox, *changes: tuple[str, str]) -> str:
    """Write ./okrsync.yaml (with ``changes`` as exact text replacements) and return its text."""
    text = PROJECT.format(username=box.credentials.username, login_url=box.instance_url,
                          ca_bundle=box.cert_path)
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    Path("okrsync.yaml").write_text(text, encoding="utf-8")
    return text


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the only line containing ``fragment``."""
    found = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) == 1, (fragment, found)
    return found[0]


def test_a_project_that_matches_the_org_has_no_problems(box: SalesforceSandbox) -> None:
    write_project(box)
    assert check_sources(load_project("okrsync.yaml")) == []


def test_a_misspelled_metric_field_is_named_with_its_line_and_a_suggestion(box: SalesforceSandbox) -> None:
    text = write_project(box, ("    field: Amount\n", "    field: Amout\n"))
    with pytest.raises(ProjectFileError) as info:  # the stream lists its fields: found as the file loads
        load_project("okrsync.yaml")
    found = [str(p) for p in info.value.problems]
    assert len(found) == 1, found
    assert found[0].startswith(f"okrsync.yaml:{line_of(text, 'field: Amout')}: metrics.closed_won.field: "
                               "stream 'opportunities' does not keep field 'Amout' (did you mean "
                               "'Amount'?)"), found


def test_a_misspelled_stream_field_is_named_with_its_line_and_a_suggestion(box: SalesforceSandbox) -> None:
    text = write_project(box, ("[Amount, StageName,", "[Amount, StagName,"))
    found = check_sources(load_project("okrsync.yaml"))
    assert len(found) == 1, found
    assert found[0].startswith(f"okrsync.yaml:{line_of(text, 'StagName')}: streams.opportunities.fields: "
                               "the source has no field 'StagName' (did you mean 'StageName'?)"), found


def test_a_where_filter_on_an_unknown_field_is_named(box: SalesforceSandbox) -> None:
    text = write_project(box, ("{field: CurrencyIsoCode, op:", "{field: CurrencyCode, op:"))
    found = check_sources(load_project("okrsync.yaml"))
    assert len(found) == 1, found
    assert found[0].startswith(f"okrsync.yaml:{line_of(text, 'where:')}: streams.opportunities.where"), found
    assert "where: Opportunity has no field 'CurrencyCode' (did you mean 'CurrencyIsoCode'?)" in found[0]


def test_every_problem_of_a_stream_is_reported_at_its_own_line(box: SalesforceSandbox) -> None:
    text = write_project(
        box,
        ("[Amount, StageName,", "[Amount, Account.Name, Acount.Name, StageName,"),
        ("{field: CurrencyIsoCode, op:", "{field: CurrencyCode, op:"),
        ("    field: Amount\n", "    field: Acount.Name\n"),
    )
    found = check_sources(load_project("okrsync.yaml"))
    assert len(found) == 3, found
    fields, where = line_of(text, "Acount.Name,"), line_of(text, "where:")
    metric = line_of(text, "field: Acount.Name")
    assert found[0].startswith(f"okrsync.yaml:{fields}: streams.opportunities.fields: ") and (
        "no relationship 'Acount' (did you mean 'Account'?)" in found[0]), found
    assert found[1].startswith(f"okrsync.yaml:{where}: streams.opportunities.where: "), found
    assert found[2].startswith(f"okrsync.yaml:{metric}: metrics.closed_won.field: "), found


def test_a_wrong_password_is_a_problem_of_the_source_without_the_password(
    box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = f"canary-password-{secrets.token_hex(8)}"
    monkeypatch.setenv("SF_PASSWORD", wrong)
    text = write_project(box)
    found = check_sources(load_project("okrsync.yaml"))
    assert len(found) == 1, found
    assert found[0].startswith(f"okrsync.yaml:{line_of(text, '  crm:')}: sources.crm: "), found
    assert "refused the login" in found[0]
    assert wrong not in found[0] and box.credentials.security_token not in found[0]


# -- the pipeline over a correct project ---------------------------------------------------------------


def golden(box: SalesforceSandbox) -> Decimal:
    """Closed-won USD amounts closed this quarter to date, from the org's own records."""
    total = Decimal(0)
    for r in box.org.records("Opportunity"):
        if (r["IsWon"] and r["CurrencyIsoCode"] == "USD" and r["Amount"] is not None
                and Q2[0] <= r["CloseDate"] <= Q2[1]):
            total += Decimal(repr(r["Amount"])).quantize(Decimal("0.01"))
    return total


class Runner:
    """Sync the stream and compute the KR as a run does, without Prefect (after
    tests/flows/test_salesforce_sync.py), remembering the session ids the connector used."""

    def __init__(self, path: Path) -> None:
        self.project: Project = load_project(path)
        self.store = Store(self.project.store_url())
        compute.register_okrs(self.project, self.store)
        self.session_ids: list[str] = []

    def run(self) -> tuple[Any, str | None]:
        run_id = self.store.start_run(AS_OF, None)
        connector = self.project.connector("crm")
        failed: dict[str, str] = {}
        counts = None
        try:
            counts = pipeline.sync_stream(self.project, self.store, connector, run_id, "opportunities")
            self.session_ids.append(connector.client.sf.session_id)  # type: ignore[attr-defined]
        except OkrsyncError as exc:
            failed["opportunities"] = exc.message
        finally:
            connector.close()
        compute.compute_values(self.project, self.store, run_id, None, AS_OF, failed)
        self.store.finish_run(run_id, "partial" if failed else "succeeded", None)
        return counts, failed.get("opportunities")

    def kr(self) -> queries.KrStatus:
        with self.store.engine.connect() as conn:
            return [k for o in queries.status_tree(conn) for k in o.key_results if k.id == "KR-WON"][0]


def store_bytes(project: Project) -> dict[str, bytes]:
    """Every file of the SQLite store's folder (the database, and its journal or WAL if any)."""
    url = project.store_url()
    assert url.startswith("sqlite:///"), url
    folder = Path(url.removeprefix("sqlite:///")).parent
    files = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert "store.db" in files, files.keys()
    return files


def test_a_sync_leaves_no_password_token_or_session_id_in_the_store(
    box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the integration user gets canary credentials (a real login with them), so a grep cannot miss
    c = box.credentials
    password, token = f"canary-password-{secrets.token_hex(8)}", f"canary-token-{secrets.token_hex(8)}"
    box.app.credentials = Credentials(c.username, password, token, c.consumer_key, c.consumer_secret)
    monkeypatch.setenv("SF_PASSWORD", password)
    monkeypatch.setenv("SF_TOKEN", token)
    write_project(box)
    assert check_sources(load_project("okrsync.yaml")) == []

    runner = Runner(tmp_path / "okrsync.yaml")
    counts, error = runner.run()
    assert error is None
    usd = [r for r in box.org.records("Opportunity") if r["CurrencyIsoCode"] == "USD"]
    assert counts.inserted == len(usd) > 0
    kr = runner.kr().value
    assert kr is not None and kr.value == golden(box)
    box.org.clock.advance(minutes=5)
    box.org.update("Opportunity", usd[0]["Id"], Amount=4321.0)
    counts, error = runner.run()  # an incremental run, with a login of its own
    assert error is None and counts.updated == 1
    assert len(set(runner.session_ids)) == 2

    canaries = {"password": password, "security token": token, "password+token": password + token,
                **{f"session id {i}": sid for i, sid in enumerate(runner.session_ids)}}
    for when in ("open", "closed"):
        files = store_bytes(runner.project)
        for name, data in files.items():
            for what, secret in canaries.items():
                assert secret.encode() not in data, f"the {what} is stored in {name} (store {when})"
        assert any(usd[0]["Id"].encode() in data for data in files.values())  # the data really is there
        runner.store.close()
