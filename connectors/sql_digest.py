"""Key-range digests of a SQL stream, computed by the source database (delete detection in proportion
to change; the descent that compares them with the store's is :mod:`flows.deletes`).

A *digest* of a set of keys is ``(rows, Σ h1, Σ h2)``, where ``h1``/``h2`` are the first and second 32
bits of ``md5(key text)`` and the key text is the record id okrsync builds from the key (the values
joined with ``|``; :func:`connectors.base.record_ids`). Sums do not depend on row order, so the source
and the store compute them with one ``GROUP BY`` each, and two equal digests mean equal key sets (short
of a 64-bit collision). The hash in SQL, per database:

* PostgreSQL: ``CAST(CAST('x' || substr(md5(t), 1, 8) AS BIT(32)) AS BIGINT)``;
* MySQL/MariaDB: ``CAST(CONV(SUBSTRING(MD5(t), 1, 8), 16, 10) AS UNSIGNED)``, over the key text as
  utf8mb4 (the store hashes UTF-8);
* SQLite has no md5: okrsync registers ``okrsync_h32(t, part)`` (Python's hashlib) on the connection.

A digest groups keys into buckets ``(position - origin) // width``. The *position* is the key itself
when the key is one integer column (a bucket is then a key range, which the primary-key index serves),
else ``h1`` (a bucket is a range of hash values: the same buckets on every database, whatever its
collation). For one integer key in buckets at most 32 wide the store asks for bit masks instead
(:func:`digest_select` with ``bits``): the bucket's exact key set, integer arithmetic, no md5.
Only keys of INTEGER and (non-binary) STRING columns are digested: their SQL text equals the record
id. Other keys (dates, decimals) are compared by reading every key, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from connectors.base import KEY_SEPARATOR, StreamSpec
from okrsync.schema import FieldType

if TYPE_CHECKING:
    import pandas as pd

Digest = tuple[int, int, int]  # rows, Σ h1, Σ h2
Buckets = tuple[int, Sequence[int]]  # (width, bucket numbers)
RANGES_PER_QUERY = 400  # bounded statements (SQLite's variable limit, MySQL's packet size)
BUCKETS_PER_QUERY = 5_000


def h32(text: str | None, part: int) -> int | None:
    """32 bits of ``md5(text)`` (``part`` 0: hex digits 1–8, 1: digits 9–16) as an unsigned integer:
    what the SQL of each database computes (registered as ``okrsync_h32`` on SQLite)."""
    if text is None:
        return None
    hexed = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return int(hexed[part * 8:part * 8 + 8], 16)


def register_h32(dbapi_conn: Any) -> None:
    """Make ``okrsync_h32(text, part)`` callable on a SQLite DB-API connection."""
    dbapi_conn.create_function("okrsync_h32", 2, h32, deterministic=True)


def hash_expr(text: sa.ColumnElement[Any], backend: str, part: int) -> sa.ColumnElement[Any]:
    """``h1`` (part 0) or ``h2`` (part 1) of a text expression, in the dialect's SQL."""
    if backend == "sqlite":
        return sa.func.okrsync_h32(text, part)
    # The dialects' modules only here: loading a project (every read command) never needs them.
    from sqlalchemy.dialects import mysql, postgresql

    hexed = sa.func.substr(sa.func.md5(text), part * 8 + 1, 8)
    if backend == "postgresql":
        return sa.cast(sa.cast(sa.literal("x", sa.String) + hexed, postgresql.BIT(32)), sa.BigInteger)
    return sa.cast(sa.func.conv(hexed, 16, 10), mysql.INTEGER(unsigned=True))


def bucket_of(pos: sa.ColumnElement[Any], origin: int, width: int) -> sa.ColumnElement[Any]:
    """``(pos - origin) // width``: integer division on every database (MySQL ``DIV``)."""
    return (pos - sa.literal(origin, sa.BigInteger)) // sa.literal(width, sa.BigInteger)


def digest_select(
    pos: sa.ColumnElement[Any], text: sa.ColumnElement[Any], backend: str, origin: int, width: int,
    bits: bool = False,
) -> sa.Select[Any]:
    """``bucket, count(*), Σ h1, Σ h2`` grouped by bucket (no FROM or WHERE yet). With ``bits`` (an
    integer key, buckets at most 32 wide): ``bucket, count(*), Σ 2^(pos − origin mod width), 0``, the
    bucket's exact key set as a bit mask, without hashing anything."""
    bucket = bucket_of(pos, origin, width).label("b")
    if bits:
        offset = sa.cast((pos - sa.literal(origin, sa.BigInteger)) % sa.literal(width, sa.BigInteger),
                         sa.Integer)
        bit = sa.literal(1, sa.BigInteger).op("<<")(offset)
        # The keys of a bucket are distinct, so OR-ing their bits is their sum. PostgreSQL sums a bigint
        # as numeric (slower, and a Decimal per bucket in Python); SQLite has no bit_or aggregate.
        mask = sa.func.sum(bit) if backend == "sqlite" else sa.func.bit_or(bit)
        return sa.select(bucket, sa.func.count(), mask, sa.literal(0, sa.BigInteger)).group_by(bucket)
    return sa.select(bucket, sa.func.count(), sa.func.sum(hash_expr(text, backend, 0)),
                     sa.func.sum(hash_expr(text, backend, 1))).group_by(bucket)


