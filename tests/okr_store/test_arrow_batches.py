"""Arrow-backed batches give the record ids, row hashes and staged values the per-value path gave.

Stores hold record ids and row hashes: if the Arrow path printed a value differently, every record
would look changed (or new) after an upgrade. The oracle below is the code as it was before batches
became Arrow-backed, copied verbatim; ``python_series`` is the per-value conversion the SQL connector
still uses for values Arrow cannot take as they come.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import KEY_SEPARATOR, record_ids
from connectors.sql_values import Col, python_series, series
from okr_store.records import RID, row_hashes
from okr_store.staging import plain_rows
from okr_store.store import Store
from okrsync.schema import Field, FieldType, StreamSchema

_T = FieldType


# -- the oracle: record ids and row hashes as computed before Arrow-backed batches -----------------


def legacy_row_hashes(df: pd.DataFrame, fields: tuple[str, ...]) -> pd.Series:
    text = df[list(fields)].astype("string").fillna("\x00null")
    hashed = pd.util.hash_pandas_object(text, index=False)
    return hashed.map("{:016x}".format)


def legacy_record_ids(df: pd.DataFrame, primary_key: tuple[str, ...]) -> pd.Series:
    ids = df[primary_key[0]].map(_key_text)
    for col in primary_key[1:]:
        ids = ids + KEY_SEPARATOR + df[col].map(_key_text)
    return ids.astype(str)


def _key_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


# -- random driver values -----------------------------------------------------------------------------

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
         ZoneInfo("Europe/Berlin"), ZoneInfo("America/Sao_Paulo")]
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
small = st.integers(-(2**63), 2**63 - 1)


def decimals(scale: int) -> st.SearchStrategy[Decimal]:
    """Decimals at ``scale`` places (as NUMERIC(38, scale) hands them over), up to 38 digits, or
    fewer places (a driver's ``1.5`` for ``1.50``); negative zero included."""
    digits = 38
    unscaled = st.one_of(st.integers(-(10**digits) + 1, 10**digits - 1), st.integers(-1000, 1000),
                         st.sampled_from([0, 1, -1, 10**digits - 1, -(10**digits) + 1]))
    exact = unscaled.map(lambda u: Decimal(u).scaleb(-scale))
    fewer = st.integers(-10**6, 10**6).map(lambda u: Decimal(u).scaleb(-min(scale, 1)))
    return st.one_of(exact, fewer, st.just(Decimal("-0").scaleb(-scale)))


naive = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))
aware = st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(min_value=datetime(1970, 1, 2),
                                                                  max_value=datetime(2100, 1, 1)),
                  st.sampled_from(ZONES))

COLUMNS: dict[str, tuple[Field, Any]] = {
    "i": (Field("i", _T.INTEGER), small),
    "s": (Field("s", _T.STRING), text),
    "b": (Field("b", _T.BOOLEAN), st.booleans()),
    "d0": (Field("d0", _T.DECIMAL, 0), decimals(0)),
    "d2": (Field("d2", _T.DECIMAL, 2), decimals(2)),
    "d9": (Field("d9", _T.DECIMAL, 9), decimals(9)),
    "d20": (Field("d20", _T.DECIMAL, 20), decimals(20)),
    "day": (Field("day", _T.DATE), st.dates(min_value=date(1, 1, 1))),
    "at": (Field("at", _T.DATETIME), naive),
    "atz": (Field("atz", _T.DATETIME), aware),
    "f": (Field("f", _T.FLOAT), st.floats(allow_nan=False, allow_infinity=False)),
}


