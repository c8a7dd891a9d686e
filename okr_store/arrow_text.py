"""Arrow-backed columns as the text Python's ``str()`` gives their values, computed per column.

Row hashes (:func:`row_hashes`, used by :mod:`okr_store.records`) are built from the text of each value
(and record ids from the text of key values, :mod:`connectors.kit.arrow_text`: the layers keep the
connectors from the store, so each side has its copy of these rules). Stores hold them, so that text must
not change when a batch is Arrow-backed (``pd.ArrowDtype``) instead of Python objects: these functions
give, for a whole column at once, exactly what ``str(value)`` gives for the Python value (``Decimal``,
``bool``, ``int``, ``date``), or ``None`` when the column is of a type they do not cover (the caller then
formats it as before). ``tests/okr_store/test_arrow_batches.py`` compares them with the per-value path on
random data.

pyarrow is imported where a batch is handled: `status` and `drill` never import it."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

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


def to_series(arr: pa.Array, like: pd.Series) -> pd.Series:
    """An Arrow string array as an Arrow-backed column with ``like``'s index."""
    import pandas as pd
    import pyarrow as pa

    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=like.index, dtype=pd.ArrowDtype(pa.string()))


def hex_digits(hashed: pd.Series) -> pd.Series:
    """64-bit hashes as 16 lowercase hex digits each (``"{:016x}".format``, without a Python loop),
    an Arrow-backed string column."""
    import numpy as np
    import pyarrow as pa

    values = hashed.to_numpy(dtype=np.uint64)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = ((values[:, None] >> shifts) & np.uint64(15)).astype(np.uint8)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles]
    offsets = np.arange(0, 16 * len(values) + 1, 16, dtype=np.int32)
    arr = pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))
    return to_series(arr, hashed)


def combine_hashes(columns: list[Any], rows: int) -> Any:
    """Per-column uint64 hashes combined into one per row, exactly as ``pd.util.hash_pandas_object``
    combines a frame's columns (pandas' ``combine_hash_arrays``, after CPython's tuple hash)."""
    import numpy as np

    out = np.zeros(rows, dtype=np.uint64) + np.uint64(0x345678)
    mult = np.uint64(1000003)
    for i, h in enumerate(columns):
        inverse_i = len(columns) - i
        out ^= h
        out *= mult
        mult += np.uint64(82520 + inverse_i + inverse_i)
    return out + np.uint64(97531)


def row_hashes(df: pd.DataFrame, fields: tuple[str, ...]) -> pd.Series:
    """A 64-bit hash of each row's kept fields, as 16 hex digits: pandas' SipHash of each value's
    ``str()`` (``\\x00null`` for a missing one), combined over the fields as
    ``pd.util.hash_pandas_object`` does. Arrow-backed columns are turned into that text by Arrow
    kernels (:mod:`okr_store.arrow_text`), others by pandas; the hashes are the same either way (stores
    hold them). An Arrow-backed string column is returned."""
    import pandas as pd

    columns = [pd.util.hash_array(_hash_text(df[f]), categorize=False) for f in fields]
    hashed = combine_hashes(columns, len(df))
    return hex_digits(pd.Series(hashed, index=df.index))


def _hash_text(s: pd.Series) -> Any:
    """A column as the text its values are hashed by (see :func:`row_hashes`): a numpy array of str."""
    arr = arrow_array(s)
    text = None if arr is None else str_text(arr)
    if text is None:
        if arr is not None:  # timestamps, floats: formatted by pandas as their numpy column would be
            s = s.astype(_numpy_dtype(arr.type))
        return s.astype("string").fillna("\x00null").to_numpy(dtype=object)
    import pyarrow.compute as pc

    return pc.fill_null(text, "\x00null").to_numpy(zero_copy_only=False)


def _numpy_dtype(t: Any) -> Any:
    """The pandas dtype a column of a type :func:`okr_store.arrow_text.str_text` leaves to pandas had
    before batches were Arrow-backed (naive timestamps, floats; objects otherwise)."""
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return "datetime64[us]"
    return "float64" if pa.types.is_floating(t) else object
