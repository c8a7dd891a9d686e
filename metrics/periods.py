"""Calendar and fiscal periods in the company timezone.

A :class:`Period` is a half-open range of local dates ``[start, end)``; it begins at local midnight of
``start`` in its IANA ``timezone`` and ends at local midnight of ``end``. Instants elsewhere in okrsync are
naive UTC datetimes, so the period converts its bounds with :meth:`Period.start_utc`/:meth:`Period.end_utc`
(DST-correct through :mod:`zoneinfo`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FiscalNaming = Literal["end", "start"]
PeriodKind = Literal["quarter", "half", "year", "month"]

ACCEPTED_FORMS = (
    "2026-Q4 (quarter), 2026-H1 (half year), 2026 (year), 2026-11 (month), "
    "FY2027-Q1, FY2027-H2, FY2027 (fiscal quarter, half, year) or 2026-10-01..2026-12-31 (inclusive dates)"
)

_CALENDAR = re.compile(r"(?P<year>\d{4})(?:-(?:(?P<unit>[QH])(?P<n>\d)|(?P<month>\d{2})))?", re.ASCII)
_FISCAL = re.compile(r"FY(?P<year>\d{4})(?:-(?P<unit>[QH])(?P<n>\d))?", re.ASCII)
_RANGE = re.compile(r"(?P<first>\d{4}-\d{2}-\d{2})\s*\.\.\s*(?P<last>\d{4}-\d{2}-\d{2})", re.ASCII)


def naive_utc(instant: datetime) -> datetime:
    """``instant`` as a naive UTC datetime: aware values are converted, naive ones are taken as UTC."""
    if instant.tzinfo is None:
        return instant
    return instant.astimezone(UTC).replace(tzinfo=None)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as Europe/Berlin") from None


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """A period of whole local days: ``start`` (first day) to ``end`` (first day after, exclusive)."""

    label: str
    start: date
    end: date
    timezone: str

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"period {self.label!r}: start {self.start} is not before end {self.end}")
        _zone(self.timezone)
        try:
            self.start_utc()
            self.end_utc()
        except OverflowError:
            raise ValueError(f"period {self.label!r} lies outside the supported years") from None

    def _midnight_utc(self, day: date) -> datetime:
        # fold=0 picks the earlier reading of an ambiguous midnight (the day's real beginning) and, for a
        # midnight skipped by a DST jump, the offset before the jump, which lands on the first instant
        # that exists on that day.
        local = datetime.combine(day, time(0), tzinfo=_zone(self.timezone))
        return local.astimezone(UTC).replace(tzinfo=None)

    def start_utc(self) -> datetime:
        """The naive UTC instant of local midnight at ``start``."""
        return self._midnight_utc(self.start)

    def end_utc(self) -> datetime:
        """The naive UTC instant of local midnight at ``end`` (the first instant after the period)."""
        return self._midnight_utc(self.end)

    def closes_at(self, grace_days: int) -> tuple[date, datetime]:
        """When the period closes after ``grace_days`` days of grace: that local day, and its midnight
        as a naive UTC instant (``grace_days`` 0: the period's end)."""
        day = self.end + timedelta(days=grace_days)
        return day, self._midnight_utc(day)

    def local_date(self, instant: datetime) -> date:
        """The date in this period's timezone at ``instant`` (naive UTC, or aware)."""
        return naive_utc(instant).replace(tzinfo=UTC).astimezone(_zone(self.timezone)).date()

    def elapsed_fraction(self, as_of: datetime) -> float:
        """How much of the period lies before ``as_of`` (naive UTC): 0 before it, 1 after, linear between."""
        start, end = self.start_utc(), self.end_utc()
        fraction = (naive_utc(as_of) - start) / (end - start)
        return min(1.0, max(0.0, fraction))

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict; :meth:`from_json` reads it back."""
        return {
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Period:
        """The period written by :meth:`to_json`."""
        return cls(
            label=str(raw["label"]),
            start=date.fromisoformat(str(raw["start"])),
            end=date.fromisoformat(str(raw["end"])),
            timezone=str(raw["timezone"]),
        )


def _check_fiscal_settings(fiscal_year_start_month: int, fiscal_year_named_by: str) -> None:
    if not 1 <= fiscal_year_start_month <= 12:
        raise ValueError(f"fiscal_year_start_month must be 1..12, not {fiscal_year_start_month}")
    if fiscal_year_named_by not in ("end", "start"):
        raise ValueError(f"fiscal_year_named_by must be 'end' or 'start', not {fiscal_year_named_by!r}")


def _fiscal_year_start(fiscal_year: int, start_month: int, named_by: FiscalNaming) -> date:
    # A fiscal year named by its end that starts after January began in the previous calendar year
    # (FY2027 with start month 4 is 2026-04..2027-03); one starting in January is simply the calendar year.
    first_year = fiscal_year - 1 if named_by == "end" and start_month != 1 else fiscal_year
    return date(first_year, start_month, 1)


def _fiscal_year_name(first_year: int, start_month: int, named_by: FiscalNaming) -> int:
    return first_year + 1 if named_by == "end" and start_month != 1 else first_year


class _NotAPeriod(ValueError):
    """Raised (as a plain ValueError to callers) once the message is final."""


def _invalid(text: str, why: str = "") -> ValueError:
    reason = f" ({why})" if why else ""
    return _NotAPeriod(f"{text!r} is not a period{reason}; write one of: {ACCEPTED_FORMS}")


def _sub_period(year_start: date, unit: str | None, n: int | None, text: str) -> tuple[date, date, str]:
    """The (start, end, label suffix) of a quarter/half of the year starting at ``year_start``."""
    if unit is None or n is None:
        return year_start, _add_months(year_start, 12), ""
    months, count = (3, 4) if unit == "Q" else (6, 2)
    if not 1 <= n <= count:
        raise _invalid(text, f"{'quarters' if unit == 'Q' else 'halves'} are numbered 1 to {count}")
    start = _add_months(year_start, months * (n - 1))
    return start, _add_months(start, months), f"-{unit}{n}"


def parse_period(
    text: str,
    *,
    timezone: str = "UTC",
    fiscal_year_start_month: int = 1,
    fiscal_year_named_by: FiscalNaming = "end",
) -> Period:
    """Parse a period label (see :data:`ACCEPTED_FORMS`) into a :class:`Period` with a canonical label.

    Letters are case-insensitive (``fy2027-q1`` is ``FY2027-Q1``). Calendar forms ignore the fiscal
    settings; ``FY`` forms follow them. Raises :class:`ValueError` naming the accepted forms.
    """
    _check_fiscal_settings(fiscal_year_start_month, fiscal_year_named_by)
    _zone(timezone)
    if not isinstance(text, str):
        raise _invalid(str(text), "a period is text")
    cleaned = text.strip().upper()
    try:
        if m := _RANGE.fullmatch(cleaned):
            first = date.fromisoformat(m["first"])
            last = date.fromisoformat(m["last"])
            if last < first:
                raise _invalid(text, "the last date is before the first")
            label = f"{first.isoformat()}..{last.isoformat()}"
            return Period(label, first, last + timedelta(days=1), timezone)
        if m := _FISCAL.fullmatch(cleaned):
            year = int(m["year"])
            year_start = _fiscal_year_start(year, fiscal_year_start_month, fiscal_year_named_by)
            n = int(m["n"]) if m["n"] else None
            start, end, suffix = _sub_period(year_start, m["unit"], n, text)
            return Period(f"FY{year:04d}{suffix}", start, end, timezone)
        if m := _CALENDAR.fullmatch(cleaned):
            year = int(m["year"])
            if m["month"]:
                month = int(m["month"])
                if not 1 <= month <= 12:
                    raise _invalid(text, "months are numbered 01 to 12")
                start = date(year, month, 1)
                return Period(f"{year:04d}-{month:02d}", start, _add_months(start, 1), timezone)
            n = int(m["n"]) if m["n"] else None
            start, end, suffix = _sub_period(date(year, 1, 1), m["unit"], n, text)
            return Period(f"{year:04d}{suffix}", start, end, timezone)
    except _NotAPeriod:
        raise
    except ValueError as exc:
        # Out-of-range years and impossible dates ("2026-02-30") surface here from ``date``.
        raise _invalid(text, str(exc)) from None
    raise _invalid(text)


def current_period(
    kind: PeriodKind,
    today: date,
    *,
    fiscal: bool = False,
    fiscal_year_start_month: int = 1,
    fiscal_year_named_by: FiscalNaming = "end",
    timezone: str = "UTC",
) -> Period:
    """The quarter, half, year or month containing ``today`` (a local date).

    With ``fiscal`` the quarter/half/year is the fiscal one (labelled ``FY…``); months are the same in
    both calendars, so ``fiscal`` does not change a month.
    """
    _check_fiscal_settings(fiscal_year_start_month, fiscal_year_named_by)
    if kind == "month":
        label = f"{today.year:04d}-{today.month:02d}"
    elif kind not in ("quarter", "half", "year"):
        raise ValueError(f"period kind must be quarter, half, year or month, not {kind!r}")
    elif fiscal:
        offset = (today.month - fiscal_year_start_month) % 12
        first_year = today.year if today.month >= fiscal_year_start_month else today.year - 1
        name = _fiscal_year_name(first_year, fiscal_year_start_month, fiscal_year_named_by)
        suffix = {"quarter": f"-Q{offset // 3 + 1}", "half": f"-H{offset // 6 + 1}", "year": ""}[kind]
        label = f"FY{name:04d}{suffix}"
    else:
        offset = today.month - 1
        suffix = {"quarter": f"-Q{offset // 3 + 1}", "half": f"-H{offset // 6 + 1}", "year": ""}[kind]
        label = f"{today.year:04d}{suffix}"
    return parse_period(
        label,
        timezone=timezone,
        fiscal_year_start_month=fiscal_year_start_month,
        fiscal_year_named_by=fiscal_year_named_by,
    )
