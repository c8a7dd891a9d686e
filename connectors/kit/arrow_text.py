"""Arrow-backed key columns as the text record ids are made of, computed per column.

Record ids (:func:`connectors.base.record_ids`) are built from the text of each key value. Stores hold
them, so that text must not change when a batch is Arrow-backed (``pd.ArrowDtype``) instead of Python
objects: these functions give, for a whole column at once, exactly what ``str(value)`` gives for the
Python value (``Decimal``, ``bool``, ``int``, ``date``), or ``None`` when the column is of a type they do
not cover (the caller then formats it as before). The store's row hashes use the same rules
(:mod:`okr_store.arrow_text`, which the store's side of the layers keeps its own copy of);
``tests/okr_store/test_arrow_batches.py`` compares both with the per-value path on random data.

pyarrow is imported where a batch is handled: `status` and `drill` never import it."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# str(Decimal) switches to scientific notation below 1e-6 (adjusted exponent < -6): "1E-7", "0E-8".
_PLAIN_BELOW = Decimal("0.000001")


def arrow_array(s: pd.Series) -> pa.Array | None:
    """The Arrow array behind an Arrow-backed column (one chunk), else None."""
    import pandas as pd
    import pyarrow as pa

    if not isinstance(s.dtype, pd.ArrowDtype):
        return None
    arr = s.array._pa_array  # the ChunkedArray of an ArrowExtensionArray
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def decimal_text(arr: pa.Array) -> pa.Array:
    """``str(Decimal)`` of each value of a decimal array (nulls stay null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(arr, pa.string())
    scale = arr.type.scale
    if scale <= 6:  # every value of at most 6 places prints plainly, as Arrow does
        return text
    tiny = pc.less(pc.abs(arr), pa.scalar(_PLAIN_BELOW, arr.type))
    where = pc.indices_nonzero(pc.fill_null(tiny, False)).to_pylist()
    if not where:
        return text
    # The few values printed in scientific notation: as Python prints them.
    fixed = text.to_pylist()
    for i in where:
        fixed[i] = str(arr[i].as_py())
    return pa.array(fixed, pa.string())


def bool_text(arr: pa.Array) -> pa.Array:
    """``str(bool)``: "True" / "False"."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(arr, pa.scalar("True"), pa.scalar("False"))


def str_text(arr: pa.Array) -> pa.Array | None:
    """``str(value)`` of each value (nulls stay null), for the types where Arrow's text is Python's:
    integers, strings, dates, decimals and booleans; None for other types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_decimal(t):
        return decimal_text(arr)
    if pa.types.is_boolean(t):
        return bool_text(arr)
    if pa.types.is_integer(t) or pa.types.is_date32(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.cast(arr, pa.string())
    return None


def isoformat_text(arr: pa.Array) -> pa.Array:
    """``Timestamp.isoformat()`` of each value of a naive timestamp array: seconds, then
    ``.ffffff`` only when the microseconds are not zero."""
    import pyarrow as pa
    import pyarrow.compute as pc

    us = pc.cast(arr, pa.timestamp("us"))
    seconds = pc.floor_temporal(us, unit="second")
    whole = pc.strftime(pc.cast(seconds, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
    micros = pc.subtract(pc.cast(us, pa.int64()), pc.cast(pc.cast(seconds, pa.timestamp("us")), pa.int64()))
    fraction = pc.binary_join_element_wise(".", pc.utf8_lpad(pc.cast(micros, pa.string()), 6, "0"), "")
    return pc.if_else(pc.equal(micros, 0), whole, pc.binary_join_element_wise(whole, fraction, ""))


def to_series(arr: pa.Array, like: pd.Series) -> pd.Series:
    """An Arrow string array as an Arrow-backed column with ``like``'s index."""
    import pandas as pd
    import pyarrow as pa

    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=like.index, dtype=pd.ArrowDtype(pa.string()))

