"""Progress, expected pace, status and the weighted roll-up of key results.

Progress is ``(value − baseline) / (target − baseline)``, so a decrease key result (target below the
baseline, e.g. late shipments from 12% to 5%) needs no special case: both differences are negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from metrics.periods import Period, naive_utc

Status = Literal["achieved", "on_track", "at_risk", "off_track", "no_data"]
Pace = Literal["linear", "none"]

PLACES = Decimal("0.0001")
_ZERO = Decimal(0)
_ONE = Decimal(1)


def _round(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_HALF_EVEN)


def _clamp(value: Decimal) -> Decimal:
    return min(_ONE, max(_ZERO, value))


@dataclass(frozen=True)
class Score:
    """A key result's standing at one as-of time (progress values rounded to 4 places)."""

    progress_raw: Decimal | None
    progress: Decimal | None
    expected: Decimal
    status: Status


def expected_progress(period: Period, as_of: datetime, pace: Pace = "linear") -> Decimal:
    """The progress expected by ``as_of`` (naive UTC), exact: the elapsed share of the period, or 1.

    Computed from whole microseconds rather than :meth:`Period.elapsed_fraction` so the result is an
    exact Decimal, not a rounded float.
    """
    if pace == "none":
        return _ONE
    if pace != "linear":
        raise ValueError(f"pace must be 'linear' or 'none', not {pace!r}")
    start, end = period.start_utc(), period.end_utc()
    micro = timedelta(microseconds=1)
    elapsed = Decimal((naive_utc(as_of) - start) // micro) / Decimal((end - start) // micro)
    return _clamp(elapsed)


def score(
    value: Decimal | None,
    *,
    baseline: Decimal,
    target: Decimal,
    period: Period,
    as_of: datetime,
    pace: Pace = "linear",
    at_risk_gap: Decimal = Decimal("0.10"),
    off_track_gap: Decimal = Decimal("0.25"),
) -> Score:
    """Score ``value`` against the key result's baseline and target at ``as_of``.

    ``status`` is ``no_data`` without a value, ``achieved`` once the target is reached, otherwise it
    depends on how far progress lags the expected pace: ``on_track`` while ``expected − progress ≤
    at_risk_gap``, ``at_risk`` while ``≤ off_track_gap``, ``off_track`` beyond. The status is decided on
    exact values; the reported numbers are rounded to 4 places (half-even).
    """
    if target == baseline:
        raise ValueError(f"target equals baseline ({target}): progress would be undefined")
    if not _ZERO <= at_risk_gap <= off_track_gap:
        raise ValueError(f"need 0 <= at_risk_gap <= off_track_gap, got {at_risk_gap} and {off_track_gap}")
    expected = expected_progress(period, as_of, pace)
    if value is None:
        return Score(None, None, _round(expected), "no_data")
    raw = (Decimal(value) - baseline) / (target - baseline)
    progress = _clamp(raw)
    gap = expected - progress
    status: Status
    if raw >= _ONE:
        status = "achieved"
    elif gap <= at_risk_gap:
        status = "on_track"
    elif gap <= off_track_gap:
        status = "at_risk"
    else:
        status = "off_track"
    return Score(_round(raw), _round(progress), _round(expected), status)


def roll_up(children: Sequence[tuple[Decimal, Decimal | None]]) -> Decimal | None:
    """The weighted mean of the children's progress, ignoring children without progress.

    ``children`` holds ``(weight, progress)`` pairs. None when no child has progress or their weights
    sum to zero (a zero-weight child counts for nothing rather than dragging the mean down).
    """
    total_weight = _ZERO
    weighted = _ZERO
    for weight, progress in children:
        if weight < 0:
            raise ValueError(f"weights must not be negative, got {weight}")
        if progress is None:
            continue
        total_weight += weight
        weighted += weight * progress
    if total_weight == 0:
        return None
    return _round(weighted / total_weight)
