"""Periods: every label form, fiscal variants, DST-correct bounds and the current period.

Expected UTC instants are written out from the zones' published offsets (e.g. Berlin is UTC+2 in
summer time, UTC+1 otherwise), not computed with zoneinfo.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.periods import ACCEPTED_FORMS, Period, current_period, naive_utc, parse_period


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2026-Q1", "2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q4", "2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-q2", "2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
        ("2026-H1", "2026-H1", date(2026, 1, 1), date(2026, 7, 1)),
        ("2026-h2", "2026-H2", date(2026, 7, 1), date(2027, 1, 1)),
        ("2026", "2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-11", "2026-11", date(2026, 11, 1), date(2026, 12, 1)),
        ("2026-12", "2026-12", date(2026, 12, 1), date(2027, 1, 1)),
        ("2028-02", "2028-02", date(2028, 2, 1), date(2028, 3, 1)),
        ("2026-10-01..2026-12-31", "2026-10-01..2026-12-31", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-10-05 .. 2026-10-05", "2026-10-05..2026-10-05", date(2026, 10, 5), date(2026, 10, 6)),
        ("  2026-q3  ", "2026-Q3", date(2026, 7, 1), date(2026, 10, 1)),
    ],
)
def test_calendar_forms(text: str, label: str, start: date, end: date) -> None:
    p = parse_period(text)
    assert (p.label, p.start, p.end, p.timezone) == (label, start, end, "UTC")


def test_calendar_forms_ignore_fiscal_settings() -> None:
    p = parse_period("2026-Q1", fiscal_year_start_month=4, fiscal_year_named_by="start")
    assert (p.start, p.end) == (date(2026, 1, 1), date(2026, 4, 1))


@pytest.mark.parametrize(
    ("text", "named_by", "label", "start", "end"),
    [
        ("FY2027", "end", "FY2027", date(2026, 4, 1), date(2027, 4, 1)),
        ("FY2027-Q1", "end", "FY2027-Q1", date(2026, 4, 1), date(2026, 7, 1)),
        ("fy2027-q4", "end", "FY2027-Q4", date(2027, 1, 1), date(2027, 4, 1)),
        ("FY2027-H2", "end", "FY2027-H2", date(2026, 10, 1), date(2027, 4, 1)),
        ("Fy2027-h1", "end", "FY2027-H1", date(2026, 4, 1), date(2026, 10, 1)),
        ("FY2026", "start", "FY2026", date(2026, 4, 1), date(2027, 4, 1)),
        ("FY2026-Q1", "start", "FY2026-Q1", date(2026, 4, 1), date(2026, 7, 1)),
        ("FY2026-Q3", "start", "FY2026-Q3", date(2026, 10, 1), date(2027, 1, 1)),
    ],
)
def test_fiscal_forms_april(text: str, named_by: str, label: str, start: date, end: date) -> None:
    p = parse_period(text, fiscal_year_start_month=4, fiscal_year_named_by=named_by)  # type: ignore[arg-type]
    assert (p.label, p.start, p.end) == (label, start, end)


def test_fiscal_year_starting_in_january_is_the_calendar_year_under_both_namings() -> None:
    for named_by in ("end", "start"):
        p = parse_period("FY2026-Q2", fiscal_year_start_month=1, fiscal_year_named_by=named_by)  # type: ignore[arg-type]
        assert (p.start, p.end) == (date(2026, 4, 1), date(2026, 7, 1))


def test_fiscal_year_starting_in_october() -> None:
    # US federal style: FY2027 runs 2026-10-01 .. 2027-09-30; its Q2 is January to March 2027.
    p = parse_period("FY2027-Q2", fiscal_year_start_month=10)
    assert (p.start, p.end) == (date(2027, 1, 1), date(2027, 4, 1))
    year = parse_period("FY2027", fiscal_year_start_month=10)
    assert (year.start, year.end) == (date(2026, 10, 1), date(2027, 10, 1))


@pytest.mark.parametrize(
    ("zone", "text", "start_utc", "end_utc"),
    [
        # Berlin: CEST (UTC+2) from 2026-03-29 to 2026-10-25, CET (UTC+1) otherwise.
        ("Europe/Berlin", "2026-Q2", datetime(2026, 3, 31, 22), datetime(2026, 6, 30, 22)),
        ("Europe/Berlin", "2026-Q4", datetime(2026, 9, 30, 22), datetime(2026, 12, 31, 23)),
        ("Europe/Berlin", "2026-03", datetime(2026, 2, 28, 23), datetime(2026, 3, 31, 22)),
        # Sydney: AEDT (UTC+11) until 2026-04-05 and from 2026-10-04, AEST (UTC+10) between.
        ("Australia/Sydney", "2026-Q2", datetime(2026, 3, 31, 13), datetime(2026, 6, 30, 14)),
        ("Australia/Sydney", "2026-Q4", datetime(2026, 9, 30, 14), datetime(2026, 12, 31, 13)),
        ("Australia/Sydney", "2026-04", datetime(2026, 3, 31, 13), datetime(2026, 4, 30, 14)),
        # Los Angeles: PDT (UTC−7) from 2026-03-08 to 2026-11-01, PST (UTC−8) otherwise.
        ("America/Los_Angeles", "2026-Q4", datetime(2026, 10, 1, 7), datetime(2027, 1, 1, 8)),
        ("America/Los_Angeles", "2026-11", datetime(2026, 11, 1, 7), datetime(2026, 12, 1, 8)),
        ("America/Los_Angeles", "2026-03", datetime(2026, 3, 1, 8), datetime(2026, 4, 1, 7)),
        ("UTC", "2026-Q4", datetime(2026, 10, 1), datetime(2027, 1, 1)),
        ("Asia/Kolkata", "2026", datetime(2025, 12, 31, 18, 30), datetime(2026, 12, 31, 18, 30)),
    ],
)
def test_bounds_are_local_midnights_in_utc(
    zone: str, text: str, start_utc: datetime, end_utc: datetime
) -> None:
    p = parse_period(text, timezone=zone)
    assert p.start_utc() == start_utc
    assert p.end_utc() == end_utc
    assert p.start_utc().tzinfo is None and p.end_utc().tzinfo is None


def test_midnight_skipped_by_dst_starts_the_day_at_its_first_real_instant() -> None:
    # Chile springs forward at 00:00 on 2026-09-06 (UTC−4 → UTC−3): that day begins at 01:00 local,
    # i.e. 04:00 UTC, and lasts 23 hours.
    p = parse_period("2026-09-06..2026-09-06", timezone="America/Santiago")
    assert p.start_utc() == datetime(2026, 9, 6, 4)
    assert p.end_utc() == datetime(2026, 9, 7, 3)


def test_elapsed_fraction_is_linear_in_real_time_across_dst() -> None:
    # Berlin March 2026 loses an hour: 743 hours from 2026-02-28T23:00Z to 2026-03-31T22:00Z.
    p = parse_period("2026-03", timezone="Europe/Berlin")
    start = datetime(2026, 2, 28, 23)
    assert p.elapsed_fraction(start) == 0.0
    assert p.elapsed_fraction(start - timedelta(days=3)) == 0.0
    assert p.elapsed_fraction(start + timedelta(hours=371.5)) == pytest.approx(0.5, abs=1e-12)
    assert p.elapsed_fraction(start + timedelta(hours=74.3)) == pytest.approx(0.1, abs=1e-12)
    assert p.elapsed_fraction(datetime(2026, 3, 31, 22)) == 1.0
    assert p.elapsed_fraction(datetime(2027, 1, 1)) == 1.0


def test_elapsed_fraction_accepts_aware_instants() -> None:
    p = parse_period("2026-Q4", timezone="Europe/Berlin")
    aware = datetime(2026, 10, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))  # = the period start
    assert p.elapsed_fraction(aware) == 0.0
    assert naive_utc(aware) == datetime(2026, 9, 30, 22)


def test_local_date_of_an_instant() -> None:
    p = parse_period("2026-Q4", timezone="Europe/Berlin")
    assert p.local_date(datetime(2026, 9, 30, 21, 59)) == date(2026, 9, 30)
    assert p.local_date(datetime(2026, 9, 30, 22, 0)) == date(2026, 10, 1)


def test_json_round_trip() -> None:
    p = parse_period("FY2027-Q1", timezone="Australia/Sydney", fiscal_year_start_month=4)
    raw = p.to_json()
    assert raw == {
        "label": "FY2027-Q1",
        "start": "2026-04-01",
        "end": "2026-07-01",
        "timezone": "Australia/Sydney",
    }
    assert Period.from_json(raw) == p


def test_period_rejects_empty_range_and_unknown_zone() -> None:
    with pytest.raises(ValueError, match="not before"):
        Period("x", date(2026, 1, 2), date(2026, 1, 2), "UTC")
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        Period("x", date(2026, 1, 1), date(2026, 1, 2), "Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-Q0", "quarters are numbered 1 to 4"),
        ("2026-Q5", "quarters are numbered 1 to 4"),
        ("FY2027-Q5", "quarters are numbered 1 to 4"),
        ("2026-H3", "halves are numbered 1 to 2"),
        ("2026-13", "months are numbered 01 to 12"),
        ("2026-00", "months are numbered 01 to 12"),
        ("2026-12-31..2026-10-01", "the last date is before the first"),
        ("2026-02-30..2026-03-31", "day is out of range"),
        ("9999-Q4", "out of range"),
        ("0000", "out of range"),
        ("", ""),
        ("26-Q4", ""),
        ("2026Q4", ""),
        ("Q4 2026", ""),
        ("2026-Q4 and more", ""),
        ("FY", ""),
        ("2026-1", ""),
        ("2026-W40", ""),
        ("٢٠٢٦", ""),  # Arabic-Indic digits: only ASCII digits are a year
        ("20261001..20261231", ""),
    ],
)
def test_invalid_periods_name_the_accepted_forms(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_period(text)
    message = str(info.value)
    assert message.startswith(repr(text))
    assert why in message
    for form in (
        "2026-Q4",
        "2026-H1",
        "2026-11",
        "FY2027-Q1",
        "FY2027-H2",
        "FY2027",
        "2026-10-01..2026-12-31",
    ):
        assert form in message
    assert ACCEPTED_FORMS in message


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="fiscal_year_start_month must be 1..12"):
        parse_period("FY2027", fiscal_year_start_month=13)
    with pytest.raises(ValueError, match="fiscal_year_named_by"):
        parse_period("FY2027", fiscal_year_named_by="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown timezone 'Berlin'"):
        parse_period("2026-Q4", timezone="Berlin")


@pytest.mark.parametrize(
    ("kind", "today", "fiscal", "start_month", "named_by", "label", "start", "end"),
    [
        ("quarter", date(2026, 11, 15), False, 1, "end", "2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
        ("quarter", date(2026, 4, 1), False, 4, "end", "2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
        ("half", date(2026, 6, 30), False, 1, "end", "2026-H1", date(2026, 1, 1), date(2026, 7, 1)),
        ("year", date(2026, 12, 31), False, 1, "end", "2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("month", date(2026, 2, 28), True, 4, "end", "2026-02", date(2026, 2, 1), date(2026, 3, 1)),
        ("quarter", date(2026, 3, 15), True, 4, "end", "FY2026-Q4", date(2026, 1, 1), date(2026, 4, 1)),
        ("quarter", date(2026, 4, 1), True, 4, "end", "FY2027-Q1", date(2026, 4, 1), date(2026, 7, 1)),
        ("quarter", date(2026, 4, 1), True, 4, "start", "FY2026-Q1", date(2026, 4, 1), date(2026, 7, 1)),
        ("half", date(2027, 1, 10), True, 4, "end", "FY2027-H2", date(2026, 10, 1), date(2027, 4, 1)),
        ("year", date(2026, 3, 31), True, 4, "end", "FY2026", date(2025, 4, 1), date(2026, 4, 1)),
        ("year", date(2026, 3, 31), True, 4, "start", "FY2025", date(2025, 4, 1), date(2026, 4, 1)),
        ("year", date(2026, 7, 1), True, 1, "end", "FY2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("quarter", date(2026, 12, 1), True, 11, "end", "FY2027-Q1", date(2026, 11, 1), date(2027, 2, 1)),
    ],
)
def test_current_period(
    kind: str, today: date, fiscal: bool, start_month: int, named_by: str, label: str, start: date, end: date
) -> None:
    p = current_period(
        kind,  # type: ignore[arg-type]
        today,
        fiscal=fiscal,
        fiscal_year_start_month=start_month,
        fiscal_year_named_by=named_by,  # type: ignore[arg-type]
        timezone="Europe/Berlin",
    )
    assert (p.label, p.start, p.end, p.timezone) == (label, start, end, "Europe/Berlin")


def test_current_period_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="period kind"):
        current_period("week", date(2026, 1, 1))  # type: ignore[arg-type]


_MONTHS_IN = {"quarter": 3, "half": 6, "year": 12, "month": 1}


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["quarter", "half", "year", "month"]),
    today=st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31)),
    fiscal=st.booleans(),
    start_month=st.integers(1, 12),
    named_by=st.sampled_from(["end", "start"]),
)
def test_current_period_contains_today_and_its_label_parses_back(
    kind: str, today: date, fiscal: bool, start_month: int, named_by: str
) -> None:
    kwargs = {"fiscal_year_start_month": start_month, "fiscal_year_named_by": named_by}
    p = current_period(kind, today, fiscal=fiscal, **kwargs)  # type: ignore[arg-type]
    assert p.start <= today < p.end
    assert p.start.day == 1 and p.end.day == 1
    months = (p.end.year - p.start.year) * 12 + p.end.month - p.start.month
    assert months == _MONTHS_IN[kind]
    if fiscal and kind != "month":
        # Fiscal quarters, halves and years are aligned on the fiscal year's first month.
        assert (p.start.month - start_month) % months == 0
        if kind == "year":
            # The definition of the naming: FY2027 is the fiscal year ending (or starting) in 2027.
            last_day = p.end - timedelta(days=1)
            assert p.label == f"FY{last_day.year if named_by == 'end' else p.start.year}"
    assert parse_period(p.label, **kwargs) == p  # type: ignore[arg-type]
