"""The hr connector's BambooHR system through the real HTTP stack (requests, TLS), against the sandbox.

Expected values come from the sandbox's company (``box.org``), never from the connector. Waits are virtual
(an injected sleep and clock). The canary tests follow RELIABILITY.md rows 29 and 33 and §3.5: with every
logger at DEBUG, no name, salary, birth date or termination reason of the company appears in the logs, in
an error (str, repr or traceback) or in printed output, on the retry paths too.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import requests
import yaml

from connectors.base import StreamSpec, Watermark, cursor_values, typed_watermark
from connectors.hr import HrConnector, HrOptions
from connectors.hr.bamboohr_client import retry_after_seconds
from okrsync.errors import ConfigError, OkrsyncError, SourceError
from okrsync.sandboxes.bamboohr import BambooHrSandbox, Employee
from okrsync.sandboxes.bamboohr.model import INVOLUNTARY_TYPE, RETIREMENT_TYPE, VOLUNTARY_TYPE, Org
from okrsync.schema import FieldType, StreamSchema
from tests.sandboxes.bamboohr_fixtures import bamboohr_sandbox, make_bamboohr_sandbox  # noqa: F401

KEY_ENV = "OKRSYNC_TEST_BAMBOOHR_KEY"
LOGGERS = ("", "urllib3", "urllib3.connectionpool", "requests", "connectors", "okrsync", "charset_normalizer")
NOW = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
ALL = ("firstName", "lastName", "department", "division", "location", "jobTitle", "status", "hireDate",
       "terminationDate", "terminationType", "terminationKind", "terminationReason", "dateOfBirth", "payRate",
       "payRateCurrency", "payPer", "lastChanged")


@dataclass
class VirtualClock:
    """An injected ``sleep`` that only records, and a ``now`` that moves with it."""

    now: datetime = NOW
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)

    def clock(self) -> datetime:
        return self.now


@pytest.fixture
def box(make_bamboohr_sandbox: Callable[..., BambooHrSandbox]) -> BambooHrSandbox:  # noqa: F811
    return make_bamboohr_sandbox(employees=300, seed=11)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def connect(box: BambooHrSandbox, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Iterator[Callable[..., HrConnector]]:
    """``connect(**options)``: a connector on the sandbox with a virtual clock (closed after the test)."""
    monkeypatch.setenv(KEY_ENV, box.api_key)
    opened: list[HrConnector] = []

    def make(**options: Any) -> HrConnector:
        base = box.source_options(api_key_env=KEY_ENV, retry_backoff_seconds=1)
        conn = HrConnector("people", base | options, tmp_path, sleep=clock.sleep, now=clock.clock)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, captured."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


def spec(fields: tuple[str, ...] | None = ALL, **more: Any) -> StreamSpec:
    return StreamSpec(name="employees", source="people", primary_key="id", cursor="lastChanged",
                      fields=fields, options={"report": "employees"}, **more)


def read_all(conn: HrConnector, stream: StreamSpec, since: Watermark | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream, since))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def watermark(conn: HrConnector, df: pd.DataFrame, stream: StreamSpec) -> Watermark:
    """What the framework stores after committing ``df`` and hands back on the next sync (JSON round trip)."""
    last = df.tail(1)
    wm = Watermark(cursor_values(last, stream).iloc[0], tuple(last.iloc[0][k] for k in stream.primary_key))
    kept = stream.kept_fields(conn.schema(stream))
    schema = StreamSchema(tuple(f for f in conn.schema(stream).fields if f.name in kept))
    typed = typed_watermark(wm.to_json(), stream, schema)
    assert typed is not None
    return typed


def records(df: pd.DataFrame) -> dict[int, dict[str, Any]]:
    clean = df.astype(object).where(df.notna(), None)
    return {int(r["id"]): r for r in clean.to_dict("records")}


def kind_of(emp: Employee) -> str | None:
    if emp.terminationType is None:
        return None
    return {VOLUNTARY_TYPE: "voluntary", INVOLUNTARY_TYPE: "involuntary"}.get(emp.terminationType, "other")


def expected(box: BambooHrSandbox, emp: Employee) -> dict[str, Any]:
    """A record as the connector must give it, from the sandbox's own employee."""
    return {
        "id": emp.id, "firstName": emp.firstName, "lastName": emp.lastName, "department": emp.department,
        "division": emp.division, "location": emp.location, "jobTitle": emp.jobTitle,
        "status": emp.status(box.org.today), "hireDate": emp.hireDate, "terminationDate": emp.terminationDate,
        "terminationType": emp.terminationType, "terminationKind": kind_of(emp),
        "terminationReason": emp.terminationReason, "dateOfBirth": emp.dateOfBirth,
        "payRate": None if emp.payRate is None else emp.payRate.quantize(Decimal("0.01")),
        "payRateCurrency": emp.currency if emp.payRate is not None else None, "payPer": emp.payPer,
        "lastChanged": emp.lastChanged.astimezone(UTC).replace(tzinfo=None),
    }