@st.composite
def batches(draw: st.DrawFn, keys: Sequence[str] = ()) -> tuple[dict[str, list[Any]], ZoneInfo]:
    """Columns of every type, some all NULL, some partly; ``keys`` never NULL (primary keys)."""
    n = draw(st.integers(1, 12))
    zone = draw(st.sampled_from([ZoneInfo("UTC"), ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")]))
    data = {}
    for name, (_, values) in COLUMNS.items():
        nulls = 0.0 if name in keys else draw(st.sampled_from([0.0, 0.3, 1.0]))
        data[name] = [None if draw(st.floats(0, 1)) < nulls else draw(values) for _ in range(n)]
    return data, zone


def frames(data: dict[str, Sequence[Any]], zone: ZoneInfo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The batch as the per-value path built it, and as the SQL connector builds it now."""
    cols = {name: Col(field) for name, (field, _) in COLUMNS.items() if name in data}
    old = pd.DataFrame({n: python_series(v, cols[n], zone) for n, v in data.items()})
    new = pd.DataFrame({n: series(v, cols[n], zone) for n, v in data.items()})
    return old, new


def _plain(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def staged_values(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [tuple(_plain(v) for v in row) for row in plain_rows(df).itertuples(index=False, name=None)]


# -- the properties -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_arrow_batches_hash_and_stage_as_before(batch: tuple[dict[str, list[Any]], ZoneInfo]) -> None:
    data, zone = batch
    old, new = frames(data, zone)
    assert all(isinstance(new[c].dtype, pd.ArrowDtype) or new[c].dtype == object for c in new.columns)
    fields = tuple(data)
    assert new.pipe(row_hashes, fields).tolist() == legacy_row_hashes(old, fields).tolist()
    assert row_hashes(old, fields).tolist() == legacy_row_hashes(old, fields).tolist()
    assert staged_values(new) == staged_values(old)
    for name in ("d2", "d9", "d20"):  # exact money: the very Decimal, printed the same
        assert [None if v is None else str(v) for v in plain_rows(new)[name]] == \
            [None if v is None else str(v) for v in plain_rows(old)[name]]


KEYS = st.lists(st.sampled_from(["i", "s", "b", "d0", "d2", "d9", "d20", "day", "at", "atz"]),
                min_size=1, max_size=3, unique=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KEYS.flatmap(lambda key: st.tuples(st.just(key), batches(key))))
def test_arrow_record_ids_as_before(drawn: tuple[list[str], tuple[dict[str, list[Any]], ZoneInfo]]) -> None:
    key, (data, zone) = drawn
    old, new = frames(data, zone)
    pk = tuple(key)
    assert record_ids(new, pk).tolist() == legacy_record_ids(old, pk).tolist()
    assert record_ids(old, pk).tolist() == legacy_record_ids(old, pk).tolist()


def test_extreme_values_by_hand() -> None:
    """The values where Python and Arrow print differently unless told: scientific notation below
    1e-6, negative zero, 38 digits, midnight and microsecond timestamps, years before 1000."""
    data = {
        "d9": [Decimal("0.000000100"), Decimal("0E-9"), Decimal("-0.000000001"), Decimal("12.5"),
               Decimal("-99999999999999999999999999999.999999999"), None],
        "d20": [Decimal("1E-20"), Decimal("-0E-20"), Decimal("0.00000100000000000000"),
                Decimal("123456789012345678.12345678901234567890"), Decimal("1"), None],
        "at": [datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 0, 1), datetime(999, 12, 31, 23, 59, 59),
               datetime(1969, 12, 31, 23, 59, 59, 500000), datetime(2026, 3, 29, 2, 30), None],
        "day": [date(1, 1, 1), date(999, 1, 2), date(2026, 12, 7), date(9999, 12, 31), None, None],
        "s": ["", "ünïcødé ✓", "a|b", "\n\"quoted\",", "None", None],
    }
    old, new = frames(data, ZoneInfo("Europe/Berlin"))
    assert legacy_row_hashes(old, tuple(data)).tolist() == row_hashes(new, tuple(data)).tolist()
    assert staged_values(new) == staged_values(old)
    assert plain_rows(new)["d9"][0] == Decimal("1.00E-7") and str(plain_rows(new)["d9"][0]) == "1.00E-7"
    key = ("at", "d20")
    full = {k: v[:5] for k, v in data.items()}
    old, new = frames(full, ZoneInfo("UTC"))
    assert record_ids(new, key).tolist() == legacy_record_ids(old, key).tolist()
    assert record_ids(new, key)[3] == "1969-12-31T23:59:59.500000|123456789012345678.12345678901234567890"


def random_batch(rng: random.Random, n: int) -> dict[str, list[Any]]:
    """A seeded random batch (no hypothesis): the round trip through a real stage table."""
    def dec(scale: int) -> Decimal | None:
        if rng.random() < 0.1:
            return None
        digits = rng.choice([1, 5, 16])  # SQLite keeps money as a 64-bit count of its smallest unit
        return Decimal(rng.randrange(-(10**digits) + 1, 10**digits)).scaleb(-scale)

    return {
        "i": [rng.randrange(-(2**63), 2**63) for _ in range(n)],
        "s": [rng.choice(["", "EMEA", "ünï ✓", "a|b", None, "x" * rng.randrange(50)]) for _ in range(n)],
        "b": [rng.choice([True, False, None]) for _ in range(n)],
        "d2": [dec(2) for _ in range(n)],
        "d9": [dec(9) for _ in range(n)],
        "day": [None if rng.random() < 0.1 else date(2026, 1, 1) + timedelta(days=rng.randrange(-9999, 9999))
                for _ in range(n)],
        "at": [None if rng.random() < 0.1 else datetime(2026, 1, 1) + timedelta(
            microseconds=rng.randrange(-10**15, 10**15)) for _ in range(n)],
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_staged_rows_match_the_per_value_path(store: Store, seed: int) -> None:
    """Stage the same values as an Arrow-backed batch and as the per-value one (two streams), on
    SQLite and PostgreSQL (COPY): the stage tables hold the same ids, hashes and values."""
    data = random_batch(random.Random(seed), 400)
    old, new = frames(data, ZoneInfo("Europe/Berlin"))
    schema = StreamSchema(tuple(COLUMNS[n][0] for n in data))
    got = {}
    for name, df in (("old", old), ("new", new)):
        w = store.begin_sync("run", name, "erp", ("i",), schema, reconcile=False)
        w.stage(df.assign(**{RID: record_ids(df, ("i",))}))
        stg = w.tables.stage
        with store.engine.connect() as conn:
            got[name] = conn.execute(sa.select(stg).order_by(stg.c[RID])).mappings().all()
        w.commit(None)
    assert len(got["new"]) == len(data["i"])
    # and they are the values themselves, as the per-value path had them (exact decimals, naive UTC)
    want = {rid: dict(zip(old.columns, row, strict=True)) for rid, row in
            zip(legacy_record_ids(old, ("i",)), staged_values(old), strict=True)}
    hashes = dict(zip(legacy_record_ids(old, ("i",)), legacy_row_hashes(old, tuple(data)), strict=True))
    for r in got["new"]:
        assert {n: r[n] for n in data} == want[r[RID]] and r["_hash"] == hashes[r[RID]]
    strip = [{k: v for k, v in r.items() if k != "_sync"} for r in got["new"]]
    assert strip == [{k: v for k, v in r.items() if k != "_sync"} for r in got["old"]]
