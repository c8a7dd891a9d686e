"""Key-range digests of a stream's record ids, kept in the store and updated by every commit: the store
side of delete detection in proportion to change (the descent is :mod:`flows.deletes`).

A digest of a set of record ids is ``(rows, Σ h1, Σ h2)`` with ``h1``/``h2`` the first and second 32 bits
of ``md5(_rid)``; the record id is the key text the source hashes (:mod:`connectors.sql_digest`, which
computes the same hash in the source's SQL; the store cannot import connectors, so the few lines of hash
SQL are written twice and a test holds them equal). On SQLite, which has no md5, ``okrsync_h32`` is
registered on the connection (Python's hashlib).

The ids fall into buckets ``(position - origin) // width`` (a :class:`Scheme`, one per stream in
``digest_scheme``): the position is the key itself when the key is one integer (``positional``), else
``h1``. Integer keys in buckets at most ``BITS`` (32) wide are digested exactly instead: ``(rows,
Σ 2^(position − start of bucket), 0)``, the bucket's key set as a bit mask (:attr:`Scheme.bits`).
``record_digest`` holds the digest of every non-empty bucket of the stream's *live* ids:

* built from the records (one grouped query) the first time a sync compares digests, and again when the
  stream grew or shrank four times past what its width was chosen for (:func:`stale`);
* kept up to date by :func:`apply_commit`, in the commit's own transaction: the ids that became live in
  that sync (new, or back after a delete) add their hashes to their buckets, the ids it closed without a
  new version subtract theirs (sums are order-independent, so they add and subtract). A rolled-back
  commit rolls its digest change back with it. Updates (a new version of a live id) change nothing.
  A commit that puts an id below the origin drops the scheme: the next comparison builds it again.

The store side of one sync (:class:`StoreKeyDigests`) then costs in proportion to the change: the stored
digests, plus those of the new ids this sync staged (they are not live yet, but the source lists them),
plus the ids of the buckets that differ from the source's (by the primary-key index where the key is an
integer: the ids of a key range can be listed).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.staging import RID, among

Digest = tuple[int, int, int]  # rows, Σ h1, Σ h2
Buckets = tuple[int, Sequence[int]]  # (width, bucket numbers)
CHUNK = 5_000  # bucket numbers or ids per statement (SQLite's variable limit)
ENUMERATE = 200_000  # integer keys: at most this many candidate ids are looked up by index, else a scan
BY_INDEX = 512  # candidate ids per statement: longer IN lists tip PostgreSQL's planner into a table scan
REBUILD = 4  # a stored width this many times off the ideal one is rebuilt
MASK_STRETCH = 2  # integer keys may take this many times the bucket cap to keep exact bit masks
BITS = 32  # integer keys in buckets this narrow are digested exactly: a bit per key (see Scheme.bits)
HASH_SPAN = 2**32  # positions by hash: h1 in [0, 2³²)
ZERO: Digest = (0, 0, 0)


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


def register(conn: sa.Connection) -> None:
    """Make ``okrsync_h32`` callable on a SQLite connection (PostgreSQL has md5)."""
    if conn.dialect.name == "sqlite":
        conn.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
            "okrsync_h32", 2, h32, deterministic=True)


@dataclass(frozen=True)
class Scheme:
    """How ids map to buckets: ``(position - origin) // width``."""

    positional: bool
    origin: int
    width: int

    @property
    def bits(self) -> bool:
        """Integer keys in buckets at most ``BITS`` wide: the digest is ``(rows, Σ 2^(position − start
        of bucket), 0)``, the bucket's exact key set as a bit mask (no md5 to compute, nothing lost)."""
        return self.positional and self.width <= BITS

    def position(self, rid: str) -> int:
        return int(rid) if self.positional else int(h32(rid, 0) or 0)

    def digest(self, rid: str, pos: int) -> Digest:
        """One id's contribution to its bucket's digest."""
        if self.bits:
            return 1, 1 << ((pos - self.origin) % self.width), 0
        return 1, int(h32(rid, 0) or 0), int(h32(rid, 1) or 0)

    def sql_position(self, rid: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
        return sa.cast(rid, sa.BigInteger) if self.positional else _hash(rid, dialect, 0)

    def sql_bucket(self, pos: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return (pos - sa.literal(self.origin, sa.BigInteger)) // sa.literal(self.width, sa.BigInteger)


def digests_of(scheme: Scheme, rids: Iterable[str]) -> tuple[dict[int, Digest], int]:
    """Digests of ``rids`` by bucket, and how many ids lie below the origin (in no bucket)."""
    width = scheme.width
    out: dict[int, Digest] = {}
    below = 0
    for rid in rids:
        pos = scheme.position(rid)
        if pos < scheme.origin:
            below += 1
            continue
        b = (pos - scheme.origin) // width
        n, s1, s2 = out.get(b, ZERO)
        _, d1, d2 = scheme.digest(rid, pos)
        out[b] = (n + 1, s1 + d1, s2 + d2)
    return out, below


def ideal_width(positional: bool, n: int, lo: int, hi: int, rows_per_bucket: int, max_buckets: int) -> int:
    """The power of two cutting ``[lo, hi]`` into ≈ ``n / rows_per_bucket`` buckets (≤ ``max_buckets``):
    powers of two make each finer level's buckets nest in the coarser ones. Integer keys get ``BITS``
    at least: dense keys are then digested exactly, as bit masks, and fewer buckets are kept."""
    buckets = max(1, min(max_buckets, math.ceil(n / rows_per_bucket)))
    width = 1 << max(0, math.ceil(math.log2(max(1, math.ceil((hi - lo + 1) / buckets)))))
    if not positional:
        return width
    if width > BITS and hi - lo + 1 <= BITS * max_buckets * MASK_STRETCH:
        # Bit masks rather than md5 sums: up to MASK_STRETCH times the buckets (≈ 16.7M dense keys at
        # the default cap; ≈ 90 MB of digests in Python at most, per side), as md5 over every key on
        # every sync cost 70 of an 86 s no-change sync at 10M rows (BENCHMARKS.md, sizing).
        return BITS
    return max(width, BITS)


def sql_digest(pos: sa.ColumnElement[Any], rid: sa.ColumnElement[Any], dialect: str,
               scheme: Scheme) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """``Σ`` of the two digest parts over a group, in SQL (what :meth:`Scheme.digest` adds up)."""
    if scheme.bits:
        start = pos - sa.literal(scheme.origin, sa.BigInteger)
        offset = sa.cast(start % sa.literal(scheme.width, sa.BigInteger), sa.Integer)
        zero = sa.literal(0, sa.BigInteger)
        return sa.func.sum(sa.literal(1, sa.BigInteger).op("<<")(offset)), sa.func.sum(zero)
    return sa.func.sum(_hash(rid, dialect, 0)), sa.func.sum(_hash(rid, dialect, 1))


def stale(scheme: Scheme, stored: dict[int, Digest], rows_per_bucket: int, max_buckets: int) -> bool:
    """The stream grew or shrank so much that its width is ``REBUILD`` times off the ideal one, or its
    integer keys, digested by md5 sums, now fit bit masks."""
    n = sum(d[0] for d in stored.values())
    if n == 0:
        return False
    if scheme.positional:
        lo = scheme.origin + min(stored) * scheme.width
        hi = scheme.origin + (max(stored) + 1) * scheme.width - 1
    else:
        lo, hi = 0, HASH_SPAN - 1
    ideal = ideal_width(scheme.positional, n, lo, hi, rows_per_bucket, max_buckets)
    to_masks = scheme.positional and scheme.width > BITS and ideal == BITS  # md5 sums → exact masks
    return to_masks or scheme.width >= ideal * REBUILD or ideal >= scheme.width * REBUILD


def load(conn: sa.Connection, stream: str) -> Scheme | None:
    t = m.digest_scheme
    row = conn.execute(sa.select(t.c.positional, t.c.origin, t.c.width).where(t.c.stream == stream)).first()
    return None if row is None else Scheme(bool(row[0]), int(row[1]), int(row[2]))


def stored(conn: sa.Connection, stream: str) -> dict[int, Digest]:
    t = m.record_digest
    # One fetchall: iterating the result fetches row by row (31,250 rows at 1M records).
    query = sa.select(t.c.bucket, t.c.n, t.c.s1, t.c.s2).where(t.c.stream == stream)
    rows = conn.execute(query).tuples().all()
    return {int(b): (int(n), int(s1), int(s2)) for b, n, s1, s2 in rows}


def drop(conn: sa.Connection, stream: str) -> None:
    """Forget the stream's digests (the next comparison builds them again)."""
    conn.execute(m.record_digest.delete().where(m.record_digest.c.stream == stream))
    conn.execute(m.digest_scheme.delete().where(m.digest_scheme.c.stream == stream))


def recompute(conn: sa.Connection, records: sa.Table, scheme: Scheme) -> sa.Select[Any]:
    """``bucket, rows, Σ h1, Σ h2`` of the live ids at or above the origin, from the records themselves."""
    register(conn)
    rid = records.c[RID]
    pos = scheme.sql_position(rid, conn.dialect.name)
    bucket = scheme.sql_bucket(pos).label("b")
    return (sa.select(bucket, sa.func.count(), *sql_digest(pos, rid, conn.dialect.name, scheme))
            .where(records.c["_to"].is_(None), pos >= sa.literal(scheme.origin, sa.BigInteger))
            .group_by(bucket))


def build(conn: sa.Connection, stream: str, records: sa.Table, positional: bool, rows_per_bucket: int,
          max_buckets: int) -> Scheme:
    """Choose the stream's scheme from its live records and store their digests (one grouped query)."""
    register(conn)
    live = records.c["_to"].is_(None)
    if positional:
        pos = sa.cast(records.c[RID], sa.BigInteger)
        span = sa.select(sa.func.count(), sa.func.min(pos), sa.func.max(pos)).where(live)
        n, lo, hi = conn.execute(span).one()
        lo, hi = int(lo if lo is not None else 0), int(hi if hi is not None else 0)
    else:
        n = conn.execute(sa.select(sa.func.count()).select_from(records).where(live)).scalar_one()
        lo, hi = 0, HASH_SPAN - 1
    scheme = Scheme(positional, lo, ideal_width(positional, int(n), lo, hi, rows_per_bucket, max_buckets))
    drop(conn, stream)
    conn.execute(m.digest_scheme.insert().values(stream=stream, positional=positional, origin=scheme.origin,
                                                 width=scheme.width))
    digests = recompute(conn, records, scheme).subquery()
    conn.execute(m.record_digest.insert().from_select(
        ["stream", "bucket", "n", "s1", "s2"],
        sa.select(sa.literal(stream, sa.String), *digests.c)))
    return scheme


def apply_commit(conn: sa.Connection, stream: str, records: sa.Table, sync_id: int) -> None:
    """In the commit's transaction, after its records changed: add the ids that became live in sync
    ``sync_id`` to the stream's stored digests and subtract those it closed without a new version."""
    scheme = load(conn, stream)
    if scheme is None:
        return
    # Two index scans and set arithmetic, not an anti-join: right after the commit's writes the
    # planner's statistics do not know these rows, and a nested loop over them would be quadratic.
    opened = set(conn.execute(sa.select(records.c[RID]).where(records.c["_from"] == sync_id)).scalars().all())
    closed = set(conn.execute(sa.select(records.c[RID]).where(records.c["_to"] == sync_id)).scalars().all())
    plus, below_plus = digests_of(scheme, opened - closed)  # new, or back after a delete
    minus, below_minus = digests_of(scheme, closed - opened)  # deleted (a new version: an update)
    if below_plus or below_minus:
        drop(conn, stream)
        return
    delta = dict(plus)
    for b, (n, s1, s2) in minus.items():
        dn, d1, d2 = delta.get(b, ZERO)
        delta[b] = (dn - n, d1 - s1, d2 - s2)
    delta = {b: d for b, d in delta.items() if d != ZERO}
    if not add(conn, stream, delta):
        drop(conn, stream)  # the stored digests disagree with the records: built again at next use


def add(conn: sa.Connection, stream: str, delta: dict[int, Digest]) -> bool:
    """Add ``delta`` to the stored digests; False if a bucket would go negative (they were wrong)."""
    t = m.record_digest
    buckets = sorted(delta)
    old: dict[int, Digest] = {}
    for i in range(0, len(buckets), CHUNK):
        rows = conn.execute(sa.select(t.c.bucket, t.c.n, t.c.s1, t.c.s2).where(
            t.c.stream == stream, t.c.bucket.in_(buckets[i:i + CHUNK]))).tuples().all()
        old.update({int(b): (int(n), int(s1), int(s2)) for b, n, s1, s2 in rows})
    gone, changed, new = [], [], []
    for b in buckets:
        was = old.get(b, ZERO)
        n, s1, s2 = (was[0] + delta[b][0], was[1] + delta[b][1], was[2] + delta[b][2])
        if n < 0 or (n == 0 and (s1, s2) != (0, 0)):
            return False
        if n == 0:
            gone.append(b)
        elif b in old:
            changed.append({"b_": b, "n_": n, "s1_": s1, "s2_": s2})
        else:
            new.append({"stream": stream, "bucket": b, "n": n, "s1": s1, "s2": s2})
    for i in range(0, len(gone), CHUNK):
        conn.execute(t.delete().where(t.c.stream == stream, t.c.bucket.in_(gone[i:i + CHUNK])))
    if changed:
        conn.execute(t.update().where(t.c.stream == stream, t.c.bucket == sa.bindparam("b_"))
                     .values(n=sa.bindparam("n_"), s1=sa.bindparam("s1_"), s2=sa.bindparam("s2_")), changed)
    if new:
        conn.execute(t.insert(), new)
    return True


class StoreKeyDigests:
    """The store side of one sync's comparison: the live ids plus the new ones this sync staged (what
    the source should list if nothing was deleted)."""

    def __init__(self, engine: sa.Engine, stream: str, records: sa.Table, stage: sa.Table, sync_id: int,
                 positional: bool) -> None:
        self.engine, self.stream, self.positional = engine, stream, positional
        self.records, self.stage, self.sync_id = records, stage, sync_id
        self.dialect = engine.dialect.name
        self.scheme: Scheme | None = None

    def _live(self) -> sa.ColumnElement[bool]:
        return sa.exists().where(self.records.c[RID] == self.stage.c[RID], self.records.c["_to"].is_(None))

    def top(self, rows_per_bucket: int, max_buckets: int) -> tuple[int, int, dict[int, Digest]]:
        """``(origin, width, digests)`` of every non-empty bucket: the stored digests (built first if
        need be) plus the new ids staged by this sync."""
        with self.engine.begin() as conn:
            scheme = load(conn, self.stream)
            if scheme is None or scheme.positional != self.positional:
                scheme = build(conn, self.stream, self.records, self.positional, rows_per_bucket, max_buckets)
            digests = stored(conn, self.stream)
            if stale(scheme, digests, rows_per_bucket, max_buckets):
                scheme = build(conn, self.stream, self.records, self.positional, rows_per_bucket, max_buckets)
                digests = stored(conn, self.stream)
            new = conn.execute(sa.select(self.stage.c[RID]).where(
                self.stage.c._sync == self.sync_id, ~self._live())).scalars().all()
            # New ids below the origin lie in no bucket: the source's digests leave them out alike.
            for b, (n, s1, s2) in digests_of(scheme, new)[0].items():
                was = digests.get(b, ZERO)
                digests[b] = (was[0] + n, was[1] + s1, was[2] + s2)
        self.scheme = scheme
        return scheme.origin, scheme.width, digests

    def keys(self, origin: int, within: Buckets) -> set[str]:
        """The ids (live or staged) in the buckets ``within`` (at or above the origin)."""
        assert self.scheme is not None and self.scheme.origin == origin, "top() first"
        width, ids = within
        rec, stg = self.records, self.stage
        found: set[str] = set()
        with self.engine.connect() as conn:
            register(conn)
            if self.positional and len(ids) * width <= ENUMERATE:  # the key range's ids, by index
                candidates = [str(origin + b * width + i) for b in ids for i in range(width)]
                for listed in among(rec.c[RID], candidates, self.dialect, BY_INDEX):
                    found.update(conn.execute(sa.select(rec.c[RID]).where(
                        listed, rec.c["_to"].is_(None))).scalars().all())
                for listed in among(stg.c[RID], candidates, self.dialect, BY_INDEX):
                    found.update(conn.execute(sa.select(stg.c[RID]).where(
                        stg.c._sync == self.sync_id, listed)).scalars().all())
                return found
            union = sa.union_all(sa.select(rec.c[RID]).where(rec.c["_to"].is_(None)),
                                 sa.select(stg.c[RID]).where(stg.c._sync == self.sync_id)).subquery("ids")
            pos = self.scheme.sql_position(union.c[RID], self.dialect)
            numbers = sorted(ids)
            for i in range(0, len(numbers), CHUNK):
                bucket = (pos - sa.literal(origin, sa.BigInteger)) // sa.literal(width, sa.BigInteger)
                found.update(conn.execute(sa.select(union.c[RID]).where(
                    pos >= sa.literal(origin, sa.BigInteger), bucket.in_(numbers[i:i + CHUNK])
                )).scalars().all())
        return found