def within_ranges(pos: sa.ColumnElement[Any], ranges: Sequence[tuple[int, int]]) -> sa.ColumnElement[bool]:
    """``pos`` in any of the half-open ranges ``[lo, hi)``."""
    return sa.or_(*(sa.and_(pos >= sa.literal(lo, sa.BigInteger), pos < sa.literal(hi, sa.BigInteger))
                    for lo, hi in ranges))


def conditions(pos: sa.ColumnElement[Any], origin: int, within: Buckets | None,
               ranges: bool) -> list[sa.ColumnElement[bool] | None]:
    """The WHERE of each statement covering ``within`` (None: everything): key ranges when an index on
    the position serves them (``ranges``; consecutive buckets merged), else bucket numbers (IN)."""
    if within is None:
        return [None]
    width, ids = within
    if not ranges:
        return [bucket_of(pos, origin, width).in_(list(ids[i:i + BUCKETS_PER_QUERY]))
                for i in range(0, len(ids), BUCKETS_PER_QUERY)]
    merged: list[tuple[int, int]] = []
    for b in sorted(ids):
        lo, hi = origin + b * width, origin + (b + 1) * width
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    step = RANGES_PER_QUERY
    return [within_ranges(pos, merged[i:i + step]) for i in range(0, len(merged), step)]


def add_digests(into: dict[int, Digest], rows: Sequence[Any]) -> None:
    """Sum rows ``(bucket, n, s1, s2)`` into ``into`` (buckets cut by disjoint ranges add up)."""
    for b, n, s1, s2 in rows:
        old = into.get(int(b), (0, 0, 0))
        into[int(b)] = (old[0] + int(n), old[1] + int(s1 or 0), old[2] + int(s2 or 0))


class SqlKeyDigests:
    """The source side of the comparison for one stream (see the module docstring)."""

    def __init__(self, engine: sa.Engine, backend: str, source: sa.FromClause, stream: StreamSpec,
                 positional: bool, frames: Callable[[sa.Select[Any]], Iterator[pd.DataFrame]],
                 on_error: Callable[[sa.exc.DBAPIError], Exception]) -> None:
        self.engine, self.backend, self.stream, self.positional = engine, backend, stream, positional
        self._frames, self._on_error = frames, on_error
        keys = [source.c[k] for k in stream.primary_key]
        self._source, self._keys = source, keys
        parts = [self._text(c) for c in keys]
        text = parts[0]
        for p in parts[1:]:
            text = text + sa.literal(KEY_SEPARATOR, sa.String) + p
        self.text = text
        self.pos = keys[0] if positional else hash_expr(text, backend, 0)

    def _text(self, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # the column's own text: CAST of an integer is its decimal digits on every database
        if self.backend == "mysql":
            from sqlalchemy.dialects import mysql

            return sa.cast(col, mysql.CHAR(charset="utf8mb4"))
        return sa.cast(col, sa.String)

    def _run(self, fn: Callable[[sa.Connection], Any]) -> Any:
        try:
            with self.engine.connect() as conn:
                if self.backend == "sqlite":
                    register_h32(conn.connection.dbapi_connection)
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            raise self._on_error(exc) from None

    def digests(self, origin: int, width: int, within: Buckets | None,
                bits: bool = False) -> dict[int, Digest]:
        """Digest of each non-empty bucket ``(position - origin) // width`` (within ``within``): one
        grouped query over every key at the top level, key ranges (indexed) or bucket numbers below.
        Keys below the origin lie in no bucket (the store has no record there to delete)."""
        out: dict[int, Digest] = {}
        for where in conditions(self.pos, origin, within, self.positional):
            stmt = digest_select(self.pos, self.text, self.backend, origin, width, bits and self.positional
                                 ).select_from(self._source)
            if where is not None:
                stmt = stmt.where(where)
            elif self.positional:
                stmt = stmt.where(self.pos >= sa.literal(origin, sa.BigInteger))
            add_digests(out, self._run(_all(stmt)))
        return out

    def keys(self, origin: int, within: Buckets) -> Iterator[pd.DataFrame]:
        """The primary-key columns of the rows within ``within``, read as the full key read reads them."""
        for where in conditions(self.pos, origin, within, self.positional):
            assert where is not None
            yield from self._frames(sa.select(*self._keys).where(where))


def _all(stmt: sa.Select[Any]) -> Callable[[sa.Connection], Sequence[Any]]:
    return lambda conn: conn.execute(stmt).all()


def digestible(types: Sequence[tuple[FieldType, bool]]) -> bool:
    """Keys of these (type, binary) columns have SQL text equal to their record id."""
    return all(t in (FieldType.INTEGER, FieldType.STRING) and not binary for t, binary in types)
