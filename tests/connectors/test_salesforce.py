"""The Salesforce connector through the real simple-salesforce client, against the loopback sandbox.

Expected values come from the sandbox org's own records (``box.org``), never from the connector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from connectors.base import StreamSpec, Watermark
from connectors.salesforce import SalesforceConnector
from okrsync.errors import ConfigError, SourceError
from okrsync.sandboxes.salesforce import SalesforceSandbox
from okrsync.schema import FieldType

FIELDS = ("Amount", "StageName", "CloseDate", "IsWon", "Account.Name", "CurrencyIsoCode", "SystemModstamp")
WITH_USD = (*FIELDS, "Amount_USD")
AT_CLOSE = {"fields": ["Amount"], "date_field": "CloseDate"}


@pytest.fixture
def box(make_salesforce_sandbox: Callable[..., SalesforceSandbox]) -> SalesforceSandbox:
    return make_salesforce_sandbox(opportunities=1500, seed=11)


@pytest.fixture
def connect(
    box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SalesforceConnector]]:
    """``connect(**options)``: a password-auth connector on the sandbox (closed after the test)."""
    c = box.credentials
    monkeypatch.setenv("SF_PASSWORD", c.password)
    monkeypatch.setenv("SF_TOKEN", c.security_token)
    opened: list[SalesforceConnector] = []

    def make(**options: Any) -> SalesforceConnector:
        base = {
            "auth": "password",
            "username": c.username,
            "password_env": "SF_PASSWORD",
            "security_token_env": "SF_TOKEN",
            "login_url": box.instance_url,
            "ca_bundle": str(box.cert_path),
            "page_size": 200,
            "retry_backoff_seconds": 0,
            "bulk_poll_seconds": 0.01,
        }
        conn = SalesforceConnector("crm", base | options, Path.cwd(), sleep=lambda s: None)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def spec(fields: tuple[str, ...] | None = FIELDS, **options: Any) -> StreamSpec:
    return StreamSpec(name="opportunities", source="crm", primary_key="Id", cursor="SystemModstamp",
                      fields=fields, options={"object": "Opportunity", **options})


def read_all(conn: SalesforceConnector, stream: StreamSpec, since: Watermark | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream, since))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def after_last(df: pd.DataFrame) -> Watermark:
    """The position after the last row read (what a sync commits)."""
    last = df.iloc[-1]
    return Watermark(last["SystemModstamp"].to_pydatetime(), (last["Id"],))


def live(box: SalesforceSandbox, obj: str = "Opportunity") -> dict[str, dict[str, Any]]:
    return {r["Id"]: r for r in box.org.records(obj)}


def money(v: float | None) -> Decimal | None:
    return None if v is None else Decimal(repr(v)).quantize(Decimal("0.01"))


def test_schema_types_come_from_describe(connect: Callable[..., SalesforceConnector]) -> None:
    schema = connect().schema(spec(WITH_USD, convert_currency=AT_CLOSE))
    types = {f.name: (f.type, f.scale) for f in schema.fields}
    assert types["Amount"] == (FieldType.DECIMAL, 2)
    assert types["Amount_USD"] == (FieldType.DECIMAL, 2)
    assert types["CloseDate"] == (FieldType.DATE, None)
    assert types["SystemModstamp"] == (FieldType.DATETIME, None)
    assert types["IsWon"] == (FieldType.BOOLEAN, None)
    assert types["Account.Name"] == (FieldType.STRING, None)


def test_full_read_is_every_live_record_with_exact_values(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    conn = connect()
    df = read_all(conn, spec())
    org = live(box)
    assert sorted(df["Id"]) == sorted(org)  # order, unique keys, ties, lookback: test_contract_salesforce.py
    accounts = live(box, "Account")
    for row in df.astype(object).where(df.notna(), None).to_dict("records"):
        rec = org[row["Id"]]
        assert row["Amount"] == money(rec["Amount"])
        assert row["CloseDate"] == rec["CloseDate"]
        assert row["IsWon"] == rec["IsWon"]
        assert row["SystemModstamp"].to_pydatetime() == rec["SystemModstamp"].replace(tzinfo=None)
        parent = accounts.get(rec["AccountId"]) if rec["AccountId"] else None
        assert row["Account.Name"] == (parent["Name"] if parent else None)
    # 1,500 rows minus deleted ones in pages of 200, plus the two describes
    pages = -(-len(df) // 200)
    assert conn.api_calls == pages + 2


def test_amounts_are_converted_at_the_dated_rate_of_the_close_date(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    df = read_all(connect(), spec(WITH_USD, convert_currency=AT_CLOSE))
    org = live(box)
    eur = 0
    for rid, amount_usd in zip(df["Id"], df["Amount_USD"], strict=True):
        rec = org[rid]
        if rec["Amount"] is None:
            assert amount_usd is None
            continue
        rate = Decimal(repr(box.org.conversion_rate(rec["CurrencyIsoCode"], rec["CloseDate"])))
        expected = (money(rec["Amount"]) / rate).quantize(Decimal("0.01"))  # type: ignore[operator]
        assert amount_usd == expected
        eur += rec["CurrencyIsoCode"] == "EUR"
    assert eur > 100  # the org really is multi-currency


def test_user_supplied_rates_and_a_missing_rate(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    stream = spec((*FIELDS, "Amount_USD"), convert_currency={"fields": ["Amount"]})
    df = read_all(connect(rates={"EUR": "0.5"}), stream)
    eur = df[df["CurrencyIsoCode"] == "EUR"].dropna(subset=["Amount"])
    assert list(eur["Amount_USD"]) == [a * 2 for a in eur["Amount"]]
    with pytest.raises(SourceError, match=r"record 006\w+: no conversion rate for EUR"):
        read_all(connect(rates={"JPY": "150"}), stream)


def test_incremental_read_returns_what_changed_and_deleted_ids(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    conn = connect()
    wm = after_last(read_all(conn, spec()))
    box.org.clock.advance(minutes=5)
    ids = sorted(live(box))[:5]
    box.org.update("Opportunity", ids[0], Amount=1234.5)
    box.org.update("Opportunity", ids[1], StageName="Closed Won")
    box.org.delete("Opportunity", ids[2])
    calls = conn.api_calls
    changed = read_all(conn, spec(), wm)
    assert sorted(changed["Id"]) == sorted(ids[:2])
    assert changed.set_index("Id").loc[ids[0], "Amount"] == Decimal("1234.50")
    gone = pd.concat(list(conn.deleted(spec(), wm)))
    assert list(gone["Id"]) == [ids[2]]
    assert conn.api_calls - calls == 2  # one query page, one queryAll
    # the deletion query asks queryAll for IsDeleted records changed since the watermark
    soql = [r.soql for r in box.requests if "/queryAll" in r.path]
    assert soql and "IsDeleted = true" in soql[-1] and "SystemModstamp >=" in soql[-1]


def test_large_extractions_switch_to_one_bulk_job_with_the_same_rows(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    rest = read_all(connect(), spec())
    conn = connect(bulk_threshold=500, bulk_page_size=400)
    bulk = read_all(conn, spec())
    assert conn.bulk_jobs == 1
    pd.testing.assert_frame_equal(bulk, rest)
    assert box.requests.count("/jobs/query", "POST") == 1


def test_a_failed_bulk_job_falls_back_to_rest(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    rest = read_all(connect(), spec())
    box.faults.fail_bulk_jobs()
    conn = connect(bulk_threshold=500)
    pd.testing.assert_frame_equal(read_all(conn, spec()), rest)
    assert any("Bulk API 2.0 job failed" in n for n in conn.notes)


class _Once(dict[int, str]):
    """Bulk page damage that hits only the first download of the page."""

    def get(self, key: Any, default: Any = None) -> Any:
        return self.pop(key, default)


@pytest.mark.parametrize("mode", ["abort", "truncate"])
def test_a_damaged_bulk_page_is_fetched_again(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector], mode: str
) -> None:
    rest = read_all(connect(), spec())
    box.faults.bulk_results_damage = _Once({2: mode})
    conn = connect(bulk_threshold=500, bulk_page_size=400)
    pd.testing.assert_frame_equal(read_all(conn, spec()), rest)
    assert box.requests.count("/results") == 5  # 4 pages, page 2 twice


def test_a_bulk_page_that_stays_short_fails_the_read(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    conn = connect(bulk_threshold=500, bulk_page_size=400, retries=1)
    box.faults.damage_bulk_results(page=2, mode="truncate")  # every download of page 2 is cut
    with pytest.raises(SourceError, match="Bulk result page held") as exc:
        read_all(conn, spec())
    assert exc.value.transient


def test_503_mid_pagination_is_retried_and_gives_the_same_rows(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    golden = read_all(connect(), spec())
    box.faults.http_error_on_query_page(3)
    pd.testing.assert_frame_equal(read_all(connect(), spec()), golden)


def test_503_forever_fails_transient_after_the_configured_tries(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    conn = connect(retries=2)
    conn.schema(spec())
    box.faults.http_error_on_query_page(3, always=True)
    before = box.requests.count("/query")
    with pytest.raises(SourceError, match="did not answer after 3 tries") as exc:
        read_all(conn, spec())
    assert exc.value.transient
    assert box.requests.count("/query") - before == 2 + 3  # pages 1-2, then page 3 three times


def test_a_bad_gateway_is_retried(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    golden = read_all(connect(), spec())
    conn = connect()
    conn.schema(spec())
    box.faults.http_error_on_request(2, status=502, error_code="BAD_GATEWAY", message="bad gateway")
    pd.testing.assert_frame_equal(read_all(conn, spec()), golden)


def test_an_expired_session_logs_in_once_more(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    golden = read_all(connect(), spec())
    conn = connect()
    conn.schema(spec())
    box.faults.expire_session_after(3)
    pd.testing.assert_frame_equal(read_all(conn, spec()), golden)
    assert conn.client.logins == 2


def test_a_refused_re_login_says_to_re_authenticate(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    conn = connect()
    conn.schema(spec())
    box.faults.expire_session_after(1)
    box.faults.reject_token_requests()
    with pytest.raises(SourceError, match="refused the login") as exc:
        read_all(conn, spec())
    assert "re-authenticate the integration user" in str(exc.value)
    assert not exc.value.transient
    assert box.credentials.password not in str(exc.value)


def test_session_auth_cannot_refresh(box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_SID", box.new_session())
    conn = SalesforceConnector("crm", {"auth": "session", "session_id_env": "SF_SID",
                                       "instance_url": box.instance_url, "ca_bundle": str(box.cert_path)},
                               Path.cwd())
    assert conn.schema(spec()).get("Amount") is not None
    box.faults.expire_session_after(0)
    with pytest.raises(SourceError, match="session expired"):
        read_all(conn, spec())
    conn.close()


def test_the_api_budget_guard_stops_before_the_next_call(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    box.set_api_budget(1000, used=796)
    conn = connect(max_api_share=0.8)
    with pytest.raises(SourceError, match=r"spare the org's daily API budget \(800/1,000") as exc:
        read_all(conn, spec())
    assert not exc.value.transient
    assert conn.api_calls == 4  # two describes and two pages, then no more


def test_an_exhausted_api_limit_is_not_retried(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    box.set_api_budget(100, used=100)
    conn = connect()
    with pytest.raises(SourceError, match="API limit is exhausted"):
        conn.schema(spec())
    assert conn.api_calls == 1


def test_an_expired_query_locator_resumes_after_the_last_row(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    golden = read_all(connect(), spec())
    box.faults.expire_locator_on_page(4)
    conn = connect()
    pd.testing.assert_frame_equal(read_all(conn, spec()), golden)
    assert any("query locator expired" in n for n in conn.notes)


def test_where_is_pushed_down_as_quoted_soql(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    where = {"and": [{"field": "StageName", "op": "in", "value": ["Closed Won"]},
                     {"field": "Amount", "op": ">=", "value": 1000}]}
    df = read_all(connect(), spec(where=where))
    expected = {i for i, r in live(box).items()
                if r["StageName"] == "Closed Won" and r["Amount"] is not None and r["Amount"] >= 1000}
    assert set(df["Id"]) == expected
    soql = [r.soql for r in box.requests if r.soql and "StageName" in r.soql][-1]
    assert "(StageName IN ('Closed Won') AND Amount >= 1000)" in soql
    # a value that tries to break out of its quotes stays one string
    evil = {"field": "Name", "op": "=", "value": "x' OR Name != '"}
    assert read_all(connect(), spec(where=evil)).empty
    assert "Name = 'x\\' OR Name != \\''" in [r.soql for r in box.requests if r.soql][-1]


def test_bad_names_are_config_errors_with_suggestions(connect: Callable[..., SalesforceConnector]) -> None:
    conn = connect()
    with pytest.raises(ConfigError, match=r"Opportunity has no field 'Amout' \(did you mean 'Amount'\?\)"):
        conn.schema(spec(fields=("Amout",)))
    with pytest.raises(ConfigError, match="where: Opportunity has no field 'Stage'"):
        conn.schema(spec(where={"field": "Stage", "op": "=", "value": "x"}))
    with pytest.raises(ConfigError, match="no relationship 'Acount'"):
        conn.schema(spec(fields=("Acount.Name",)))
    with pytest.raises(ConfigError, match="the org has no object 'Opportunities'"):
        conn.schema(StreamSpec(name="x", source="crm", primary_key="Id", options={"object": "Opportunities"}))
    with pytest.raises(ConfigError, match="primary key of a Salesforce stream is Id"):
        conn.schema(StreamSpec(name="x", source="crm", primary_key="Name", options={"object": "Opportunity"}))


def test_options_are_checked_and_secrets_stay_out_of_errors(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="auth password needs exactly one of password_env"):
        SalesforceConnector("crm", {"auth": "password", "username": "u"}, Path.cwd())
    with pytest.raises(ConfigError, match="auth session needs instance_url"):
        SalesforceConnector("crm", {"auth": "session", "session_id_env": "X"}, Path.cwd())
    with pytest.raises(ConfigError, match="login_url: Value error, must be https"):
        SalesforceConnector("crm", {"auth": "session", "session_id_env": "X", "instance_url": "https://a",
                                    "login_url": "http://evil"}, Path.cwd())
    # a refused password stays out of the error: the connector contract (test_contract_salesforce.py)


def test_record_links_open_the_record_in_lightning(connect: Callable[..., SalesforceConnector],
                                                    box: SalesforceSandbox) -> None:
    assert connect().record_url(spec(), "006000000000001AAA") == (
        f"{box.instance_url}/lightning/r/Opportunity/006000000000001AAA/view")
    conn = SalesforceConnector("crm", {"auth": "password", "username": "u", "password_env": "P",
                                       "domain": "acme.my"}, Path.cwd())
    assert conn.record_url(spec(), "006X") == "https://acme.my.salesforce.com/lightning/r/Opportunity/006X/view"


def test_dates_and_datetimes_are_typed(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    df = read_all(connect(), spec())
    assert all(isinstance(v, date) for v in df["CloseDate"].dropna())
    assert str(df["SystemModstamp"].dtype).startswith("datetime64")
    assert isinstance(df["Amount"].dropna().iloc[0], Decimal)
    assert datetime(2024, 1, 1) <= df["SystemModstamp"].min().to_pydatetime()


def test_records_sharing_one_modstamp_across_pages_are_read_once(
    box: SalesforceSandbox, connect: Callable[..., SalesforceConnector]
) -> None:
    conn = connect()
    wm = after_last(read_all(conn, spec()))
    box.org.clock.advance(minutes=1)  # a mass update: 900 records, one SystemModstamp, over 5 pages
    ids = sorted(live(box))[:900]
    for rid in ids:
        box.org.update("Opportunity", rid, Amount=1.0)
    box.faults.expire_locator_on_page(3)  # and the cursor is lost in the middle of them
    changed = read_all(conn, spec(), wm)
    assert sorted(changed["Id"]) == ids


def test_calls_to_one_org_are_capped_across_streams(box: SalesforceSandbox,
                                                    connect: Callable[..., SalesforceConnector]) -> None:
    import threading
    import time

    conns = [connect(max_parallel_calls=2) for _ in range(5)]  # five streams syncing at once
    inside, peak, lock = 0, 0, threading.Lock()

    def call(sf: Any) -> Any:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.05)
        result = sf.query("SELECT Id FROM Opportunity LIMIT 1")
        with lock:
            inside -= 1
        return result

    threads = [threading.Thread(target=c.client.call, args=("x", call)) for c in conns for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2


def test_a_wrong_password_shows_the_org_s_reason_not_a_template(
    connect: Callable[..., SalesforceConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    from okrsync.sandboxes.salesforce.auth import INVALID_LOGIN

    monkeypatch.setenv("SF_PASSWORD", "wrong-password")
    with pytest.raises(SourceError, match="refused the login") as exc:
        connect().schema(spec())
    assert f"INVALID_LOGIN: {INVALID_LOGIN}" in str(exc.value)
    assert "{content}" not in str(exc.value) and "wrong-password" not in str(exc.value)
