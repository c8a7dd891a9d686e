"""The key digests the store keeps (okr_store.digests) follow every commit: after random syncs —
inserts, updates, deletes by key comparison and by tombstone, deleted ids coming back, a commit rolled
back after its digests were updated, a sync overtaken by a newer one — the stored digests equal the
digests recomputed from the records, on SQLite and PostgreSQL, for integer keys (positions are the
keys) and text keys (positions are hashes)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from okr_store import digests
from okr_store import models as m
from okr_store.records import RID, SyncWriter, Vetoed
from okr_store.store import Store
from okrsync.errors import LeaseLost
from okrsync.schema import Field, FieldType, StreamSchema

SCHEMA = StreamSchema((Field("id", FieldType.STRING), Field("amount", FieldType.DECIMAL, 2)))
STREAM = "orders"


def rid(n: int, positional: bool) -> str:
    return str(n) if positional else f"k-{n:05d}-ü"


def begin(store: Store, *, reconcile: bool = False) -> SyncWriter:
    return store.begin_sync("run", STREAM, "erp", ("id",), SCHEMA, reconcile=reconcile)


def stage(w: SyncWriter, rows: dict[str, int]) -> None:
    if rows:
        w.stage(pd.DataFrame({RID: list(rows), "id": list(rows),
                              "amount": [Decimal(v) / 100 for v in rows.values()]}))


def live(store: Store) -> set[str]:
    tables = store.streams.tables(STREAM)
    assert tables is not None
    rec = tables.records
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(rec.c[RID]).where(rec.c._to.is_(None))).scalars())


def check(store: Store, source: Iterable[str]) -> None:
    """Stored digests == digests recomputed by SQL from the records == digests of the source's ids."""
    tables = store.streams.tables(STREAM)
    assert tables is not None
    source = set(source)
    assert live(store) == source
    with store.engine.connect() as conn:
        scheme = digests.load(conn, STREAM)
        if scheme is None:  # dropped (an id below the origin): built again at the next comparison
            return
        kept = digests.stored(conn, STREAM)
        fresh = {int(b): (int(n), int(s1), int(s2))
                 for b, n, s1, s2 in conn.execute(digests.recompute(conn, tables.records, scheme))}
    assert kept == fresh
    assert kept == digests.digests_of(scheme, source)[0]


@pytest.mark.parametrize("positional", [True, False], ids=["integer-keys", "text-keys"])
def test_stored_digests_follow_random_syncs(store: Store, positional: bool) -> None:
    rng = random.Random(15)
    source: dict[str, int] = {rid(n, positional): n for n in range(100, 400)}  # id → amount
    w = begin(store)
    stage(w, source)
    w.commit('{"cursor": null, "key": []}')
    w = begin(store)  # the first comparison builds the digests from the records
    origin, width, first = w.key_digests(positional).top(4, 64)
    w.commit(None)
    assert sum(d[0] for d in first.values()) == len(source)
    check(store, source)
    deleted: list[str] = []
    next_id = 400
    for round_ in range(25):
        before = set(source)
        # the source changes: new ids, updates, deletes, deleted ids coming back
        new = {rid(next_id + i, positional): rng.randrange(10_000) for i in range(rng.randrange(0, 12))}
        next_id += len(new) + rng.randrange(0, 40)  # gaps: the key range grows past the stored one
        updated = {k: rng.randrange(10_000) for k in rng.sample(sorted(source), rng.randrange(0, 10))}
        gone = rng.sample(sorted(set(source) - set(updated)), rng.randrange(0, 8))  # not read again
        back = {k: 1 for k in rng.sample(deleted, min(len(deleted), rng.randrange(0, 3)))}
        source.update(new | updated | back)
        for k in gone:
            source.pop(k)
        deleted = [k for k in deleted if k not in back] + gone
        by_keys = round_ % 3 == 0

        def read(w: SyncWriter, changed: dict[str, int] = new | updated | back, by_keys: bool = by_keys,
                 listed: list[str] = sorted(source), gone: list[str] = gone) -> None:
            stage(w, changed)
            if by_keys:  # deletes found by comparing every key
                w.stage_keys(pd.Series(listed))
            else:  # deletes reported by the source
                w.stage_deleted(pd.Series(gone, dtype=object))

        w = begin(store, reconcile=by_keys)
        read(w)
        if round_ % 5 == 2:  # during a sync: the stored digests plus the new ids it staged
            _, _, seen = w.key_digests(positional).top(4, 64)
            with store.engine.connect() as conn:
                scheme = digests.load(conn, STREAM)
            assert scheme is not None
            assert seen == digests.digests_of(scheme, before | set(new) | set(back))[0]
        if round_ % 4 == 1:  # a commit vetoed by a check, after the digests were updated: rolled back
            with pytest.raises(Vetoed):
                w.commit('{"cursor": null, "key": []}', gate=lambda _before, _after: False)
            check(store, before)
        if round_ % 7 == 3:  # a newer sync takes the stream over (the lease ran out): this one's
            with store.engine.begin() as conn:  # commit changes nothing, the newer one's stands
                conn.execute(m.stream_state.update().where(m.stream_state.c.name == STREAM)
                             .values(lease_until=datetime(2000, 1, 1)))
            newer = begin(store, reconcile=by_keys)
            with pytest.raises(LeaseLost):
                w.commit('{"cursor": null, "key": []}')
            w.end_lost("lost")
            check(store, before)
            w = newer
            read(w)
        w.commit('{"cursor": null, "key": []}')
        check(store, source)
        if round_ % 6 == 5:  # a sync that fails after staging changes nothing
            w = begin(store)
            stage(w, {rid(9999, positional): 1})
            w.stage_deleted(pd.Series(sorted(source)[:3], dtype=object))
            w.fail("the source went away")
            check(store, source)


