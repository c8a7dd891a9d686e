"""Helpers shared by both hr systems: typed frames, naive-UTC datetimes, suggestions.

Nothing here puts a value in a message: HR values are personal data (RELIABILITY row 33, §3.5).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from connectors.sql_values import DTYPES
from okrsync.schema import Field

if TYPE_CHECKING:  # imported where a read builds frames: loading a project file needs no pandas
    import pandas as pd


def typed_frame(fields: Sequence[Field], columns: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A frame with one column per field, of the dtype the store expects for its type."""
    import pandas as pd

    return pd.DataFrame(
        {f.name: pd.Series(list(col), dtype=DTYPES[f.type]) for f, col in zip(fields, columns, strict=True)},
        columns=[f.name for f in fields],
    )


def id_frame(ids: Sequence[int]) -> pd.DataFrame:
    """Record ids (employees, jobs, applications) as the one-column frame ``keys`` and ``deleted`` yield."""
    import pandas as pd

    return pd.DataFrame({"id": pd.Series(list(ids), dtype="Int64")})


def as_naive_utc(value: Any) -> datetime:
    """A watermark cursor (datetime, pandas Timestamp or ISO text) as a naive UTC datetime."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise TypeError(f"not a point in time: {type(value).__name__}")


def did_you_mean(name: str, names: Iterable[str]) -> str:
    names = list(names)
    lower = [n for n in names if n.lower() == name.lower()]
    hits = lower or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(map(repr, hits))}?)" if hits else ""


def validation_errors(exc: ValidationError) -> str:
    """A pydantic error as ``key: message; …``, without the offending input."""
    parts = []
    for e in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in e["loc"] if p not in ("bamboohr", "files")) or "options"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)
