"""How far an incremental read may trust what it read: the source's clock, the oldest transaction
that can still commit, and a lookback behind them.

ERPs stamp a change with the start of its transaction (Tryton's ``write_date``), not with its commit:
a row can commit with a cursor older than rows a sync already read. A connector that can ask its
source for a :class:`Horizon` (``horizon(stream)``, see :class:`KnowsHorizon`) lets the pipeline keep
the watermark behind it: the next read starts again at ``min(source now, oldest open transaction)
minus the lookback`` whenever the last row read is later than that. Re-reads cost little: the store
drops versions that did not change. The same rule keeps a cursor dated ahead of the source's clock
(a wrong clock or timezone) from moving the watermark into the future, where it would skip every
real edit until that date; such rows are still synced, and counted (:class:`FutureRows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from connectors.base import SourceConnector, StreamSpec, Watermark
from okrsync.schema import FieldType

if TYPE_CHECKING:  # imported where a sync needs it: loading a project file needs no pandas
    import pandas as pd

SKEW_SECONDS = 60  # a cursor this far ahead of the source's clock is dated in the future
HELD_BACK_NOTE_SECONDS = 3600  # an open transaction holding the re-read window back longer is named


@dataclass(frozen=True)
class Horizon:
    """The source's view at the start of a read (naive UTC)."""

    now: datetime  # the source's clock
    safe: datetime  # every transaction still open started at or after this (``<= now``)
    lookback_seconds: int  # re-read this far behind ``safe`` (clock skew, application-set stamps)
    notes: tuple[str, ...] = field(default=())  # why it is less sure, or held back: said to the user

    @property
    def reread_from(self) -> datetime:
        """Rows with a cursor at or after this may still change without a later cursor."""
        return self.safe - timedelta(seconds=self.lookback_seconds)

    @property
    def future_after(self) -> datetime:
        """Cursor values after this are dated in the future."""
        return self.now + timedelta(seconds=SKEW_SECONDS)


@runtime_checkable
class KnowsHorizon(Protocol):
    """A connector that can ask its source for the :class:`Horizon`, and whose ``read`` starts at
    ``since.reread_from`` (inclusive) when the watermark has one."""

    def horizon(self, stream: StreamSpec) -> Horizon: ...


def lookback(stream: StreamSpec, connector: SourceConnector) -> int:
    """The stream's ``lookback_seconds``, else its connector kind's ``default_lookback_seconds``."""
    if stream.lookback_seconds is not None:
        return stream.lookback_seconds
    return connector.default_lookback_seconds


def next_watermark(last: tuple[Any, tuple[Any, ...]], spec: str, horizon: Horizon | None,
                   cursor_type: FieldType | None) -> Watermark:
    """The watermark after a read whose last record was ``last`` (cursor, key): exact when that
    record is older than what can still change, else with ``reread_from`` at the horizon."""
    cursor, key = last
    mark = Watermark(cursor, key, spec)
    if horizon is None or cursor_type not in (FieldType.DATETIME, FieldType.DATE):
        return mark
    start, value = horizon.reread_from, _instant(cursor)
    if cursor_type is FieldType.DATE:  # a row dated on start's day may still be written that day
        day = start.date()
        return mark if value is not None and value.date() < day else Watermark(cursor, key, spec, day)
    if value is not None and value < start:
        return mark  # everything read is final: the next read continues strictly after it
    return Watermark(cursor, key, spec, start)


@dataclass(frozen=True)
class FutureRows:
    """Records of one sync whose cursor is ahead of the source's clock."""

    count: int = 0
    newest: datetime | None = None
    clock: datetime | None = None  # the source's clock they were compared with

    def __add__(self, other: FutureRows) -> FutureRows:
        newest = max((n for n in (self.newest, other.newest) if n is not None), default=None)
        return FutureRows(self.count + other.count, newest, self.clock or other.clock)

    def message(self) -> str | None:
        """``3 records dated in the future (up to …)``, or None when there are none."""
        if not self.count or self.newest is None:
            return None
        clock = f"; the source's clock read {self.clock:%Y-%m-%d %H:%M} UTC" if self.clock else ""
        return (f"{self.count} record{'s' if self.count != 1 else ''} dated in the future (up to "
                f"{self.newest:%Y-%m-%d %H:%M} UTC{clock}): check the source's clock and the stream's "
                "timezone; the watermark stays at the source's clock, so later edits are still read")


def future_rows(cursors: pd.Series, horizon: Horizon | None) -> FutureRows:
    """Count the cursor values (naive UTC) after ``horizon.future_after`` (vectorised)."""
    import pandas as pd

    if horizon is None or cursors.empty:
        return FutureRows()
    if isinstance(cursors.dtype, pd.ArrowDtype) and cursors.dtype.kind == "M":  # Arrow timestamps
        cursors = cursors.astype("datetime64[us]")  # as a numpy column: to_datetime goes value by value
    values = pd.to_datetime(cursors, errors="coerce")
    ahead = values[values > pd.Timestamp(horizon.future_after)]
    if ahead.empty:
        return FutureRows(clock=horizon.now)
    return FutureRows(int(ahead.size), ahead.max().to_pydatetime(), horizon.now)


def _instant(v: Any) -> datetime | None:
    import pandas as pd

    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    if isinstance(v, str):
        return _instant(datetime.fromisoformat(v))
    return None