def test_an_id_below_the_origin_drops_the_digests_until_the_next_comparison(store: Store) -> None:
    w = begin(store)
    stage(w, {str(n): n for n in range(50, 90)})
    w.commit(None)
    w = begin(store)
    origin, _, _ = w.key_digests(True).top(4, 64)
    w.commit(None)
    assert origin == 50
    w = begin(store)
    stage(w, {"7": 7})
    w.commit(None)
    with store.engine.connect() as conn:
        assert digests.load(conn, STREAM) is None
        assert digests.stored(conn, STREAM) == {}
    w = begin(store)
    origin, _, top = w.key_digests(True).top(4, 64)
    w.commit(None)
    assert origin == 7 and sum(d[0] for d in top.values()) == 41
    check(store, {str(n): n for n in [7, *range(50, 90)]})


def test_a_stream_that_grew_is_rebuilt_with_a_wider_bucket(store: Store) -> None:
    w = begin(store)
    stage(w, {str(n): n for n in range(0, 40)})
    w.commit(None)
    w = begin(store)
    _, width, _ = w.key_digests(True).top(4, 1024)
    w.commit(None)
    w = begin(store)
    stage(w, {str(n): n for n in range(40, 4000, 3)})  # sparser and 30 times as many
    w.commit(None)
    source = {str(n): n for n in [*range(0, 40), *range(40, 4000, 3)]}
    check(store, source)
    w = begin(store)
    _, wider, _ = w.key_digests(True).top(4, 16)
    w.commit(None)
    assert wider >= width * digests.REBUILD
    check(store, source)


def test_digests_read_while_a_sync_runs_include_its_new_rows(store: Store) -> None:
    w = begin(store)
    stage(w, {str(n): n for n in range(10, 30)})
    w.commit(None)
    w = begin(store)
    stage(w, {"31": 1, "12": 5})  # one new id, one update
    origin, width, top = w.key_digests(True).top(4, 64)
    scheme = digests.Scheme(True, origin, width)
    assert top == digests.digests_of(scheme, [str(n) for n in [*range(10, 30), 31]])[0]
    w.fail("stop")


def test_dense_integer_keys_keep_exact_bit_masks_up_to_twice_the_bucket_cap() -> None:
    """At 10M dense keys the default cap (262,144 buckets) would make buckets 64 wide: md5 over every
    key on every sync (70 of an 86 s no-change sync in the sizing bench). Masks stretch the cap 2×."""
    cap = 262_144
    assert digests.ideal_width(True, 10_000_000, 1, 10_000_000, 16, cap) == digests.BITS
    assert digests.ideal_width(True, 8_000_000, 1, 8_000_000, 16, cap) == digests.BITS
    beyond = 2 * digests.BITS * cap + 1  # past the stretch: wider buckets, md5 sums
    assert digests.ideal_width(True, beyond, 1, beyond, 16, cap) > digests.BITS
    assert digests.ideal_width(False, 10_000_000, 0, digests.HASH_SPAN - 1, 16, cap) > digests.BITS
    # a stream built 64 wide before (md5 sums) is rebuilt as masks once they fit
    wide = digests.Scheme(True, 1, 64)
    stored = {b: (64, 0, 0) for b in range(156_250)}  # 10M keys
    assert digests.stale(wide, stored, 16, cap)
    assert not digests.stale(digests.Scheme(True, 1, 32), {b: (32, 0, 0) for b in range(312_500)}, 16, cap)
