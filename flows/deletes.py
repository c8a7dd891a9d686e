"""Deletes found in proportion to change: key-range digests compared between source and store.

Reading every key of a stream to find the records deleted at the source costs about 10 s per million
rows, on every sync. Instead, both sides give *digests* of their key sets — per bucket of keys,
``(rows, Σ h1, Σ h2)`` with ``h1``/``h2`` 32-bit parts of ``md5(record id)``, order-independent. The
source computes its own in one grouped query per sync (:mod:`connectors.sql_digest`). The store keeps
its digests in a table that every commit updates (:mod:`okr_store.digests`): reading them costs the
store in proportion to the change. The store's key set is its live records plus the new ones this sync
staged: what the source should list when nothing was deleted.

:func:`find_deleted` compares the two:

1. *Top level*: the key space (the key itself for one integer key, else ``h1``, see
   :class:`connectors.base.KeyDigests`) is cut into ``≈ rows / LEAF_ROWS`` buckets (at most
   ``MAX_BUCKETS``) of a power-of-two width, as the store chose when it built its digests: the
   stored digests on the store side, one grouped query over every key on the source (≈ 2 MB of rows
   back at a million rows). Powers of two make each level's buckets nest in the level above.
2. Equal digests: nothing there differs (short of a 64-bit collision); skipped. A bucket the store
   has no records in cannot hold a deleted record (rows inserted at the source since the read):
   skipped too. A bucket the source has no rows in: every store record there is deleted (no source
   read).
3. A differing bucket of at most ``LEAF_ROWS`` rows (or one key wide) is a *leaf*: its keys are read
   from both sides, as the full key read reads them (same conversion, same record ids), and the store
   ids the source does not list are the deleted ones. A larger one is split into ``FANOUT`` narrower
   buckets, compared again, and so on: the source's queries are restricted to the differing buckets
   (key ranges when its index serves them, bucket numbers otherwise); the store's ids of the differing
   top-level buckets are read once (by index for an integer key) and the finer digests of the store
   side computed from them here.

Integer keys in buckets at most ``BITS`` (32) wide — the usual case, dense keys — are digested
exactly: ``(rows, Σ 2^(offset in the bucket), 0)``, a bit mask of the bucket's keys, no md5 (cheap on
the source: integer arithmetic, one pass). A differing bucket's deleted keys are then the store's ids
whose bit the source's mask lacks: no source key read, no second level.

The result is the very set a full key read gives (store ids minus source ids), but the key reads cover
only the ranges that differ: a sync with no delete reads no key at all. Failures raise before anything
is staged; the deleted ids are staged as reported deletions, so the commit closes them with the rest,
atomically, or the sync's ``fail`` drops them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.base import KeyDigests, SourceConnector, StreamSpec, record_ids
from okr_store.digests import BITS, h32
from okr_store.records import SyncWriter
from okrsync.errors import ConfigError

log = logging.getLogger("okrsync.deletes")

LEAF_ROWS = 16  # a differing bucket this small has its keys read instead of split
FANOUT = 16  # sub-buckets per differing bucket at the next level (a power of two: buckets nest)
MAX_BUCKETS = 262_144  # top-level buckets, whatever the row count (a few MB of digests at most)

Digest = tuple[int, int, int]
Buckets = tuple[int, Sequence[int]]  # (width, bucket numbers): the positions origin + [b·width, (b+1)·width)


class StoreSide(Protocol):
    """The store's digests (:class:`okr_store.digests.StoreKeyDigests`)."""

    def top(self, rows_per_bucket: int, max_buckets: int) -> tuple[int, int, dict[int, Digest]]: ...

    def keys(self, origin: int, within: Buckets) -> set[str]: ...


@dataclass(frozen=True)
class Outcome:
    deleted: list[str]  # record ids live in the store (or staged new) that the source no longer has
    keys_read: int  # source keys read (leaves only)
    levels: int  # digest comparisons made on each side
    leaves: int  # buckets whose keys were read


def _position(rid: str, positional: bool) -> int:
    return int(rid) if positional else int(h32(rid, 0) or 0)


def _digests(ours: dict[str, tuple[int, int, int]], origin: int, width: int) -> dict[int, Digest]:
    """Digests by bucket of ``ours`` (id → position, h1, h2)."""
    out: dict[int, Digest] = {}
    for pos, h1, h2 in ours.values():
        b = (pos - origin) // width
        n, s1, s2 = out.get(b, (0, 0, 0))
        out[b] = (n + 1, s1 + h1, s2 + h2)
    return out


