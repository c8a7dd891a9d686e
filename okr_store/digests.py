"""Key-range digests of a stream's records as the store holds them during a sync: the store side of
delete detection in proportion to change (the descent is :mod:`flows.deletes`).

The key set is every live record plus the records this sync staged that are not live yet (new ones):
what the source should list if nothing was deleted. A digest of a bucket of it is ``(rows, Σ h1, Σ h2)``
with ``h1``/``h2`` the first and second 32 bits of ``md5(_rid)``; the record id is the key text the
source hashes (:mod:`connectors.sql_digest`, which computes the same hash in the source's SQL; the store
cannot import connectors, so the few lines of hash SQL are written twice and a test holds them equal).
On SQLite, which has no md5, ``okrsync_h32`` is registered on the connection (Python's hashlib).

Nothing here writes: the digests and keys are read in their own short transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from okr_store.staging import RID

Digest = tuple[int, int, int]  # rows, Σ h1, Σ h2
Buckets = tuple[int, Sequence[int]]  # (width, bucket numbers)
BUCKETS_PER_QUERY = 5_000


def h32(text: str | None, part: int) -> int | None:
    """32 bits of ``md5(text)`` (``part`` 0: hex digits 1–8, 1: digits 9–16), unsigned."""
    if text is None:
        return None
    hexed = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return int(hexed[part * 8:part * 8 + 8], 16)


def _hash(text: sa.ColumnElement[Any], dialect: str, part: int) -> sa.ColumnElement[Any]:
    if dialect == "sqlite":
        return sa.func.okrsync_h32(text, part)
    from sqlalchemy.dialects import postgresql  # not at import: a SQLite store never loads the dialect

    hexed = sa.func.substr(sa.func.md5(text), part * 8 + 1, 8)
    return sa.cast(sa.cast(sa.literal("x", sa.String) + hexed, postgresql.BIT(32)), sa.BigInteger)


def _bucket(pos: sa.ColumnElement[Any], origin: int, width: int) -> sa.ColumnElement[Any]:
    return (pos - sa.literal(origin, sa.BigInteger)) // sa.literal(width, sa.BigInteger)


def _conditions(pos: sa.ColumnElement[Any], origin: int,
                within: Buckets | None) -> list[sa.ColumnElement[bool] | None]:
    """One WHERE per statement: the bucket numbers of ``within`` (a hashed IN: one scan however many)."""
    if within is None:
        return [None]
    width, ids = within
    return [_bucket(pos, origin, width).in_(list(ids[i:i + BUCKETS_PER_QUERY]))
            for i in range(0, len(ids), BUCKETS_PER_QUERY)]


class StoreKeyDigests:
    """Digests of the live-plus-staged record ids of one sync of one stream."""

    def __init__(self, engine: sa.Engine, records: sa.Table, stage: sa.Table, sync_id: int,
                 positional: bool) -> None:
        self.engine, self.positional = engine, positional
        self.dialect = engine.dialect.name
        live = sa.select(records.c[RID]).where(records.c["_to"].is_(None))
        new = sa.select(stage.c[RID]).where(
            stage.c._sync == sync_id,
            ~sa.exists().where(records.c[RID] == stage.c[RID], records.c["_to"].is_(None)))
        self.ids = sa.union_all(live, new).subquery("ids")
        rid = self.ids.c[RID]
        # A positional key is one integer: its record id is its decimal digits.
        self.pos = sa.cast(rid, sa.BigInteger) if positional else _hash(rid, self.dialect, 0)

    def _all(self, stmt: sa.Select[Any]) -> Sequence[Any]:
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
                    "okrsync_h32", 2, h32, deterministic=True)
            return conn.execute(stmt).all()

    def span(self) -> tuple[int, int, int]:
        """Rows, lowest and highest position (0, 0 without rows; the whole hash space by hash)."""
        if not self.positional:
            return int(self._all(sa.select(sa.func.count()).select_from(self.ids))[0][0]), 0, 2**32 - 1
        n, lo, hi = self._all(sa.select(sa.func.count(), sa.func.min(self.pos), sa.func.max(self.pos)))[0]
        return int(n), int(lo if lo is not None else 0), int(hi if hi is not None else 0)

    def digests(self, origin: int, width: int, within: Buckets | None) -> dict[int, Digest]:
        """Digest of each non-empty bucket ``(position - origin) // width`` (within ``within``)."""
        rid = self.ids.c[RID]
        bucket = _bucket(self.pos, origin, width).label("b")
        out: dict[int, Digest] = {}
        for where in _conditions(self.pos, origin, within):
            stmt = sa.select(bucket, sa.func.count(), sa.func.sum(_hash(rid, self.dialect, 0)),
                             sa.func.sum(_hash(rid, self.dialect, 1))).group_by(bucket)
            if where is not None:
                stmt = stmt.where(where)
            for b, n, s1, s2 in self._all(stmt):
                old = out.get(int(b), (0, 0, 0))
                out[int(b)] = (old[0] + int(n), old[1] + int(s1 or 0), old[2] + int(s2 or 0))
        return out

    def keys(self, origin: int, within: Buckets) -> set[str]:
        """The record ids within ``within``."""
        found: set[str] = set()
        for where in _conditions(self.pos, origin, within):
            assert where is not None
            found.update(r[0] for r in self._all(sa.select(self.ids.c[RID]).where(where)))
        return found
