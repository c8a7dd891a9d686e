"""The connector kit on its own: the retrying session against a loopback API, the incremental window
(with a property test of the tie-break), value conversion and options errors. Waits are recorded, never
slept; expected values are written out here, not computed by the kit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from connectors.base import StreamSpec, Watermark
from connectors.kit.cursor import Incremental
from connectors.kit.http import (
    ApiSession,
    FatalApiError,
    RetriableApiError,
    RetryAfterTooLong,
    RetryPolicy,
    Verdict,
    verdict,
)
from connectors.kit.options import validated
from connectors.kit.values import Unconvertible, boolean, exact_decimal, naive_utc, records_frame
from connectors.secrets import Secrets
from okrsync.errors import ConfigError, SourceError, did_you_mean
from okrsync.schema import Field, FieldType
from tests.connectors.helpdesk_api import HelpdeskApi

T0 = datetime(2026, 10, 1, 9, 0)


@pytest.fixture
def api() -> Iterator[HelpdeskApi]:
    server = HelpdeskApi(tickets=10).start()
    try:
        yield server
    finally:
        server.stop()


def session(sleeps: list[float], **policy: float) -> ApiSession:
    return ApiSession(RetryPolicy(**{"retries": 3, "backoff_seconds": 1.0, **policy}, sleep=sleeps.append))  # type: ignore[arg-type]


def auth(api: HelpdeskApi) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}"}


# -- the session ----------------------------------------------------------------------------------


def test_retriable_answers_are_retried_waiting_what_retry_after_asks(api: HelpdeskApi) -> None:
    sleeps: list[float] = []
    api.fail("tickets", 429, times=1, retry_after=7)
    api.fail("tickets", 503, times=1)  # no Retry-After: backoff, 1 to 1.5 × 2 s on the second retry
    data = session(sleeps).fetch("GET", api.url + "tickets", "GET tickets", headers=auth(api))
    assert len(data["tickets"]) == 10 and [r.rsplit(" ", 1)[1] for r in api.requests] == ["429", "503", "200"]
    assert sleeps[0] == 7 and 2 <= sleeps[1] <= 3


def test_fatal_answers_are_not_retried_and_tries_running_out_is_transient(api: HelpdeskApi) -> None:
    sleeps: list[float] = []
    with pytest.raises(FatalApiError, match="GET tickets: HTTP 401") as fatal:
        session(sleeps).fetch("GET", api.url + "tickets", "GET tickets")
    assert not fatal.value.transient and sleeps == [] and len(api.requests) == 1
    api.fail("tickets", 502)
    with pytest.raises(RetriableApiError, match="HTTP 502 after 4 tries") as retriable:
        session(sleeps).fetch("GET", api.url + "tickets", "GET tickets", headers=auth(api))
    assert retriable.value.transient and len(sleeps) == 3 and len(api.requests) == 5


def test_a_retry_after_beyond_the_policy_is_not_waited_out(api: HelpdeskApi) -> None:
    sleeps: list[float] = []
    api.fail("tickets", 503, retry_after=900)
    with pytest.raises(RetryAfterTooLong):
        session(sleeps, max_retry_after_seconds=300).get(api.url + "tickets")
    with pytest.raises(RetriableApiError, match="asked to wait 900 s, more than 300 s"):
        session(sleeps).fetch("GET", api.url + "tickets", "GET tickets")
    assert sleeps == []


def test_network_errors_are_retried_and_final_answers_are_not(api: HelpdeskApi) -> None:
    sleeps: list[float] = []
    with pytest.raises(RetriableApiError, match=r"no answer after 4 tries \(ConnectionError\)"):
        session(sleeps).fetch("GET", "http://127.0.0.1:9/api/tickets", "GET tickets")
    assert len(sleeps) == 3
    api.fail("tickets", 500)
    last_word = ApiSession(RetryPolicy(sleep=sleeps.append), final=lambda r: r.status_code == 500)
    assert last_word.get(api.url + "tickets").status_code == 500 and len(api.requests) == 1


def test_verdicts_follow_the_singer_sdk_split() -> None:
    def answer(status: int) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        return r

    assert [verdict(answer(s)) for s in (200, 204, 400, 401, 404, 429, 500, 503)] == [
        Verdict.OK, Verdict.OK, Verdict.FATAL, Verdict.FATAL, Verdict.FATAL, Verdict.RETRY, Verdict.RETRY,
        Verdict.RETRY]
    assert verdict(error=requests.exceptions.ChunkedEncodingError()) is Verdict.RETRY
    assert verdict(error=requests.exceptions.SSLError()) is Verdict.FATAL
    assert verdict(error=requests.exceptions.InvalidURL()) is Verdict.FATAL


def test_retry_logs_name_the_request_not_its_secrets(api: HelpdeskApi,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="connectors.kit.http")
    secrets, sleeps = Secrets(), []  # type: ignore[var-annotated]
    token = secrets.keep(api.token)
    api.fail("tickets", 503, times=1)
    s = ApiSession(RetryPolicy(sleep=sleeps.append), label="source 'desk'", secrets=secrets)
    s.get(f"{api.url}{token}/tickets", headers=auth(api))
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "connectors.kit.http")
    assert "source 'desk': HTTP 503 on GET /api/***/tickets; waiting" in ours and token not in ours


def test_attempts_retry_a_block_with_the_policy_s_waits() -> None:
    sleeps: list[float] = []
    tries = []
    with pytest.raises(ValueError, match="short 3"):
        for attempt in RetryPolicy(retries=2, sleep=sleeps.append).attempts(ValueError):
            with attempt:
                tries.append(1)
                raise ValueError(f"short {len(tries)}")
    assert len(tries) == 3 and len(sleeps) == 2


# -- the incremental window -----------------------------------------------------------------------


def stream(**kw: object) -> StreamSpec:
    return StreamSpec(name="s", source="x", primary_key=("k",), cursor="c", **kw)  # type: ignore[arg-type]


def test_the_window_of_each_kind_of_watermark() -> None:
    assert Incremental.of(stream(), None).full
    exact = Incremental.of(stream(), Watermark("2026-10-01T09:00:00", (5,)), FieldType.DATETIME)
    assert exact.exact and exact.start == T0 and exact.position == (T0, 5)
    assert exact.keeps(T0, (6,)) and not exact.keeps(T0, (5,))
    assert exact.keeps(T0 + timedelta(seconds=1), (1,))
    back = Incremental.of(stream(lookback_seconds=300), Watermark(T0, (5,)))
    assert back.rereads and back.start == T0 - timedelta(minutes=5)
    assert back.keeps(T0 - timedelta(minutes=1), (1,))
    day = Incremental.of(stream(lookback_seconds=300), Watermark(date(2026, 10, 2), (5,)), FieldType.DATE)
    assert day.start == date(2026, 10, 1)  # midnight less five minutes is the day before
    reread = Incremental.of(stream(), Watermark(T0, (5,), reread_from=T0 - timedelta(hours=1)))
    assert reread.start == T0 - timedelta(hours=1) and not reread.exact
    nulls = Incremental.of(stream(), Watermark(None, (2,)), FieldType.DATETIME)
    assert nulls.null_cursor and nulls.keeps(None, (3,)) and not nulls.keeps(None, (2,))
    assert nulls.keeps(T0, (1,))
    assert not Incremental.of(StreamSpec(name="s", source="x", primary_key="k"), Watermark(T0, (1,))).exact


rows = st.lists(st.tuples(st.sampled_from([None, 0, 1, 2]), st.integers(0, 30)), min_size=1, max_size=40,
                unique_by=lambda r: r[1])


@settings(max_examples=150, deadline=None)
@given(rows=rows, cut=st.integers(0, 39), batch=st.integers(1, 7))
def test_resuming_after_any_row_gives_exactly_the_rest(rows: list[tuple[int | None, int]], cut: int,
                                                       batch: int) -> None:
    """The (cursor, key) tie-break, as a property: NULL cursors, ties and batch sizes of every kind."""
    df = pd.DataFrame({"k": pd.Series([k for _, k in rows], dtype="Int64"),
                       "c": pd.Series([None if c is None else T0 + timedelta(minutes=c) for c, _ in rows],
                                      dtype="datetime64[us]")})
    full = pd.concat(list(Incremental.of(stream(), None).frames(df, batch)), ignore_index=True)
    want = sorted(rows, key=lambda r: (r[0] is not None, r[0] or 0, r[1]))
    assert [int(k) for k in full["k"]] == [k for _, k in want]
    last = full.iloc[min(cut, len(full) - 1)]
    mark = Watermark(None if pd.isna(last["c"]) else last["c"].to_pydatetime(), (int(last["k"]),))
    rest = Incremental.of(stream(), Watermark.from_json(mark.to_json()), FieldType.DATETIME).select(df)
    assert [int(k) for k in rest["k"]] == [k for _, k in want][min(cut, len(full) - 1) + 1:]


# -- values, options, suggestions -----------------------------------------------------------------


def test_points_in_time_become_naive_utc() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    for value in ("2026-06-15T12:00:00.000+0000", "2026-06-15T12:00:00Z", "2026-06-15T14:00:00+02:00",
                  datetime(2026, 6, 15, 14, tzinfo=berlin), pd.Timestamp("2026-06-15 12:00")):
        assert naive_utc(value) == datetime(2026, 6, 15, 12)
    assert naive_utc(datetime(2026, 6, 15, 14), berlin) == datetime(2026, 6, 15, 12)
    assert naive_utc(date(2026, 1, 2), berlin) == datetime(2026, 1, 1, 23)
    with pytest.raises(Unconvertible):
        naive_utc("15/06/2026")


def test_decimals_are_exact_and_booleans_take_the_usual_words() -> None:
    assert exact_decimal(0.1, 2) == Decimal("0.10") and exact_decimal(b"1142.405", 2) == Decimal("1142.40")
    assert exact_decimal("2.675", 2) == Decimal("2.68") and exact_decimal(7) == Decimal(7)
    for bad, why in ((float("nan"), "finite"), ("1,5", "not a number"), (Decimal("1e90"), "too large")):
        with pytest.raises(Unconvertible, match=why):
            exact_decimal(bad, 2)
    with pytest.raises(Unconvertible, match="more than 2 decimal places"):
        exact_decimal("1.005", 2, strict=True)
    assert [boolean(v) for v in ("TRUE", " f", "yes", "N", 1, 0.0, True)] == [True, False, True, False, True,
                                                                             False, True]
    assert boolean(2, any_number=True) is True
    for bad in (2, "maybe"):
        with pytest.raises(Unconvertible):
            boolean(bad)


def test_records_frames_name_the_record_and_field_never_the_value() -> None:
    fields = (Field("id", FieldType.INTEGER), Field("pay", FieldType.DECIMAL, 2))
    frame = records_frame([{"id": 1, "pay": 0.1}, {"id": "2"}], fields, where="source 'x'", key="id")
    assert frame["pay"].tolist()[0] == Decimal("0.10") and pd.isna(frame["pay"].iloc[1])
    assert str(frame["id"].dtype) == "Int64"
    with pytest.raises(SourceError, match="record 7: field 'pay' does not hold a decimal") as exc:
        records_frame([{"id": 7, "pay": "secret-salary"}], fields, where="source 'x'", key="id")
    assert "secret-salary" not in str(exc.value)


def test_options_errors_name_the_key_not_the_value_and_suggestions_are_one_rule() -> None:
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
        token_env: str

    with pytest.raises(ConfigError, match=r"source 'x': token_env: Field required; tokn: Extra inputs are "
                                          r"not permitted") as exc:
        validated(Options, {"tokn": "s3cret"}, where="source 'x'", hint="see the docs")
    assert "s3cret" not in str(exc.value)
    assert did_you_mean("AMOUNT", ["Amount", "account"]) == " (did you mean 'Amount'?)"  # case first
    assert did_you_mean("Amout", ["Amount", "Account"]) == " (did you mean 'Amount', 'Account'?)"
    assert did_you_mean("tot", ["total_amount"], prefix=True) == " (did you mean 'total_amount'?)"
    assert did_you_mean("zzz", ["Amount"]) == ""