def _by_bits(store: StoreSide, origin: int, width: int, differing: list[int],
             theirs: dict[int, Digest]) -> Outcome:
    """The store's ids, in buckets that differ, whose bit the source's mask lacks."""
    deleted = []
    if differing:
        wanted = set(differing)
        for rid in store.keys(origin, (width, differing)):
            pos = int(rid)
            b = (pos - origin) // width
            mask = theirs.get(b, (0, 0, 0))[1]
            if pos >= origin and b in wanted and not mask >> ((pos - origin) % width) & 1:
                deleted.append(rid)
    log.info("deletes by digests (bit masks): %d buckets differ, %d deleted", len(differing), len(deleted))
    return Outcome(sorted(deleted), 0, 1, len(differing))


def find_deleted(source: KeyDigests, store: StoreSide, primary_key: tuple[str, ...], *,
                 leaf_rows: int | None = None, fanout: int | None = None,
                 max_buckets: int | None = None) -> Outcome:
    """The store's record ids the source no longer lists (module docstring). The sizes default to
    this module's ``LEAF_ROWS``, ``FANOUT`` and ``MAX_BUCKETS``."""
    leaf_rows, fanout = leaf_rows or LEAF_ROWS, fanout or FANOUT
    max_buckets = max_buckets or MAX_BUCKETS
    origin, width, top = store.top(leaf_rows, max_buckets)
    if not top:
        return Outcome([], 0, 0, 0)
    bits = source.positional and width <= BITS
    theirs = source.digests(origin, width, None, bits)
    levels = 1
    differing = [b for b in sorted(top) if top[b] != theirs.get(b, (0, 0, 0))]
    if bits:  # each digest is its bucket's exact key set: no key to read, no level to descend
        return _by_bits(store, origin, width, differing, theirs)
    # The store's ids in the differing buckets, read once: the finer levels' digests of the store side
    # are computed from them here (the stored digests cover the top level only).
    ours: dict[str, tuple[int, int, int]] = {}
    if differing:
        wanted = set(differing)
        for rid in store.keys(origin, (width, differing)):
            pos = _position(rid, source.positional)
            if pos >= origin and (pos - origin) // width in wanted:
                ours[rid] = (pos, int(h32(rid, 0) or 0), int(h32(rid, 1) or 0))
    mine = _digests(ours, origin, width)
    deleted: set[str] = set()
    keys_read = leaves_read = 0
    current = [b for b in differing if b in mine]
    while current:
        both: list[int] = []  # differing leaves with rows on both sides
        only_store: list[int] = []  # leaves the source has no row in: all deleted
        split: list[int] = []
        for bucket in current:  # a bucket without store records holds nothing to delete
            here, other = mine[bucket], theirs.get(bucket, (0, 0, 0))
            if here == other:
                continue
            if other[0] == 0:
                only_store.append(bucket)
            elif max(here[0], other[0]) <= leaf_rows or width == 1:
                both.append(bucket)
            else:
                split.append(bucket)
        if only_store:
            gone = set(only_store)
            deleted |= {rid for rid, (pos, _, _) in ours.items() if (pos - origin) // width in gone}
        if both:
            listed: set[str] = set()
            for frame in source.keys(origin, (width, both)):
                keys_read += len(frame)
                listed.update(record_ids(frame, primary_key))
            leaf = set(both)
            deleted |= {rid for rid, (pos, _, _) in ours.items()
                        if (pos - origin) // width in leaf and rid not in listed}
        leaves_read += len(both) + len(only_store)
        if not split:
            break
        coarse, within = width, set(split)
        ours = {rid: v for rid, v in ours.items() if (v[0] - origin) // coarse in within}
        width = max(1, width // fanout)
        theirs = source.digests(origin, width, (coarse, split))
        levels += 1
        mine = _digests(ours, origin, width)
        current = sorted(mine)
    log.info("deletes by digests: %d levels, %d leaf buckets, %d source keys read, %d deleted",
             levels, leaves_read, keys_read, len(deleted))
    return Outcome(sorted(deleted), keys_read, levels, leaves_read)


def stage_deletes(connector: SourceConnector, stream: StreamSpec, writer: SyncWriter) -> Outcome:
    """Find the stream's deleted records by digests and stage them as reported deletions."""
    import pandas as pd

    source = connector.key_digests(stream)
    if source is None:
        raise ConfigError(f"stream {stream.name!r}: source {stream.source!r} no longer gives key digests",
                          hint="run again: the sync decides anew how to find deleted records")
    found = find_deleted(source, writer.key_digests(source.positional), stream.primary_key)
    writer.keys_read += found.keys_read
    writer.keys_compared = True
    writer.stage_deleted(pd.Series(found.deleted, dtype=object))
    return found
