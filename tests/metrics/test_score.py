"""Scoring: progress, pace, status and roll-up, checked against hand-worked arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.periods import parse_period
from metrics.score import Score, expected_progress, roll_up, score

D = Decimal
# 2026-Q4 in UTC has 92 days; 46 days in (2026-11-16T00:00) is exactly half-way.
Q4 = parse_period("2026-Q4")
HALF_WAY = datetime(2026, 11, 16)


@pytest.mark.parametrize(
    ("value", "raw", "progress", "status"),
    [
        (D(480000), D("0.4000"), D("0.4000"), "on_track"),  # gap 0.10: still on track (≤)
        (D(479999), D("0.4000"), D("0.4000"), "at_risk"),  # gap 0.1000008…: rounded shows 0.4, still at risk
        (D(360000), D("0.3000"), D("0.3000"), "at_risk"),  # gap 0.20
        (D(300000), D("0.2500"), D("0.2500"), "at_risk"),  # gap 0.25: at risk (≤)
        (D(299999), D("0.2500"), D("0.2500"), "off_track"),
        (D(600000), D("0.5000"), D("0.5000"), "on_track"),
        (D(1200000), D("1.0000"), D("1.0000"), "achieved"),
        (D(1300000), D("1.0833"), D("1.0000"), "achieved"),  # 13/12 = 1.08333…
        (D(-100000), D("-0.0833"), D("0.0000"), "off_track"),  # −1/12
    ],
)
def test_increase_key_result_half_way_through_the_quarter(
    value: Decimal, raw: Decimal, progress: Decimal, status: str
) -> None:
    s = score(value, baseline=D(0), target=D(1200000), period=Q4, as_of=HALF_WAY)
    assert s == Score(raw, progress, D("0.5000"), status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "raw", "progress", "status"),
    [
        # Cut late shipments from 12% to 5%: progress = (12 − v) / 7 percentage points.
        (D("0.12"), D("0.0000"), D("0.0000"), "off_track"),
        (D("0.10"), D("0.2857"), D("0.2857"), "off_track"),  # 2/7; gap 0.46
        (D("0.085"), D("0.5000"), D("0.5000"), "at_risk"),  # 3.5/7; gap 0.25
        (D("0.0745"), D("0.6500"), D("0.6500"), "on_track"),  # 4.55/7; gap 0.10
        (D("0.0675"), D("0.7500"), D("0.7500"), "on_track"),  # 5.25/7; on pace
        (D("0.05"), D("1.0000"), D("1.0000"), "achieved"),
        (D("0.04"), D("1.1429"), D("1.0000"), "achieved"),  # 8/7 = 1.142857…
        (D("0.13"), D("-0.1429"), D("0.0000"), "off_track"),  # −1/7, worse than the baseline
    ],
)
def test_decrease_key_result(value: Decimal, raw: Decimal, progress: Decimal, status: str) -> None:
    # Three quarters through the quarter (69 of 92 days) the expected progress is 0.75.
    as_of = datetime(2026, 10, 1) + timedelta(days=69)
    s = score(value, baseline=D("0.12"), target=D("0.05"), period=Q4, as_of=as_of)
    assert (s.progress_raw, s.progress, s.expected) == (raw, progress, D("0.7500"))
    assert s.status == status


def test_no_data_still_reports_the_expected_pace() -> None:
    s = score(None, baseline=D(0), target=D(10), period=Q4, as_of=HALF_WAY)
    assert s == Score(None, None, D("0.5000"), "no_data")


def test_pace_none_expects_the_full_target_from_day_one() -> None:
    start = datetime(2026, 10, 1)
    assert score(D(8), baseline=D(0), target=D(10), period=Q4, as_of=start, pace="none") == Score(
        D("0.8000"), D("0.8000"), D(1), "at_risk"
    )
    assert score(D(9), baseline=D(0), target=D(10), period=Q4, as_of=start, pace="none").status == "on_track"
    # The same values early in a linearly paced quarter are well ahead of pace.
    assert score(D(8), baseline=D(0), target=D(10), period=Q4, as_of=start).status == "on_track"


def test_expected_pace_is_clamped_and_exact_across_dst() -> None:
    # Berlin March 2026 lasts 743 hours (clocks spring forward); 74.3 hours in is exactly a tenth.
    march = parse_period("2026-03", timezone="Europe/Berlin")
    start = datetime(2026, 2, 28, 23)
    assert expected_progress(march, start + timedelta(hours=74, minutes=18)) == D("0.1")
    assert expected_progress(march, start - timedelta(seconds=1)) == D(0)
    assert expected_progress(march, datetime(2026, 4, 30)) == D(1)
    assert expected_progress(march, start, pace="none") == D(1)
    s = score(D(1), baseline=D(0), target=D(10), period=march, as_of=start + timedelta(hours=74, minutes=18))
    assert (s.expected, s.status) == (D("0.1000"), "on_track")


def test_custom_gaps() -> None:
    common = {"baseline": D(0), "target": D(100), "period": Q4, "as_of": HALF_WAY}
    assert score(D(45), **common, at_risk_gap=D("0.01"), off_track_gap=D("0.05")).status == "at_risk"  # type: ignore[arg-type]
    assert score(D(44), **common, at_risk_gap=D("0.01"), off_track_gap=D("0.05")).status == "off_track"  # type: ignore[arg-type]


def test_progress_is_rounded_half_even_but_status_uses_exact_values() -> None:
    after = datetime(2027, 6, 1)  # after the quarter: expected 1

    def raw(value: str) -> Decimal | None:
        return score(D(value), baseline=D(0), target=D(1), period=Q4, as_of=after).progress_raw

    assert raw("0.00005") == D("0.0000")
    assert raw("0.00015") == D("0.0002")
    assert raw("0.00025") == D("0.0002")
    almost = score(D("0.99996"), baseline=D(0), target=D(1), period=Q4, as_of=after)
    assert (almost.progress_raw, almost.status) == (D("1.0000"), "on_track")


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="target equals baseline"):
        score(D(1), baseline=D(5), target=D(5), period=Q4, as_of=HALF_WAY)
    with pytest.raises(ValueError, match="at_risk_gap <= off_track_gap"):
        score(D(1), baseline=D(0), target=D(5), period=Q4, as_of=HALF_WAY, at_risk_gap=D("0.3"))


NUMBERS = st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    value=NUMBERS,
    baseline=NUMBERS,
    target=NUMBERS,
    day=st.integers(-5, 100),
    scale=st.sampled_from([D("0.01"), D(3), D(1000)]),
)
def test_score_is_invariant_under_mirroring_and_scaling(
    value: Decimal, baseline: Decimal, target: Decimal, day: int, scale: Decimal
) -> None:
    if target == baseline:
        return
    as_of = datetime(2026, 10, 1) + timedelta(days=day)
    s = score(value, baseline=baseline, target=target, period=Q4, as_of=as_of)
    # A decrease KR is an increase KR seen in a mirror, and units do not matter.
    mirrored = score(-value, baseline=-baseline, target=-target, period=Q4, as_of=as_of)
    scaled = score(value * scale, baseline=baseline * scale, target=target * scale, period=Q4, as_of=as_of)
    assert s == mirrored == scaled
    assert s.progress is not None and D(0) <= s.progress <= D(1)
    assert (s.status == "achieved") == ((value - baseline) / (target - baseline) >= 1)


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ([(D(2), D("0.5")), (D(1), D("0.8")), (D(3), None)], D("0.6000")),  # (1.0 + 0.8) / 3
        ([(D(1), D(0)), (D(2), D(1))], D("0.6667")),  # 2/3
        ([(D(1), D("0.25"))], D("0.2500")),
        ([(D(0), D("0.5")), (D(1), D("0.2"))], D("0.2000")),  # zero weight counts for nothing
        ([(D("0.5"), D("0.1")), (D("1.5"), D("0.9"))], D("0.7000")),  # (0.05 + 1.35) / 2
        ([(D(1), None)], None),
        ([(D(0), D("0.5"))], None),
        ([], None),
    ],
)
def test_roll_up(children: list[tuple[Decimal, Decimal | None]], expected: Decimal | None) -> None:
    assert roll_up(children) == expected


def test_roll_up_rejects_negative_weights() -> None:
    with pytest.raises(ValueError, match="negative"):
        roll_up([(D(-1), D("0.5")), (D(2), D("0.5"))])
