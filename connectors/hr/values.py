"""What both hr systems share: typed frames.

Nothing here puts a value in a message: HR values are personal data (RELIABILITY row 33, §3.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from connectors.sql_values import DTYPES
from okrsync.schema import Field


def typed_frame(fields: Sequence[Field], columns: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A frame with one column per field, of the dtype the store expects for its type."""
    return pd.DataFrame(
        {f.name: pd.Series(list(col), dtype=DTYPES[f.type]) for f, col in zip(fields, columns, strict=True)},
        columns=[f.name for f in fields],
    )
