"""Where an incremental read starts and which rows it yields: the watermark, the stream's lookback and
the ``(cursor, primary key)`` tie-break, decided once for every connector.

The framework stores the ``(cursor, key)`` of the last committed row (:class:`~connectors.base.Watermark`)
and hands it back as ``since``. :class:`Incremental` turns it into what a connector asks its source for,
the way dlt's ``Incremental`` is one object that becomes a query's WHERE and ORDER BY:

* no watermark (or no cursor): a full read, every row;
* ``since.reread_from`` (set by the pipeline when rows may still commit late, see
  :mod:`connectors.horizon`): every row whose cursor is at or after it;
* ``lookback_seconds`` on a date or datetime cursor: every row whose cursor is at or after the
  watermark's cursor less the lookback (the store drops re-read rows that did not change);
* otherwise *exact*: rows strictly after ``(cursor, key)`` compared as a tuple, so rows that share the
  watermark's cursor value (a bulk update, ties at a batch boundary) are neither lost nor read twice.

Rows whose cursor is NULL sort first; a watermark among them (NULL cursor) reads the rest of them by key,
then every row with a cursor. A source that can filter on the cursor asks for ``cursor >= start`` and, when
``exact``, drops the rows :meth:`Incremental.keeps` refuses (or compares the tuple itself, as SQL does);
one that cannot filters a frame with :meth:`Incremental.select`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.base import StreamSpec, Watermark
from connectors.kit.values import naive_utc
from okrsync.schema import FieldType

if TYPE_CHECKING:  # frames are built where a read runs: loading a project and `status` need no pandas
    import pandas as pd


@dataclass(frozen=True)
class Incremental:
    """One stream's incremental window (see the module notes). Build it with :meth:`of`."""

    since: Watermark | None
    cursor_fields: tuple[str, ...]
    primary_key: tuple[str, ...]
    lookback_seconds: int = 0
    cursor_type: FieldType | None = None  # None: judged from the watermark's value

    @classmethod
    def of(cls, stream: StreamSpec, since: Watermark | None,
           cursor_type: FieldType | None = None) -> Incremental:
        """The window of ``stream`` after ``since`` (a full read when the stream has no cursor)."""
        return cls(since if stream.cursor else None, stream.cursor, stream.primary_key,
                   stream.lookback_seconds or 0, cursor_type)

    # -- what to ask the source for ------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """No watermark: read every row."""
        return self.since is None

    @property
    def cursor(self) -> Any:
        """The watermark's cursor value, typed (naive UTC datetime, date), or None."""
        return None if self.since is None else self._typed(self.since.cursor)

    @property
    def key(self) -> tuple[Any, ...]:
        """The watermark's primary-key values (empty on a full read)."""
        return () if self.since is None else tuple(self.since.key)

    @property
    def null_cursor(self) -> bool:
        """The watermark is among the rows whose cursor is NULL (they sort first)."""
        return self.since is not None and self.cursor is None

    @property
    def rereads(self) -> bool:
        """The read starts at a cursor value and yields every row from there (``reread_from`` or the
        lookback), rather than strictly after ``(cursor, key)``."""
        if self.since is None or self.null_cursor:
            return False
        return self.since.reread_from is not None or (self.lookback_seconds > 0 and self._temporal)

    @property
    def exact(self) -> bool:
        """Rows strictly after ``(cursor, key)``: the tie-break applies."""
        return self.since is not None and not self.null_cursor and not self.rereads

    @property
    def start(self) -> Any:
        """The first cursor value to read, inclusive (None: from the first row)."""
        if self.since is None or self.null_cursor:
            return None
        if self.since.reread_from is not None:
            return self._typed(self.since.reread_from)
        cursor = self.cursor
        if self.rereads:
            back = naive_utc(cursor) - timedelta(seconds=self.lookback_seconds)
            return back.date() if self._kind is FieldType.DATE else back
        return cursor

    @property
    def position(self) -> tuple[Any, ...]:
        """``(cursor, *key)`` of the watermark: rows at or before it were read (meaningful when exact)."""
        return (self.cursor, *self.key)

    # -- which rows to yield -------------------------------------------------------------------------

    def keeps(self, cursor: Any, key: tuple[Any, ...]) -> bool:
        """Whether a row with this cursor value and key belongs to the read."""
        if self.since is None:
            return True
        value = self._typed(cursor)
        if self.null_cursor:
            return value is not None or tuple(key) > self.key
        if value is None:
            return False
        if self.exact:
            return (value, *key) > self.position
        return bool(value >= self.start)

    def select(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``df`` that belong to the read, ordered by (cursor, key) with NULL cursors first
        (vectorised)."""
        import pandas as pd

        if not self.cursor_fields:
            return df.sort_values(list(self.primary_key), kind="stable")
        cursor = df[self.cursor_fields[0]]
        for name in self.cursor_fields[1:]:  # the first non-null of the cursor fields (COALESCE)
            cursor = cursor.where(cursor.notna(), df[name])
        order = pd.DataFrame({"_null": cursor.notna(), "_cursor": cursor})
        for i, k in enumerate(self.primary_key):
            order[f"_k{i}"] = df[k]
        df = df.loc[order.sort_values(list(order.columns), kind="stable").index]
        if self.since is None:
            return df
        cursor, keys = cursor.loc[df.index], [df[k] for k in self.primary_key]
        if self.null_cursor:
            mask = cursor.notna() | (cursor.isna() & _after(keys, list(self.key)))
        elif self.exact:
            mask = cursor.notna() & _after([cursor, *keys], list(self.position))
        else:
            mask = cursor.notna() & (cursor >= self._comparable(self.start, cursor))
        return df[mask.fillna(False).astype(bool)]

    def frames(self, df: pd.DataFrame, batch_size: int) -> Iterator[pd.DataFrame]:
        """:meth:`select`, in frames of ``batch_size`` rows."""
        rows = self.select(df)
        for start in range(0, len(rows), batch_size):
            yield rows.iloc[start:start + batch_size].reset_index(drop=True)

    # -- types ---------------------------------------------------------------------------------------

    @property
    def _kind(self) -> FieldType | None:
        if self.cursor_type is not None or self.since is None:
            return self.cursor_type
        value = self.since.cursor
        if isinstance(value, datetime) or type(value).__name__ == "datetime64":  # also pandas Timestamps
            return FieldType.DATETIME
        return FieldType.DATE if isinstance(value, date) else None

    @property
    def _temporal(self) -> bool:
        return self._kind in (FieldType.DATETIME, FieldType.DATE)

    def _typed(self, value: Any) -> Any:
        if value is None or type(value).__name__ in ("NaTType", "NAType") \
                or (isinstance(value, str) and value == "NaT") \
                or (isinstance(value, float) and value != value):
            return None
        if self._kind is FieldType.DATETIME:
            return naive_utc(value)
        if self._kind is FieldType.DATE:
            return naive_utc(value).date()
        return value

    def _comparable(self, value: Any, column: pd.Series) -> Any:
        import pandas as pd

        return pd.Timestamp(value) if pd.api.types.is_datetime64_any_dtype(column) else value


def _after(columns: list[pd.Series], values: list[Any]) -> pd.Series:
    """``(c1, c2, …) > (v1, v2, …)`` row by row, vectorised."""
    result = columns[-1] > values[-1]
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        result = (column > value) | ((column == value) & result)
    return result
