"""Deletes found in proportion to change: key-range digests compared between source and store.

Reading every key of a stream to find the records deleted at the source costs about 10 s per million
rows, on every sync. Instead, both sides compute *digests* of their key sets in SQL — per bucket of
keys, ``(rows, Σ h1, Σ h2)`` with ``h1``/``h2`` 32-bit parts of ``md5(record id)`` (order-independent,
so one ``GROUP BY`` each: :mod:`connectors.sql_digest` on the source, :mod:`okr_store.digests` on the
store). The store's key set is its live records plus the new ones this sync staged: what the source
should list when nothing was deleted.

:func:`find_deleted` compares the two:

1. *Top level*: the key space (the key itself for one integer key, else ``h1``, see
   :class:`connectors.base.KeyDigests`) is cut into ``≈ rows / LEAF_ROWS`` buckets (at most
   ``MAX_BUCKETS``) of a power-of-two width: one digest query on each side, small rows back (≈ 1 MB
   per side at a million rows). Powers of two make each level's buckets nest in the level above.
2. Equal digests: nothing there differs (short of a 64-bit collision); skipped. A bucket the store
   has no records in cannot hold a deleted record (rows inserted at the source since the read):
   skipped too. A bucket the source has no rows in: every store record there is deleted (no source
   read).
3. A differing bucket of at most ``LEAF_ROWS`` rows (or one key wide) is a *leaf*: its keys are read
   from both sides, as the full key read reads them (same conversion, same record ids), and the store
   ids the source does not list are the deleted ones. A larger one is split into ``FANOUT`` narrower
   buckets, compared again (both sides' queries restricted to the differing buckets: key ranges on the
   source when its index serves them, bucket numbers otherwise), and so on.

The result is the very set a full key read gives (store ids minus source ids), but the key reads cover
only the ranges that differ: a sync with no delete reads no key at all. Failures raise before anything
is staged; the deleted ids are staged as reported deletions, so the commit closes them with the rest,
atomically, or the sync's ``fail`` drops them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.base import KeyDigests, SourceConnector, StreamSpec, record_ids
from okr_store.records import SyncWriter
from okrsync.errors import ConfigError

log = logging.getLogger("okrsync.deletes")

LEAF_ROWS = 16  # a differing bucket this small has its keys read instead of split
FANOUT = 16  # sub-buckets per differing bucket at the next level (a power of two: buckets nest)
MAX_BUCKETS = 65_536  # top-level buckets, whatever the row count (a few MB of digests at most)

Digest = tuple[int, int, int]
Buckets = tuple[int, Sequence[int]]  # (width, bucket numbers): the positions origin + [b·width, (b+1)·width)


class StoreSide(Protocol):
    """The store's digests (:class:`okr_store.digests.StoreKeyDigests`)."""

    def span(self) -> tuple[int, int, int]: ...

    def digests(self, origin: int, width: int, within: Buckets | None) -> dict[int, Digest]: ...

    def keys(self, origin: int, within: Buckets) -> set[str]: ...


@dataclass(frozen=True)
class Outcome:
    deleted: list[str]  # record ids live in the store (or staged new) that the source no longer has
    keys_read: int  # source keys read (leaves only)
    levels: int  # digest comparisons made on each side
    leaves: int  # buckets whose keys were read


def find_deleted(source: KeyDigests, store: StoreSide, primary_key: tuple[str, ...], *,
                 leaf_rows: int | None = None, fanout: int | None = None,
                 max_buckets: int | None = None) -> Outcome:
    """The store's record ids the source no longer lists (module docstring). The sizes default to
    this module's ``LEAF_ROWS``, ``FANOUT`` and ``MAX_BUCKETS``."""
    leaf_rows, fanout = leaf_rows or LEAF_ROWS, fanout or FANOUT
    max_buckets = max_buckets or MAX_BUCKETS
    n_store, lo, hi = store.span()
    if n_store == 0:
        return Outcome([], 0, 0, 0)
    n_source, lo_source, hi_source = source.span()
    if n_source and source.positional:
        lo, hi = min(lo, lo_source), max(hi, hi_source)
    buckets = max(1, min(max_buckets, math.ceil(max(n_source, n_store) / leaf_rows)))
    # Widths are powers of two, so each level's buckets nest exactly in the level above.
    width = 1 << max(0, math.ceil(math.log2(max(1, math.ceil((hi - lo + 1) / buckets)))))
    within: Buckets | None = None
    deleted: set[str] = set()
    keys_read = levels = leaves_read = 0
    while True:
        levels += 1
        ours, theirs = store.digests(lo, width, within), source.digests(lo, width, within)
        both: list[int] = []  # differing leaves with rows on both sides
        only_store: list[int] = []  # leaves the source has no row in: all deleted
        split: list[int] = []
        for bucket in sorted(ours):  # a bucket without store records holds nothing to delete
            mine, other = ours[bucket], theirs.get(bucket, (0, 0, 0))
            if mine == other:
                continue
            if other[0] == 0:
                only_store.append(bucket)
            elif max(mine[0], other[0]) <= leaf_rows or width == 1:
                both.append(bucket)
            else:
                split.append(bucket)
        if only_store:
            deleted |= store.keys(lo, (width, only_store))
        if both:
            listed: set[str] = set()
            for frame in source.keys(lo, (width, both)):
                keys_read += len(frame)
                listed.update(record_ids(frame, primary_key))
            deleted |= store.keys(lo, (width, both)) - listed
        leaves_read += len(both) + len(only_store)
        if not split:
            break
        within, width = (width, split), max(1, width // fanout)
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