def same(row: dict[str, Any], want: dict[str, Any]) -> None:
    got = dict(row)
    got["lastChanged"] = pd.Timestamp(got["lastChanged"]).to_pydatetime()
    assert got == want, f"employee {want['id']}"


def error_texts(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, OkrsyncError):
        parts += [exc.message, exc.hint or ""]
    return "\n".join(parts)


# -- schema and full reads --------------------------------------------------------------------------


def test_schema_types(connect: Callable[..., HrConnector]) -> None:
    types = {f.name: (f.type, f.scale) for f in connect().schema(spec()).fields}
    assert types["id"] == (FieldType.INTEGER, None)
    assert types["hireDate"] == types["terminationDate"] == types["dateOfBirth"] == (FieldType.DATE, None)
    assert types["payRate"] == (FieldType.DECIMAL, 2)
    assert types["payRateCurrency"] == types["terminationKind"] == types["status"] == (FieldType.STRING, None)
    assert types["lastChanged"] == (FieldType.DATETIME, None)


def test_full_read_is_every_employee_with_exact_values_in_batches(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    conn = connect()
    stream = spec(batch_size=64)
    frames = list(conn.read(stream, None))
    assert [len(f) for f in frames] == [64, 64, 64, 64, 44]  # 300 live employees, batch_size 64
    df = pd.concat(frames, ignore_index=True)
    assert list(df.columns) == ["id", *ALL]
    live = {e.id: e for e in box.org.live()}
    got = records(df)
    assert sorted(got) == sorted(live)  # order, unique keys, ties, lookback: test_contract_bamboohr.py
    for emp_id, emp in live.items():
        same(got[emp_id], expected(box, emp))
    # the seeded company really has what the types must cope with
    assert {"voluntary", "involuntary", "other"} <= set(df["terminationKind"].dropna())
    assert df["status"].eq("Inactive").sum() > 20 and df["payRate"].isna().any()
    assert df["dateOfBirth"].isna().any() and df["terminationDate"].isna().any()
    assert {"Müller", "O'Brien"} <= set(df["lastName"]) and df["payRateCurrency"].nunique() >= 4
    # one call: the custom report, as BambooHR has it
    assert conn.api_calls == 1 and len(box.requests) == 1
    req = box.requests[0]
    assert (req.method, req.path) == ("POST", "/api/gateway.php/acme/v1/reports/custom")
    assert req.query == {"format": ["JSON"], "onlyCurrent": ["false"]}
    assert req.headers["accept"] == "application/json" and req.headers["content-type"] == "application/json"
    assert req.headers["authorization"] == "***"  # (the sandbox's log redacts it)
    assert "filters" not in req.body and "id" not in req.body["fields"]


def test_only_the_fields_the_stream_keeps_are_requested(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    df = read_all(connect(), spec(("department", "status")))
    assert list(df.columns) == ["id", "department", "status", "lastChanged"]
    assert box.requests[0].body["fields"] == ["department", "status", "lastChanged"]  # no name, no pay


def test_future_dated_terminations_are_read_with_only_current_false(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    future = [e for e in box.org.live() if e.terminationDate and e.terminationDate > box.org.today]
    assert future, "the seeded company has announced terminations"
    got = records(read_all(connect(), spec()))
    for emp in future:
        assert got[emp.id]["terminationDate"] == emp.terminationDate
        assert got[emp.id]["status"] == "Active"  # still employed today


def test_a_10k_company_is_one_report_yielded_in_batches(
    make_bamboohr_sandbox: Callable[..., BambooHrSandbox],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    big = make_bamboohr_sandbox(employees=10_000, seed=3)
    monkeypatch.setenv(KEY_ENV, big.api_key)
    conn = HrConnector("people", big.source_options(api_key_env=KEY_ENV), tmp_path)
    try:
        frames = list(conn.read(spec(("department", "status", "payRate"), batch_size=2500), None))
        assert [len(f) for f in frames] == [2500, 2500, 2500, 2500]
        ids = pd.concat(frames)["id"]
        assert ids.is_unique and sorted(ids) == [e.id for e in big.org.live()]
        assert conn.api_calls == 1
        keys = pd.concat(list(conn.keys(spec(batch_size=4000))))["id"]
        assert sorted(keys) == sorted(ids) and conn.api_calls == 2
    finally:
        conn.close()


# -- incremental reads ------------------------------------------------------------------------------


def test_incremental_read_fetches_only_changed_employees_and_reports_deletions(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    conn = connect()
    stream = spec()
    first = read_all(conn, stream)
    wm = watermark(conn, first, stream)
    org = box.org
    hired = [org.hire(firstName="Zoë", lastName="Ünal", department="Sales"), org.hire(payRate=None)]
    changed = [org.change(i, department="Finance") for i in (3, 4, 5)]
    active = [e.id for e in org.live() if e.terminationDate is None and e.id > 10][:2]
    quit_ = org.terminate(active[0], date(2026, 10, 31), voluntary=True, reason="Relocation")
    fired = org.terminate(active[1], voluntary=False, reason="Restructuring")
    org.change(6, jobTitle="Controller")
    org.delete(6)  # changed, then deleted in the same window: a tombstone, not a record
    org.delete(8)
    calls = len(box.requests)

    df = read_all(conn, stream, wm)
    want = {e.id for e in [*hired, *changed, quit_, fired]}
    got = records(df)
    assert set(got) == want
    for emp_id in want:
        same(got[emp_id], expected(box, org.employees[emp_id]))
    assert got[quit_.id]["terminationKind"] == "voluntary" and got[quit_.id]["status"] == "Active"
    assert got[fired.id]["terminationKind"] == "involuntary" and got[fired.id]["status"] == "Inactive"
    deleted = pd.concat(list(conn.deleted(stream, wm)))
    assert sorted(deleted["id"]) == [6, 8]
    # employees/changed once (the deletions reuse it) and one report restricted to the changed ids
    new = box.requests[calls:]
    assert [(r.method, r.path.rsplit("/v1/", 1)[1]) for r in new] == [
        ("GET", "employees/changed"), ("POST", "reports/custom")]
    assert new[1].body["filters"] == {"employeeIds": sorted(want)}
    assert conn.api_calls == 3

    # nothing changed since: the next sync is one call and reads nothing
    wm2 = watermark(conn, df, stream)
    assert read_all(conn, stream, wm2).empty
    assert conn.api_calls == 4


def test_changed_ids_are_fetched_in_chunks(box: BambooHrSandbox, connect: Callable[..., HrConnector]) -> None:
    conn = connect(ids_per_request=4)
    stream = spec(("status",))
    wm = watermark(conn, read_all(conn, stream), stream)
    for emp_id in range(20, 30):
        box.org.change(emp_id, jobTitle="Recruiter")
    df = read_all(conn, stream, wm)
    assert sorted(df["id"]) == list(range(20, 30))
    bodies = [r.body for r in box.requests.matching("reports/custom")][1:]
    assert [b["filters"]["employeeIds"] for b in bodies] == [[20, 21, 22, 23], [24, 25, 26, 27], [28, 29]]


# -- throttling, outages and retries (RELIABILITY row 29) -------------------------------------------


def test_429_with_retry_after_seconds_waits_as_asked(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.throttle(times=2, retry_after=3)
    df = read_all(connect(), spec(("status",)))
    assert len(df) == 300
    assert clock.sleeps == [3.0, 3.0]
    assert [r.status for r in box.requests] == [429, 429, 200]


def test_retry_after_as_an_http_date(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.throttle(times=1, retry_after=format_datetime(NOW + timedelta(seconds=7), usegmt=True))
    assert len(read_all(connect(), spec(("status",)))) == 300
    assert clock.sleeps == [7.0]


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("120", NOW) == 120
    assert retry_after_seconds(" 1.5 ", NOW) == 1.5
    assert retry_after_seconds(format_datetime(NOW + timedelta(minutes=2), usegmt=True), NOW) == 120
    assert retry_after_seconds(format_datetime(NOW - timedelta(minutes=2), usegmt=True), NOW) == 0
    for bad in (None, "", "soon", "-5", "nan", "inf"):
        assert retry_after_seconds(bad, NOW) is None


def test_503_with_retry_after_waits_as_asked(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.throttle(times=1, status=503, retry_after=5)
    assert len(read_all(connect(), spec(("status",)))) == 300
    assert clock.sleeps == [5.0]


def test_503_without_retry_after_is_an_outage_backed_off_then_transient(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.unavailable(times=None)
    with pytest.raises(SourceError, match=r"unavailable|throttled") as exc:
        read_all(connect(retries=4), spec(("status",)))
    assert exc.value.transient
    assert "HTTP 503" in exc.value.message and "after 5 tries" in exc.value.message
    assert len(box.requests) == 5
    assert len(clock.sleeps) == 4
    for attempt, waited in enumerate(clock.sleeps):  # exponential backoff with up to 50 % jitter
        assert 2 ** attempt <= waited <= 1.5 * 2 ** attempt


def test_a_short_outage_recovers(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.unavailable(times=2)
    box.faults.server_error(times=1, status=502)
    assert len(read_all(connect(), spec(("status",)))) == 300
    assert len(clock.sleeps) == 3 and [r.status for r in box.requests] == [503, 503, 502, 200]


def test_a_retry_after_beyond_the_limit_fails_at_once_as_transient(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.throttle(times=1, retry_after=900)
    limit = r"asked to wait 900 s, more than max_retry_after_seconds \(300\)"
    with pytest.raises(SourceError, match=limit) as e:
        read_all(connect(), spec(("status",)))
    assert e.value.transient and clock.sleeps == [] and len(box.requests) == 1


def test_throttling_on_the_incremental_path_is_retried(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    conn = connect()
    stream = spec(("status",))
    wm = watermark(conn, read_all(conn, stream), stream)
    box.org.change(21, department="People")
    box.faults.throttle(times=1, retry_after=2, path_contains="employees/changed")
    box.faults.throttle(times=1, retry_after=4, path_contains="reports/custom")
    assert list(read_all(conn, stream, wm)["id"]) == [21]
    assert clock.sleeps == [2.0, 4.0]


def test_network_errors_are_retried_then_transient(
    clock: VirtualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "whatever")
    conn = HrConnector("people", {"system": "bamboohr", "company_domain": "acme", "api_key_env": KEY_ENV,
                                  "base_url": "https://127.0.0.1:9/api/gateway.php/acme/v1/", "retries": 2},
                       tmp_path, sleep=clock.sleep)
    with pytest.raises(SourceError, match="cannot reach BambooHR at https://127.0.0.1:9 after 3 tr") as exc:
        conn.check()
    assert exc.value.transient and len(clock.sleeps) == 2


# -- authentication and permissions -----------------------------------------------------------------


def test_a_wrong_key_is_refused_without_retry_naming_the_variable_never_the_key(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = f"canary-key-{secrets.token_hex(12)}"
    monkeypatch.setenv(KEY_ENV, wrong)
    with pytest.raises(SourceError, match="refused the API key \\(HTTP 401\\)") as exc:
        read_all(connect(), spec())
    assert not exc.value.transient and clock.sleeps == [] and len(box.requests) == 1
    assert KEY_ENV in (exc.value.hint or "")
    assert wrong not in error_texts(exc.value) and box.api_key not in error_texts(exc.value)


def test_a_revoked_key_and_a_forbidden_user(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    box.faults.reject_key(times=1)
    with pytest.raises(SourceError, match="HTTP 401") as revoked:
        connect().check()
    box.faults.forbid(times=1)
    with pytest.raises(SourceError, match="refused access \\(HTTP 403\\)") as forbidden:
        read_all(connect(), spec())
    for exc in (revoked.value, forbidden.value):
        assert not exc.transient and KEY_ENV in (exc.hint or "")
        assert box.api_key not in error_texts(exc)


def test_an_unset_key_variable_is_a_config_error_before_any_call(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV} is not set"):
        read_all(connect(), spec())
    assert len(box.requests) == 0


def test_an_untrusted_certificate_is_not_retried(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    shutil.copy(Path(__file__), other)  # not the sandbox's certificate (not even a certificate)
    with pytest.raises(SourceError) as exc:
        connect(ca_bundle=str(other)).check()
    assert not exc.value.transient and clock.sleeps == []
    with pytest.raises(SourceError, match="could not be verified") as exc:
        connect(ca_bundle=None).check()  # the system's trust store does not know the sandbox
    assert not exc.value.transient and "ca_bundle" in (exc.value.hint or "") and clock.sleeps == []


def test_a_key_that_is_not_one_is_a_config_error(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "pasted:with a colon")
    with pytest.raises(ConfigError, match=f"the BambooHR API key in environment variable {KEY_ENV} is not"):
        connect().check()
    assert len(box.requests) == 0


def test_a_listing_of_no_employee_at_all_is_not_taken_as_everyone_deleted(
    make_bamboohr_sandbox: Callable[..., BambooHrSandbox],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    empty = make_bamboohr_sandbox(employees=0, deleted=0)
    monkeypatch.setenv(KEY_ENV, empty.api_key)
    conn = HrConnector("people", empty.source_options(api_key_env=KEY_ENV), tmp_path)
    try:
        assert read_all(conn, spec()).empty
        with pytest.raises(SourceError, match="listed no employee at all") as exc:
            list(conn.keys(spec()))
        assert exc.value.transient
    finally:
        conn.close()


def test_a_wrong_company_domain_is_a_404_naming_it(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    url = box.base_url.replace("/acme/", "/acme-typo/")
    with pytest.raises(SourceError, match="answered 404") as exc:
        connect(company_domain="acme-typo", base_url=url).check()
    assert "acme-typo" in (exc.value.hint or "") and not exc.value.transient


def test_fields_bamboohr_leaves_out_are_an_error_naming_them(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    box.hidden_fields.update({"payRate", "dateOfBirth"})
    with pytest.raises(SourceError, match=r"left out field\(s\) dateOfBirth, payRate") as exc:
        read_all(connect(), spec())
    assert "payRateCurrency" in exc.value.message and not exc.value.transient
    assert len(read_all(connect(), spec(("department", "status")))) == 300  # a stream not keeping them reads


def test_field_ids_and_termination_types_can_be_mapped(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    conn = connect(field_ids={"jobTitle": "employeeNumber"}, termination_types={"voluntary": ["retirement"]})
    df = read_all(conn, spec(("jobTitle", "terminationType", "terminationKind")))
    got = records(df)
    org = {e.id: e for e in box.org.live()}
    assert all(got[i]["jobTitle"] == org[i].employeeNumber for i in got)
    retired = [i for i, e in org.items() if e.terminationType == RETIREMENT_TYPE]
    assert retired and all(got[i]["terminationKind"] == "voluntary" for i in retired)
    assert "employeeNumber" in box.requests[0].body["fields"]


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"api_key_secret": "bamboo"}, "give exactly one of api_key_env, api_key_secret"),
    ({"api_key_env": None}, "given: none"),
    ({"base_url": "http://127.0.0.1:8080/api/"}, "base_url must be https://"),
    ({"base_url": "https://user:pw@host/api/"}, "base_url must be https://"),
    ({"company_domain": "acme.bamboohr.com"}, "company_domain is the subdomain"),
    ({"field_ids": {"salary": "payRate"}}, "'salary' is not a column of the employees report"),
    ({"retries": 99}, "retries"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_options_are_config_errors(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    base = {"system": "bamboohr", "company_domain": "acme", "api_key_env": KEY_ENV}
    with pytest.raises(ConfigError, match=message):
        HrConnector("people", {k: v for k, v in (base | options).items() if v is not None}, tmp_path)


@pytest.mark.parametrize(("stream", "message"), [
    (StreamSpec(name="e", source="people", primary_key="id", options={}), "write `report: employees`"),
    (StreamSpec(name="e", source="people", primary_key="employeeId", options={"report": "employees"}),
     "primary key of the BambooHR employees report is id"),
    (StreamSpec(name="e", source="people", primary_key="id", cursor="hireDate",
                options={"report": "employees"}),
     "cursor of the BambooHR employees report is lastChanged"),
    (StreamSpec(name="e", source="people", primary_key="id", fields=("salary", "firstname"),
                options={"report": "employees"}), "no field 'salary'"),
    (StreamSpec(name="e", source="people", primary_key="id", fields=("firstname",),
                options={"report": "employees"}), "did you mean 'firstName'"),
    (StreamSpec(name="e", source="people", primary_key="id", options={"report": "applicants"}), "report"),
])
def test_bad_streams_are_config_errors(
    stream: StreamSpec, message: str, connect: Callable[..., HrConnector]
) -> None:
    with pytest.raises(ConfigError, match=message):
        connect().schema(stream)


def test_record_links_and_the_check(box: BambooHrSandbox, connect: Callable[..., HrConnector]) -> None:
    conn = connect()
    assert conn.record_url(spec(), "42") == "https://acme.bamboohr.com/employees/employee.php?id=42"
    assert conn.record_url(spec(), "../x") is None
    conn.check()
    assert box.requests[-1].path.endswith("/v1/meta/fields") and conn.api_calls == 1
    assert conn.default_deletes == "tombstones" and conn.default_reconcile_every_hours == 168


# -- canary PII (RELIABILITY rows 29 and 33, §3.5) --------------------------------------------------


def canaries(box: BambooHrSandbox) -> dict[str, str]:
    """Personal data of the company that must never leave the connector except in its frames."""
    found: dict[str, str] = {}
    for e in box.org.live():
        for what, value in (("first name", e.firstName), ("last name", e.lastName),
                            ("termination reason", e.terminationReason)):
            if value and len(value) >= 6:
                found[value] = what
        if e.dateOfBirth:
            found[e.dateOfBirth.isoformat()] = "date of birth"
        if e.payRate is not None and e.payRate >= 1000:
            found[f"{e.payRate:.2f}"] = "salary"
    return found


def test_no_personal_data_in_logs_errors_or_output_on_any_path(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock,
    debug_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = box.org
    marked = org.hire(firstName=f"Canaryfirst{secrets.token_hex(4)}",
                      lastName=f"Canarylast{secrets.token_hex(4)}", payRate=Decimal("987654.32"),
                      dateOfBirth=date(1971, 2, 3))
    org.terminate(marked.id, voluntary=False, reason=f"Canary reason {secrets.token_hex(4)}")
    pii = canaries(box)
    assert len(pii) > 300
    errors: list[BaseException] = []
    conn = connect(retries=2)
    stream = spec()
    df = read_all(conn, stream)  # a full read
    assert marked.id in set(df["id"])
    wm = watermark(conn, df, stream)
    org.change(marked.id, department="Finance")
    org.delete(17)
    box.faults.throttle(times=1, retry_after=1)
    box.faults.unavailable(times=1)
    assert list(read_all(conn, stream, wm)["id"]) == [marked.id]  # incremental, through 429 and 503
    list(conn.deleted(stream, wm))
    box.faults.unavailable(times=None)
    with pytest.raises(SourceError) as outage:  # retries exhausted
        read_all(connect(retries=1), stream)
    errors.append(outage.value)
    box.faults.clear()
    box.faults.reject_key(times=1)
    with pytest.raises(SourceError) as refused:
        read_all(connect(), stream)
    errors.append(refused.value)
    box.hidden_fields.add("payRate")
    with pytest.raises(SourceError) as hidden:
        read_all(connect(), stream)
    errors.append(hidden.value)
    box.hidden_fields.clear()
    # a value the connector cannot type: the error names the employee and field, not the value
    org.change(marked.id, dateOfBirth=None)
    monkeypatch.setattr(org, "report_value", _broken(org.report_value, marked.id))
    with pytest.raises(SourceError, match=f"employee {marked.id}: field 'payRate'") as bad:
        read_all(connect(), stream)
    errors.append(bad.value)

    printed = capsys.readouterr()
    logs = debug_logs.text
    assert "reports/custom" in logs and "employees/changed" in logs  # the HTTP traffic really was logged
    assert "waiting 1.0 s (as Retry-After asks)" in logs
    for value, what in pii.items():
        assert value not in logs, f"a {what} appears in the logs"
        assert value not in printed.out + printed.err, f"a {what} was printed"
        for exc in errors:
            assert value not in error_texts(exc), f"a {what} appears in an error: {exc}"
    for secret in (box.api_key,):
        assert secret not in logs and all(secret not in error_texts(e) for e in errors)


def _broken(render: Callable[..., Any], emp_id: int) -> Callable[..., Any]:
    """``report_value`` with one employee's pay rate written in a form the connector must refuse."""

    def value(emp: Employee, field_id: str, only_current: bool) -> Any:
        if emp.id == emp_id and field_id == "payRate":
            return "987.654,32 EUR"
        return render(emp, field_id, only_current)

    return value


# -- through the project file and the store (kind: hr, registered in pyproject.toml) -----------------


def test_syncs_through_the_store_move_only_changes_and_tombstones(
    box: BambooHrSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows import compute, pipeline
    from okr_store.store import Store
    from okrsync.project import load_project

    monkeypatch.setenv(KEY_ENV, box.api_key)
    doc = {
        "version": 1,
        "settings": {"timezone": "UTC", "default_period": "2026-Q4"},
        "sources": {"people": {"kind": "hr", **box.source_options(api_key_env=KEY_ENV)}},
        "streams": {"employees": {
            "source": "people", "report": "employees", "primary_key": "id", "cursor": "lastChanged",
            "fields": ["department", "status", "terminationDate", "terminationKind", "terminationReason",
                       "payRate"],
            "sensitive": ["terminationReason", "payRate"]}},
        "metrics": {"voluntary_leavers": {
            "stream": "employees", "measure": "count", "time_field": "terminationDate",
            "filter": {"field": "terminationKind", "op": "=", "value": "voluntary"}}},
        "objectives": [{"id": "O1", "title": "Keep people", "key_results": [
            {"id": "KR-ATTR", "title": "Voluntary leavers", "metric": "voluntary_leavers", "target": 0,
             "baseline": 10, "direction": "decrease"}]}],
    }
    (tmp_path / "okrsync.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    project = load_project(tmp_path / "okrsync.yaml")
    store = Store(project.store_url())
    compute.register_okrs(project, store)
    as_of = datetime(2026, 12, 31, 12, 0)

    def run() -> tuple[Any, Any]:
        run_id = store.start_run(as_of, None)
        connector = project.connector("people")
        try:
            counts = pipeline.sync_stream(project, store, connector, run_id, "employees")
        finally:
            connector.close()
        values, held = compute.compute_values(project, store, run_id, None, as_of, {})
        store.finish_run(run_id, "succeeded", None)
        assert held == {}
        return counts, values["KR-ATTR"].value

    def golden() -> int:
        return sum(1 for e in box.org.live() if e.terminationType == VOLUNTARY_TYPE and e.terminationDate
                   and date(2026, 10, 1) <= e.terminationDate <= date(2026, 12, 31))

    first, before = run()
    assert first.inserted == 300 and before == golden()
    org = box.org
    leavers = [e.id for e in org.live() if e.terminationDate is None][:3]
    for emp_id in leavers:
        org.terminate(emp_id, date(2026, 11, 30), voluntary=True)
    org.hire()
    org.delete(leavers[0])
    second, value = run()
    assert (second.rows_read, second.inserted, second.updated, second.deleted) == (3, 1, 2, 1)
    assert value == golden() == before + 2  # three new leavers, one of them deleted since
    third, value = run()
    assert (third.rows_read, third.inserted, third.updated) == (0, 0, 0) and value == golden()


def test_the_options_model_is_what_the_project_file_validates() -> None:
    parsed = HrOptions.model_validate({"system": "bamboohr", "company_domain": "acme", "api_key_env": "K"})
    assert parsed.system == "bamboohr" and parsed.settings.company_domain == "acme"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="system"):
        HrOptions.model_validate({"company_domain": "acme", "api_key_env": "K"})


# -- the sandbox itself ------------------------------------------------------------------------------


def test_the_sandbox_company_is_deterministic_and_spans_quarters() -> None:
    a, b = Org.generate(seed=5), Org.generate(seed=5)
    assert a.live() == b.live() and a.deleted == b.deleted
    assert Org.generate(seed=6).live() != a.live()
    live = a.live()
    assert len(live) == 300 and len(a.deleted) == 3
    quarters = {(e.hireDate.year, (e.hireDate.month - 1) // 3) for e in live if e.hireDate.year >= 2025}
    assert len(quarters) >= 7  # hires in every quarter since 2025
    leavers = [e for e in live if e.terminationDate]
    ended = [e.terminationDate for e in leavers if e.terminationDate]
    assert {(d.year, (d.month - 1) // 3) for d in ended} >= {
        (2025, 0), (2025, 1), (2025, 2), (2025, 3), (2026, 0), (2026, 1), (2026, 2)}
    assert {e.terminationType for e in leavers} == {VOLUNTARY_TYPE, INVOLUNTARY_TYPE, RETIREMENT_TYPE}
    assert any(e.dateOfBirth is None for e in live) and any(e.payRate is None for e in live)
    assert (live[0].firstName, live[0].lastName, live[1].lastName) == ("Anna", "Müller", "O'Brien")
    stamps = [e.lastChanged for e in live]
    assert max(stamps) < a.now and len(stamps) > len(set(stamps))  # a bulk import shares one second


def test_the_sandbox_speaks_bamboohr(box: BambooHrSandbox) -> None:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(box.cert_path)
    s.auth = (box.api_key, "x")
    url = box.base_url
    report = {"fields": ["firstName", "noSuchField", "payRate"]}
    answer = s.post(url + "reports/custom?format=JSON&onlyCurrent=false", json=report).json()
    assert [f["id"] for f in answer["fields"]] == ["firstName", "payRate"]  # unknown ids silently left out
    assert answer["employees"][0] == {"id": "1", "firstName": "Anna",
                                      "payRate": box.org.report_value(box.org.live()[0], "payRate", False)}
    as_xml = s.post(url + "reports/custom?format=JSON", data=b'{"fields": []}',
                    headers={"Content-Type": "application/json; charset=UTF-8"})
    assert as_xml.status_code == 400 and as_xml.headers["X-BambooHR-Error-Message"] == "Malformed XML"
    changed = s.get(url + "employees/changed", params={"since": "2026-10-15T00:00:00Z"})
    assert changed.headers["Content-Type"].startswith("text/xml")  # no Accept: XML, as BambooHR does
    box.org.delete(9)
    changed = s.get(url + "employees/changed", params={"since": "2026-10-15T00:00:00Z", "type": "deleted"},
                    headers={"Accept": "application/json"}).json()
    assert changed["employees"]["9"]["action"] == "Deleted" and set(changed["employees"]) == {"9"}
    assert s.get(url + "employees/changed", headers={"Accept": "application/json"}).status_code == 400
    unauthorized = requests.get(url + "meta/fields", verify=str(box.cert_path), auth=("nope", "x"))
    assert unauthorized.status_code == 401 and "Basic" in unauthorized.headers["WWW-Authenticate"]
    box.faults.throttle(times=1, retry_after=12)
    throttled = s.get(url + "meta/fields", headers={"Accept": "application/json"})
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "12")
    box.faults.unavailable(times=1)
    down = s.get(url + "meta/fields")
    assert down.status_code == 503 and "Retry-After" not in down.headers
    assert requests.get(box.base_url.replace("/acme/", "/other/") + "meta/fields", verify=str(box.cert_path),
                        auth=(box.api_key, "x")).status_code == 404
    s.close()


# -- applicant tracking: applications and jobs -----------------------------------------------------------


def ats_spec(report: str = "applications", fields: tuple[str, ...] | None = None, **more: Any) -> StreamSpec:
    return StreamSpec(name=report, source="people", primary_key="id", fields=fields,
                      timezone="Europe/Berlin", options={"report": report}, **more)


def test_applications_are_read_page_by_page_with_the_hire_date_of_each_hire(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    box.app.applications_page_size = 40
    conn = connect()
    df = read_all(conn, ats_spec())
    ats, berlin = box.ats, ZoneInfo("Europe/Berlin")
    assert list(df["id"]) == sorted(ats.applications)
    hired = {i for i, a in ats.applications.items() if a.status == "Hired"}
    pages = -(-len(ats.applications) // 40)
    assert pages > 1 and conn.api_calls == pages + len(hired) + 1  # the pages, one per hire, the jobs
    listed = box.requests.matching("applicant_tracking/applications")[:pages]
    assert [r.query["page"] for r in listed] == [[str(n)] for n in range(1, pages + 1)]
    assert all(r.query["applicationStatus"] == ["ALL"] and r.query["jobStatusGroups"] == ["ALL"]
               for r in listed)  # every application, hired and rejected ones too, of every job
    for row in df.to_dict("records"):
        a = ats.applications[int(row["id"])]
        job = ats.jobs[a.jobId]
        assert row["appliedDate"] == a.appliedDate.astimezone(berlin).date()
        assert row["hiredDate"] == (a.statusChanged.astimezone(berlin).date() if a.id in hired else None)
        assert (row["status"], row["jobId"], row["jobTitle"], row["department"]) == (
            a.status, job.id, job.title, job.department)
        assert row["jobOpenedDate"] == job.postedDate.astimezone(berlin).date()
        assert (row["firstName"], row["lastName"]) == (a.firstName, a.lastName)


def test_only_the_calls_the_kept_fields_need_are_made(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    conn = connect()
    df = read_all(conn, ats_spec(fields=("appliedDate", "status")))
    assert list(df.columns) == ["id", "appliedDate", "status"]
    assert conn.api_calls == -(-len(box.ats.applications) // box.app.applications_page_size)  # pages only


def test_jobs_are_one_call(box: BambooHrSandbox, connect: Callable[..., HrConnector]) -> None:
    conn = connect()
    df = read_all(conn, ats_spec("jobs"))
    assert conn.api_calls == 1 and list(df["id"]) == sorted(box.ats.jobs)
    assert box.requests[-1].query == {"statusGroups": ["ALL"]}
    assert {j.status for j in box.ats.jobs.values()} >= {"Filled", "Open"}


def test_throttling_and_outages_on_the_ats_are_waited_out(
    box: BambooHrSandbox, connect: Callable[..., HrConnector], clock: VirtualClock
) -> None:
    box.faults.throttle(times=1, retry_after=4, path_contains="applicant_tracking/applications")
    box.faults.throttle(times=1, status=503, retry_after=2, path_contains="applicant_tracking/jobs")
    df = read_all(connect(), ats_spec())
    assert len(df) == len(box.ats.applications)
    assert clock.sleeps == [2.0, 4.0]  # the jobs (read first), then the first page of applications
    statuses = [r.status for r in box.requests]
    assert (statuses[:4], statuses.count(429), statuses.count(503)) == ([503, 200, 429, 200], 1, 1)


def test_an_ats_outage_fails_as_transient_and_a_refused_key_at_once(
    box: BambooHrSandbox, connect: Callable[..., HrConnector]
) -> None:
    box.faults.unavailable(times=None, path_contains="applicant_tracking")
    with pytest.raises(SourceError, match="HTTP 503") as exc:
        read_all(connect(retries=2), ats_spec())
    assert exc.value.transient
    box.faults.clear()
    box.faults.reject_key()
    with pytest.raises(SourceError, match="refused the API key") as exc:
        read_all(connect(), ats_spec())
    assert not exc.value.transient and box.api_key not in error_texts(exc.value)


def test_ats_streams_take_no_cursor_and_know_their_fields(connect: Callable[..., HrConnector]) -> None:
    conn = connect()
    with pytest.raises(ConfigError, match="no change cursor"):
        conn.schema(ats_spec(cursor="appliedDate"))
    with pytest.raises(ConfigError, match="did you mean 'hiredDate'"):
        conn.schema(ats_spec(fields=("hireDate",)))
    schema = conn.schema(ats_spec())
    assert schema.get("appliedDate").type is FieldType.DATE  # type: ignore[union-attr]
    assert schema.get("hiredDate").type is FieldType.DATE  # type: ignore[union-attr]
