"""The Salesforce sandbox, exercised only through the real simple-salesforce client over HTTPS.

Expected values are computed from the org model (plain Python over ``org.records``), not from the
sandbox's own SOQL evaluator, wherever that is sensible.
"""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.bulk2 import SFBulk2Type
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql
from simple_salesforce.login import SalesforceLogin

from okrsync.sandboxes.salesforce import Org, SalesforceSandbox
from okrsync.sandboxes.salesforce.ids import checksum_suffix

Factory = Callable[..., SalesforceSandbox]
# Bulk 2.0 sleeps `wait` seconds before its first poll (annotated int, but a float works)
_WAIT = cast(int, 0.01)


def _sobject(sf: Salesforce, name: str) -> SFType:
    return cast(SFType, getattr(sf, name))


def _bulk2(sf: Salesforce, name: str = "Opportunity") -> SFBulk2Type:
    return cast(SFBulk2Type, getattr(sf.bulk2, name))


def _live_opps(box: SalesforceSandbox) -> list[dict[str, Any]]:
    return box.org.records("Opportunity")


def _error(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    """simple-salesforce puts the decoded JSON error body (a list) in ``content``."""
    body = cast(list[dict[str, Any]], exc.value.content)
    return body[0]


def _error_code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(_error(exc)["errorCode"])


def _sf_datetime(v: datetime) -> str:
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


# --------------------------------------------------------------------------------------- basics
def test_versions_resource_and_tls_only(salesforce_sandbox: SalesforceSandbox) -> None:
    s = salesforce_sandbox.http_session()
    versions = s.get(f"{salesforce_sandbox.instance_url}/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{salesforce_sandbox.port}/services/data/", timeout=2)


def test_ids_are_18_char_with_key_prefix_and_checksum(salesforce_sandbox: SalesforceSandbox) -> None:
    prefixes = {"User": "005", "Account": "001", "Opportunity": "006", "Lead": "00Q", "Case": "500"}
    for obj, prefix in prefixes.items():
        for rec in salesforce_sandbox.org.records(obj, include_deleted=True)[:50]:
            assert len(rec["Id"]) == 18 and rec["Id"].startswith(prefix)
            assert rec["Id"][15:] == checksum_suffix(rec["Id"][:15])


def test_generator_is_deterministic_per_seed() -> None:
    a, b = Org().generate(seed=11, opportunities=300), Org().generate(seed=11, opportunities=300)
    c = Org().generate(seed=12, opportunities=300)
    assert a.records("Opportunity", True) == b.records("Opportunity", True)
    assert a.records("Opportunity", True) != c.records("Opportunity", True)
    opps = a.records("Opportunity", include_deleted=True)
    assert any(r["IsDeleted"] for r in opps) and any(r["Amount"] is None for r in opps)
    assert {r["CurrencyIsoCode"] for r in opps} == {"USD", "EUR"}
    assert {r["Type"] for r in opps} == {"New Business", "Existing Business", None}
    assert a.conversion_rate("USD", date(2026, 5, 1)) == 1.0
    assert 0.8 < a.conversion_rate("EUR", date(2026, 5, 1)) < 1.0


def test_limits_and_api_usage_header(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    salesforce_sandbox.set_api_budget(5000, used=100)
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 101 and sf.api_usage["api-usage"].total == 5000
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 5000, "Remaining": 5000 - 102}
    assert salesforce_sandbox.api_usage == (102, 5000)


# --------------------------------------------------------------------------------------- paging
def test_query_and_query_more_pages_return_exactly_the_org(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=5000)
    sf = box.client()
    expected = [r["Id"] for r in _live_opps(box)]
    page = sf.query("SELECT Id, Name, Amount FROM Opportunity")
    assert page["totalSize"] == len(expected) and page["done"] is False
    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert page["nextRecordsUrl"].endswith("-2000")
    got, pages = [], 1
    got += [r["Id"] for r in page["records"]]
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        got += [r["Id"] for r in page["records"]]
        pages += 1
    assert pages == 3 and got == expected
    rec = page["records"][-1]
    assert rec["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v59.0/sobjects/Opportunity/{rec['Id']}",
    }


def test_query_all_and_iter_use_three_pages_and_count_requests(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=5000, deleted_fraction=0.0)
    sf = box.client()
    before = box.requests.count("/query")
    result = sf.query_all("SELECT Id, StageName FROM Opportunity")
    assert result["totalSize"] == 5000 and len({r["Id"] for r in result["records"]}) == 5000
    assert box.requests.count("/query") - before == 3
    stages = [r["StageName"] for r in sf.query_all_iter("SELECT Id, StageName FROM Opportunity")]
    assert stages == [r["StageName"] for r in _live_opps(box)]


def test_batch_size_header_is_honoured_and_clamped(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    n = len(_live_opps(salesforce_sandbox))
    page = sf.query("SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(page["records"]) == 500 and page["nextRecordsUrl"].endswith("-500")
    page = sf.query("SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(page["records"]) == 200  # Salesforce's minimum
    records = list(
        sf.query_all_iter("SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=700"})
    )
    assert len(records) == n


def test_query_all_includes_deleted_rows(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    every = salesforce_sandbox.org.records("Opportunity", include_deleted=True)
    deleted = {r["Id"] for r in every if r["IsDeleted"]}
    assert deleted
    live = sf.query_all("SELECT Id, IsDeleted FROM Opportunity")["records"]
    assert not deleted & {r["Id"] for r in live}
    with_deleted = sf.query_all("SELECT Id, IsDeleted FROM Opportunity", include_deleted=True)["records"]
    assert len(with_deleted) == len(every)
    assert {r["Id"] for r in with_deleted if r["IsDeleted"]} == deleted


def test_relationship_fields_are_nested(salesforce_sandbox: SalesforceSandbox) -> None:
    org = salesforce_sandbox.org
    sf = salesforce_sandbox.client()
    rows = sf.query_all("SELECT Id, Account.Name, Owner.Name, Owner.Email FROM Opportunity")["records"]
    by_id = {r["Id"]: r for r in rows}
    for rec in _live_opps(salesforce_sandbox):
        got = by_id[rec["Id"]]
        owner = org.get("User", rec["OwnerId"])
        assert got["Owner"]["attributes"] == {
            "type": "User",
            "url": f"/services/data/v59.0/sobjects/User/{owner['Id']}",
        }
        assert (got["Owner"]["Name"], got["Owner"]["Email"]) == (owner["Name"], owner["Email"])
        if rec["AccountId"] is None:
            assert got["Account"] is None
        else:
            assert got["Account"]["Name"] == org.get("Account", rec["AccountId"])["Name"]
    assert any(r["Account"] is None for r in rows)


def test_field_types_on_the_wire(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    rec = _live_opps(salesforce_sandbox)[0]
    got = sf.query(
        format_soql(
            "SELECT Amount, CloseDate, IsWon, Probability, SystemModstamp, Region__c "
            "FROM Opportunity WHERE Id = {}",
            rec["Id"],
        )
    )["records"][0]
    assert got["CloseDate"] == rec["CloseDate"].isoformat()
    assert got["SystemModstamp"] == _sf_datetime(rec["SystemModstamp"])
    assert (
        got["Amount"] == rec["Amount"]
        and got["IsWon"] is rec["IsWon"]
        and got["Region__c"] == rec["Region__c"]
    )


# --------------------------------------------------------------------------------------- SOQL
def test_where_clauses_match_python_filters(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    opps = _live_opps(salesforce_sandbox)
    t = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
    cases: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        (
            "Amount > 100000 AND CloseDate >= 2026-01-01",
            lambda r: (r["Amount"] or 0) > 100000 and r["CloseDate"] >= date(2026, 1, 1),
        ),
        (
            "StageName IN ('Closed Won', 'Closed Lost') OR Amount = null",
            lambda r: r["StageName"] in ("Closed Won", "Closed Lost") or r["Amount"] is None,
        ),
        (
            "NOT (IsClosed = true) AND Type != 'New Business'",
            lambda r: not r["IsClosed"] and r["Type"] != "New Business",
        ),
        (
            "StageName NOT IN ('Prospecting') AND Region__c != null",
            lambda r: r["StageName"] != "Prospecting" and r["Region__c"] is not None,
        ),
        ("Name LIKE 'opportunity 0001%'", lambda r: r["Name"].startswith("Opportunity 0001")),
        ("SystemModstamp >= 2025-06-01T04:00:00+02:00", lambda r: r["SystemModstamp"] >= t),
        (
            "CreatedDate < 2025-06-01T02:00:00Z AND CurrencyIsoCode = 'eur'",
            lambda r: r["CreatedDate"] < t and r["CurrencyIsoCode"] == "EUR",
        ),
    ]
    for where, predicate in cases:
        got = [r["Id"] for r in sf.query_all(f"SELECT Id FROM Opportunity WHERE {where}")["records"]]
        assert got == [r["Id"] for r in opps if predicate(r)], where
        assert got, where


def test_order_by_and_limit(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    opps = _live_opps(salesforce_sandbox)
    got = sf.query("SELECT Id, Amount FROM Opportunity ORDER BY Amount DESC, Name LIMIT 25")["records"]
    top = sorted((r for r in opps if r["Amount"] is not None), key=lambda r: (-r["Amount"], r["Name"]))[:25]
    assert [r["Id"] for r in got] == [r["Id"] for r in top]
    first = sf.query("SELECT Id, Amount FROM Opportunity ORDER BY Amount ASC LIMIT 1")["records"][0]
    assert first["Amount"] is None  # ascending: nulls first, as Salesforce does


def test_aggregate_count_and_sum(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    opps = _live_opps(salesforce_sandbox)
    counted = sf.query("SELECT COUNT() FROM Opportunity WHERE IsWon = true")
    assert counted == {"totalSize": sum(r["IsWon"] for r in opps), "done": True, "records": []}
    agg = sf.query("SELECT COUNT(Id), SUM(Amount) FROM Opportunity")["records"][0]
    assert agg["attributes"] == {"type": "AggregateResult"}
    assert agg["expr0"] == len(opps)
    assert agg["expr1"] == pytest.approx(sum(r["Amount"] or 0 for r in opps))
    grouped = sf.query(
        "SELECT StageName, SUM(Amount) total, COUNT(Id) FROM Opportunity GROUP BY StageName "
        "ORDER BY StageName"
    )["records"]
    stages = sorted({r["StageName"] for r in opps})
    assert [g["StageName"] for g in grouped] == stages
    for g in grouped:
        members = [r for r in opps if r["StageName"] == g["StageName"]]
        assert g["total"] == pytest.approx(sum(r["Amount"] or 0 for r in members))
        assert g["expr0"] == len(members)


def test_format_soql_adversarial_strings_round_trip(salesforce_sandbox: SalesforceSandbox) -> None:
    org, sf = salesforce_sandbox.org, salesforce_sandbox.client()
    nasty = [
        "' OR 1=1 --",
        "back\\slash\\",
        "quote \" and ' both",
        "ünïcødé ✓ 日本",
        "new\nline\ttab",
        "50%_off",
    ]
    ids = {name: org.insert("Account", Name=name, OwnerId=org.records("User")[0]["Id"]) for name in nasty}
    for name, rec_id in ids.items():
        rows = sf.query(format_soql("SELECT Id, Name FROM Account WHERE Name = {}", name))["records"]
        assert [(r["Id"], r["Name"]) for r in rows] == [(rec_id, name)]
    rows = sf.query(format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%'", "50%_"))["records"]
    assert [r["Id"] for r in rows] == [ids["50%_off"]]
    rows = sf.query(format_soql("SELECT Id FROM Account WHERE Name IN {}", ["' OR 1=1 --", "nope"]))[
        "records"
    ]
    assert [r["Id"] for r in rows] == [ids["' OR 1=1 --"]]


# --------------------------------------------------------------------------------------- describe
def test_describe(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    d = _sobject(sf, "Opportunity").describe()
    assert d["name"] == "Opportunity" and d["keyPrefix"] == "006"
    fields = {f["name"]: f for f in d["fields"]}
    assert fields["Amount"]["type"] == "currency" and fields["CloseDate"]["type"] == "date"
    assert fields["SystemModstamp"]["type"] == "datetime" and not fields["SystemModstamp"]["createable"]
    assert fields["ExpectedRevenue"]["calculated"] is True
    assert (
        fields["AccountId"]["referenceTo"] == ["Account"]
        and fields["AccountId"]["relationshipName"] == "Account"
    )
    assert fields["Region__c"]["custom"] is True and fields["Region__c"]["nillable"] is True
    assert fields["IsWon"]["updateable"] is False
    names = {o["name"] for o in (sf.describe() or {})["sobjects"]}
    assert {"User", "Account", "Opportunity", "Lead", "Case", "DatedConversionRate"} <= names
    with pytest.raises(SalesforceResourceNotFound):
        _sobject(sf, "Nope").describe()


# --------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        (
            "SELECT Id, Bogus__c FROM Opportunity",
            "INVALID_FIELD",
            "No such column 'Bogus__c' on entity 'Opportunity'",
        ),
        ("SELECT Id, Nope.Name FROM Opportunity", "INVALID_FIELD", "Didn't understand relationship 'Nope'"),
        ("SELECT Id FRM Opportunity", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Opportunity WHERE Name = 'unterminated",
            "MALFORMED_QUERY",
            "ERROR at Row:1:Column:",
        ),
        (
            "SELECT Id FROM Opportunity WHERE a = 1 AND b = 2 OR c = 3",
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
        (
            "SELECT Id FROM Opportunity WHERE CloseDate > '2026-01-01'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "type date",
        ),
        (
            "SELECT Name, SUM(Amount) FROM Opportunity",
            "MALFORMED_QUERY",
            "Field must be grouped or aggregated",
        ),
    ],
)
def test_bad_soql_raises_malformed_request(
    salesforce_sandbox: SalesforceSandbox, soql: str, code: str, text: str
) -> None:
    sf = salesforce_sandbox.client()
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    assert exc.value.status == 400 and _error_code(exc) == code
    assert text in _error(exc)["message"]


def test_invalid_session_and_expiry_fault(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceExpiredSession) as exc:
        salesforce_sandbox.client(session_id="00Dbogus!AQxyz").query("SELECT Id FROM User")
    assert exc.value.status == 401 and _error_code(exc) == "INVALID_SESSION_ID"
    sf = salesforce_sandbox.client()
    salesforce_sandbox.faults.expire_session_after(2)
    sf.query("SELECT Id FROM User")
    sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceExpiredSession):  # stays expired
        sf.query("SELECT Id FROM User")
    fresh = salesforce_sandbox.client(session_id=salesforce_sandbox.new_session())
    assert fresh.query("SELECT COUNT() FROM User")["totalSize"] == 25


def test_password_login_over_soap_and_transparent_relogin(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    sid, instance = SalesforceLogin(
        username=box.credentials.username,
        password=box.credentials.password,
        security_token=box.credentials.security_token,
        domain="test",
        session=box.http_session(route_login=True),
    )
    assert instance == f"127.0.0.1:{box.port}" and box.app.sessions.is_valid(sid)
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        SalesforceLogin(
            username=box.credentials.username,
            password="wrong",
            security_token="x",
            domain="test",
            session=box.http_session(route_login=True),
        )
    assert exc.value.code == "INVALID_LOGIN"
    sf = box.password_client()
    issued = box.app.sessions.issued
    box.faults.expire_session_after(1)
    sf.query("SELECT Id FROM User LIMIT 1")
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 25  # 401, re-login, retry
    assert box.app.sessions.issued == issued + 1
    # SalesforceLogin ok, SalesforceLogin refused, password_client's login, the re-login
    assert [r.status for r in box.requests.matching("/services/Soap/u/59.0", method="POST")] == [
        200,
        500,
        200,
        200,
    ]


def test_request_limit_exceeded(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    salesforce_sandbox.set_api_budget(50, used=49)
    sf.query("SELECT Id FROM User LIMIT 1")
    assert sf.api_usage["api-usage"].used == 50
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert exc.value.status == 403 and _error_code(exc) == "REQUEST_LIMIT_EXCEEDED"
    assert _error(exc)["message"] == "TotalRequests Limit exceeded."


# --------------------------------------------------------------------------------------- faults
def test_503_on_nth_request_once(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    salesforce_sandbox.faults.http_error_on_request(2)
    sf.query("SELECT Id FROM User LIMIT 1")
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert exc.value.status == 503 and _error_code(exc) == "SERVER_UNAVAILABLE"
    sf.query("SELECT Id FROM User LIMIT 1")
    assert [r.status for r in salesforce_sandbox.requests[-3:]] == [200, 503, 200]


def test_503_on_query_page_once_then_resume_and_always(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=5000)
    sf = box.client()
    box.faults.http_error_on_query_page(2)
    first = sf.query("SELECT Id FROM Opportunity")
    with pytest.raises(SalesforceGeneralError):
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    second = sf.query_more(
        first["nextRecordsUrl"], identifier_is_url=True
    )  # a retry of the same locator works
    assert len(second["records"]) == 2000
    box.faults.http_error_on_query_page(3, always=True)
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError):
            sf.query_all("SELECT Id FROM Opportunity")


def test_invalid_query_locator(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=5000)
    sf = box.client()
    box.faults.expire_locator_on_page(2)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_all("SELECT Id FROM Opportunity")
    assert _error_code(exc) == "INVALID_QUERY_LOCATOR"
    box.faults.clear()
    first = sf.query("SELECT Id FROM Opportunity")
    box.expire_query_locators()
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert _error_code(exc) == "INVALID_QUERY_LOCATOR"


def test_slow_response_is_bounded_and_times_out_a_client(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    salesforce_sandbox.faults.slow(150, path_contains="/query")
    started = time.monotonic()
    sf.query("SELECT Id FROM User LIMIT 1")
    assert time.monotonic() - started >= 0.15  # the injected delay happened (and the call still answered)
    with pytest.raises(requests.exceptions.ReadTimeout):
        sf.query("SELECT Id FROM User LIMIT 1", timeout=0.05)
    salesforce_sandbox.faults.slow(0)
    sf.limits()


# --------------------------------------------------------------------------------------- bulk 2.0
def _csv_rows(pages: list[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for page in pages:
        rows += list(csv.DictReader(io.StringIO(page)))
    return rows


def test_bulk2_query_matches_rest(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=5000)
    sf = box.client()
    soql = "SELECT Id, Name, Amount, CloseDate, IsWon, Account.Name FROM Opportunity WHERE Amount > 1000"
    pages = [str(p) for p in _bulk2(sf).query(soql, max_records=1500, wait=_WAIT)]
    rest = sf.query_all(soql)["records"]
    assert len(pages) == -(-len(rest) // 1500)
    rows = _csv_rows(pages)
    assert [r["Id"] for r in rows] == [r["Id"] for r in rest]
    for row, rec in zip(rows, rest, strict=True):
        assert row["Name"] == rec["Name"] and float(row["Amount"]) == rec["Amount"]
        assert row["CloseDate"] == rec["CloseDate"] and row["IsWon"] == str(rec["IsWon"]).lower()
        assert row["Account.Name"] == (rec["Account"]["Name"] if rec["Account"] else "")
    results = box.requests.matching("/jobs/query/", method="GET")
    assert [r.query.get("maxRecords") for r in results if r.path.endswith("/results")] == [["1500"]] * len(
        pages
    )
    job = box.app.bulk.get(next(iter(box.app.bulk.jobs)))
    assert job["state"] == "JobComplete" and job["numberRecordsProcessed"] == len(rest)


def test_bulk2_download_and_query_all(make_salesforce_sandbox: Factory, tmp_path: Path) -> None:
    box = make_salesforce_sandbox(opportunities=3000)
    sf = box.client()
    results = _bulk2(sf).download(
        "SELECT Id FROM Opportunity", path=str(tmp_path), max_records=1000, wait=_WAIT
    )
    assert [r["number_of_records"] for r in results][-1] > 0
    files = [Path(r["file"]).read_text(encoding="utf-8") for r in results]
    assert [r["Id"] for r in _csv_rows(files)] == [r["Id"] for r in _live_opps(box)]
    everything = _csv_rows(
        [str(p) for p in _bulk2(sf).query_all("SELECT Id, IsDeleted FROM Opportunity", wait=_WAIT)]
    )
    assert len(everything) == len(box.org.records("Opportunity", include_deleted=True))


def test_bulk2_job_failed(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    salesforce_sandbox.faults.fail_bulk_jobs("InternalServerError: boom")
    with pytest.raises(SalesforceOperationError, match="boom"):
        list(_bulk2(sf).query("SELECT Id FROM Opportunity", wait=_WAIT))
    states = [salesforce_sandbox.app.bulk.get(j)["state"] for j in salesforce_sandbox.app.bulk.jobs]
    assert states == ["Failed"]


def test_bulk2_damaged_results(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    salesforce_sandbox.faults.damage_bulk_results(page=2, mode="abort")
    with pytest.raises(requests.exceptions.RequestException):
        list(_bulk2(sf).query("SELECT Id, Name FROM Opportunity", max_records=500, wait=_WAIT))
    salesforce_sandbox.faults.clear()
    salesforce_sandbox.faults.damage_bulk_results(page=1, mode="truncate")
    pages = [
        str(p) for p in _bulk2(sf).query("SELECT Id, Name FROM Opportunity", max_records=500, wait=_WAIT)
    ]
    rows = pages[0].splitlines()
    assert len(rows) < 501  # the header said 500 records: a careful connector notices
    assert salesforce_sandbox.requests[-1].status == 200


def test_bulk2_rejects_bad_soql(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    with pytest.raises(SalesforceMalformedRequest):
        list(_bulk2(sf).query("SELECT Nope FROM Opportunity", wait=_WAIT))
    with pytest.raises(SalesforceMalformedRequest):
        list(_bulk2(sf).query("SELECT COUNT() FROM Opportunity", wait=_WAIT))


# --------------------------------------------------------------------------------------- mutation
def test_mutation_then_incremental_query(salesforce_sandbox: SalesforceSandbox) -> None:
    org, sf = salesforce_sandbox.org, salesforce_sandbox.client()
    watermark = org.clock.advance(hours=1) + timedelta(milliseconds=250)  # cut to seconds by format_soql
    org.clock.advance(seconds=1)
    victims = _live_opps(salesforce_sandbox)[:3]
    org.update("Opportunity", victims[0]["Id"], StageName="Closed Won", Amount=42.0)
    org.delete("Opportunity", victims[1]["Id"])
    new_id = org.insert(
        "Opportunity",
        Name="Fresh",
        StageName="Prospecting",
        CloseDate=date(2026, 9, 30),
        OwnerId=victims[2]["OwnerId"],
        Amount=10.0,
    )
    soql = format_soql(
        "SELECT Id, StageName, IsWon, IsDeleted FROM Opportunity WHERE SystemModstamp >= {} "
        "ORDER BY SystemModstamp",
        watermark,
    )
    assert watermark.microsecond and "T" in soql
    changed = sf.query_all(soql)["records"]
    assert {r["Id"] for r in changed} == {victims[0]["Id"], new_id}
    won = next(r for r in changed if r["Id"] == victims[0]["Id"])
    assert won["IsWon"] is True and won["StageName"] == "Closed Won"
    with_deleted = sf.query_all(soql, include_deleted=True)["records"]
    assert {r["Id"]: r["IsDeleted"] for r in with_deleted}[victims[1]["Id"]] is True
    end = org.clock.now() + timedelta(minutes=1)
    assert victims[1]["Id"] in [
        d["id"] for d in _sobject(sf, "Opportunity").deleted(watermark, end)["deletedRecords"]
    ]
    assert set(_sobject(sf, "Opportunity").updated(watermark, end)["ids"]) == {victims[0]["Id"], new_id}
    org.undelete("Opportunity", victims[1]["Id"])
    assert len(sf.query_all(soql)["records"]) == 3


def test_rest_record_crud(salesforce_sandbox: SalesforceSandbox) -> None:
    org, sf = salesforce_sandbox.org, salesforce_sandbox.client()
    owner = org.records("User")[0]["Id"]
    created = _sobject(sf, "Account").create({"Name": "Via REST", "OwnerId": owner, "Region__c": "EMEA"})
    assert created["success"] and created["id"].startswith("001")
    assert _sobject(sf, "Account").update(created["id"], {"Name": "Renamed"}) == 204
    assert _sobject(sf, "Account").get(created["id"])["Name"] == "Renamed"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        _sobject(sf, "Account").update(created["id"], {"SystemModstamp": "2020-01-01T00:00:00Z"})
    assert _error_code(exc) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert _sobject(sf, "Account").delete(created["id"]) == 204
    assert org.get("Account", created["id"])["IsDeleted"] is True


def test_large_org_generation_and_count(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=200_000, deleted_fraction=0.0)
    sf = box.client()
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 200_000
    page = sf.query("SELECT Id FROM Opportunity WHERE CloseDate >= 2027-01-01")
    assert page["totalSize"] == sum(r["CloseDate"] >= date(2027, 1, 1) for r in _live_opps(box))


def test_starts_and_stops_cleanly() -> None:
    box = SalesforceSandbox(opportunities=10, accounts=5).start()
    port = box.port
    sf = box.client()
    sf.query("SELECT Id FROM Account")  # leaves a keep-alive connection open
    box.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert not any(t.name == "salesforce-sandbox" and t.is_alive() for t in threading.enumerate())
