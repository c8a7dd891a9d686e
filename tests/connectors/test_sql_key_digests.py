"""Deletes found by key-range digests (flows.deletes, issue #15 goal 2) give exactly the records a full
key read finds, on SQLite, PostgreSQL and MariaDB sources and SQLite and PostgreSQL stores.

Every case syncs one source table through two streams into one store: ``by_digests`` (the default:
digests) and ``by_keys`` (a source with ``key_digests: false``: every key read, as before). After each
change both streams must hold exactly the rows a plain SELECT on the source returns, and report the
same number of deletions. The descent is made deep on purpose (small leaves, few buckets)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.sql_digest import SqlKeyDigests, h32, hash_expr
from flows import compute, deletes, pipeline
from okr_store import digests as store_digests
from okr_store import models as m
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync.errors import SourceError
from okrsync.project import Project, load_project

AS_OF = datetime(2026, 11, 20)
PROJECT = """\
version: 1
settings: {{default_period: 2026-Q4}}
sources:
  erp: {{kind: sql, url: "{url}"}}
  erp_keys: {{kind: sql, url: "{url}", key_digests: false}}
streams:
  by_digests: {{source: erp, table: item, primary_key: {pk}, cursor: write_date, lookback_seconds: 0}}
  by_keys: {{source: erp_keys, table: item, primary_key: {pk}, cursor: write_date, lookback_seconds: 0}}
metrics:
  items: {{stream: by_digests, measure: count, field: name}}
objectives:
  - id: O1
    title: Items
    key_results: [{{id: KR-ITEMS, title: Items, metric: items, target: 10}}]
"""
# (source, store) pairs: every source database, and both stores
PAIRS = [("sqlite", "sqlite"), ("postgresql", "postgresql"), ("mysql", "sqlite"), ("sqlite", "postgresql")]
KEYS = {  # key shape → (CREATE TABLE columns, primary_key in the project file)
    "integer": ("id BIGINT PRIMARY KEY, name VARCHAR(40), write_date {ts}", "id"),
    "text": ("id VARCHAR(40) PRIMARY KEY, name VARCHAR(40), write_date {ts}", "id"),
    "composite": ("id INTEGER NOT NULL, line INTEGER NOT NULL, name VARCHAR(40), write_date {ts}, "
                  "PRIMARY KEY (id, line)", "[id, line]"),
}
TS = {"sqlite": "TIMESTAMP", "postgresql": "TIMESTAMP", "mysql": "DATETIME"}


@dataclass
class Case:
    source: str
    shape: str
    admin: sa.Engine
    store_url: str
    project: Project

    def key(self, n: int) -> dict[str, Any]:
        """Row ``n``'s key columns: text keys zero-padded (their order differs from the numbers')."""
        if self.shape == "text":
            return {"id": f"k-{n:05d}-ü"}
        if self.shape == "composite":
            return {"id": n // 10, "line": n % 10}
        return {"id": n}

    def insert(self, numbers: list[int], day: int) -> None:
        cols = [*self.key(0), "name", "write_date"]
        at = f"2026-02-{day:02d} 00:00:00"
        rows = [{**self.key(n), "name": f"n{n}", "write_date": at} for n in numbers]
        with self.admin.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO item ({', '.join(cols)}) VALUES "
                                 f"({', '.join(':' + c for c in cols)})"), rows)

    def delete(self, numbers: list[int]) -> None:
        with self.admin.begin() as conn:
            for n in numbers:
                k = self.key(n)
                conn.execute(sa.text("DELETE FROM item WHERE " + " AND ".join(f"{c} = :{c}" for c in k)), k)

    def update(self, numbers: list[int], day: int) -> None:
        with self.admin.begin() as conn:
            for n in numbers:
                k = self.key(n)
                conn.execute(sa.text("UPDATE item SET name = :name, write_date = :at WHERE "
                                     + " AND ".join(f"{c} = :{c}" for c in k)),
                             {**k, "name": f"changed{n}", "at": f"2026-02-{day:02d} 00:00:00"})

    def source_ids(self) -> set[str]:
        cols = list(self.key(0))
        with self.admin.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM item")).all()
        return {"|".join(str(v) for v in r) for r in rows}

    def sync(self) -> dict[str, SyncCounts]:
        store, out = Store(self.store_url), {}
        try:
            compute.register_okrs(self.project, store)
            run_id = store.start_run(AS_OF, None)
            for stream, source in (("by_digests", "erp"), ("by_keys", "erp_keys")):
                connector = self.project.connector(source)
                try:
                    out[stream] = pipeline.sync_stream(self.project, store, connector, run_id, stream)
                finally:
                    connector.close()
            store.finish_run(run_id, "succeeded")
        finally:
            store.close()
        return out

    def live(self, stream: str) -> set[str]:
        store = Store(self.store_url)
        try:
            tables = store.streams.tables(stream)
            assert tables is not None
            rec = tables.records
            with store.engine.connect() as conn:
                return set(conn.execute(sa.select(rec.c._rid).where(rec.c._to.is_(None))).scalars())
        finally:
            store.close()

    def check(self, deleted: int, *, keys_read: int | None = None) -> dict[str, SyncCounts]:
        """Sync both streams: both hold exactly the source's rows and report ``deleted`` deletions."""
        counts = self.sync()
        expected = self.source_ids()
        assert self.live("by_digests") == expected
        assert self.live("by_keys") == expected
        assert counts["by_digests"].deleted == counts["by_keys"].deleted == deleted
        if keys_read is not None:
            assert counts["by_digests"].keys_read == keys_read
        assert counts["by_keys"].keys_read == len(expected)  # the full key read, for comparison
        return counts


IDS = [f"{s}-source-{t}-store" for s, t in PAIRS]
# the same SQL as the other cases: SQLite and PostgreSQL suffice
FEWER = pytest.mark.parametrize("pair", PAIRS[:2], ids=IDS[:2], indirect=True)


@pytest.fixture(params=PAIRS, ids=IDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str, str]:
    """(source backend, source URL, admin URL, store URL)."""
    source, store = request.param
    if source == "sqlite":
        url, admin = "sqlite:///erp.db", f"sqlite:///{tmp_path / 'erp.db'}"
    else:
        url = admin = request.getfixturevalue("pg_url" if source == "postgresql" else "mariadb_url")
    if store == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'store.db'}"
    else:  # the source's own database when it is PostgreSQL (other tables), else a fresh one
        store_url = url if source == "postgresql" else request.getfixturevalue("pg_url")
    return source, url, admin, store_url


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deep descent over a thousand rows: 8 top-level buckets, split 4 ways, leaves of ≤ 4 rows."""
    monkeypatch.setattr(deletes, "LEAF_ROWS", 4)
    monkeypatch.setattr(deletes, "MAX_BUCKETS", 8)
    monkeypatch.setattr(deletes, "FANOUT", 4)
    monkeypatch.setattr(store_digests, "MASK_STRETCH", 1)  # integer keys too: md5 sums and the descent


def make_case(pair: tuple[str, str, str, str], shape: str, tmp_path: Path) -> Iterator[Case]:
    source, url, admin_url, store_url = pair
    admin = sa.create_engine(admin_url)
    columns, pk = KEYS[shape]
    with admin.begin() as conn:
        if source == "mysql":
            conn.exec_driver_sql("SET NAMES utf8mb4")
        conn.exec_driver_sql(f"CREATE TABLE item ({columns.format(ts=TS[source])})"
                             + (" DEFAULT CHARSET=utf8mb4" if source == "mysql" else ""))
    (tmp_path / "okrsync.yaml").write_text(PROJECT.format(url=url, pk=pk))
    case = Case(source, shape, admin, store_url, load_project(tmp_path / "okrsync.yaml"))
    try:
        yield case
    finally:
        admin.dispose()


@pytest.fixture
def integer_case(pair: tuple[str, str, str, str], tmp_path: Path) -> Iterator[Case]:
    yield from make_case(pair, "integer", tmp_path)


def test_deletes_by_digests_equal_the_full_key_read(integer_case: Case, small_ranges: None) -> None:
    case = integer_case
    case.insert(list(range(2, 2002, 2)), day=1)  # even numbers 2…2000: room for inserts in between
    case.check(deleted=0)
    case.check(deleted=0, keys_read=0)  # no change: the digests alone, not one key read
    spread = [n for n in range(2, 2002, 2) if n % 194 == 0]  # 10 deletes across the key range
    case.delete(spread)
    case.check(deleted=len(spread))
    # range boundaries: the lowest and highest keys (the key span shrinks) and the keys either side
    # of top-level bucket edges (origin 2, width 256: the power of two ≥ 1999 / 8)
    case.delete([2, 2000, 256, 258, 512, 514, 1536, 1538])
    case.check(deleted=8)
    # a delete and an insert in the same leaf range: the row count there does not change
    case.delete([1000])
    case.insert([1001], day=2)
    case.check(deleted=1)
    # updates move the version; one updated row's neighbour is deleted in the same sync
    case.update([1200, 1300, 1400], day=3)
    case.delete([1202])
    counts = case.check(deleted=1)
    assert counts["by_digests"].updated == counts["by_keys"].updated == 3
    # a deleted row comes back (same key): it is read as new, not deleted again
    case.insert([1202], day=4)
    case.check(deleted=0)
    assert case.sync()["by_digests"].keys_read == 0  # settled: nothing differs, nothing read


@pytest.mark.parametrize("shape", ["text", "composite"])
@pytest.mark.parametrize("pair", PAIRS[:3], ids=IDS[:3], indirect=True)
def test_text_and_composite_keys_range_by_their_hash(
    pair: tuple[str, str, str, str], tmp_path: Path, small_ranges: None, shape: str
) -> None:
    for case in make_case(pair, shape, tmp_path):
        case.insert(list(range(0, 600)), day=1)
        case.check(deleted=0)
        case.check(deleted=0, keys_read=0)
        gone = [0, 1, 299, 300, 599, *range(50, 560, 61)]  # 14 keys, spread over the hash space
        case.delete(gone)
        assert case.check(deleted=14)["by_digests"].keys_read < 600 / 2
        case.delete([7])
        case.insert([1000], day=2)
        case.update([8, 9], day=2)
        case.check(deleted=1)


@FEWER
def test_every_row_deleted_and_an_empty_store(integer_case: Case) -> None:
    case = integer_case
    case.insert(list(range(1, 101)), day=1)
    case.check(deleted=0)
    case.delete(list(range(1, 101)))
    case.check(deleted=100)
    case.check(deleted=0, keys_read=0)  # both sides empty
    case.insert([5], day=2)
    case.check(deleted=0)


@FEWER
def test_a_failure_during_the_descent_leaves_the_store_unchanged(
    integer_case: Case, small_ranges: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = integer_case
    case.insert(list(range(1, 501)), day=1)
    case.check(deleted=0)
    case.delete([10, 20, 400])
    case.update([30], day=2)
    before = case.live("by_digests")

    def broken(self: SqlKeyDigests, origin: int, within: Any) -> Iterator[Any]:
        raise SourceError("the source went away")
        yield

    monkeypatch.setattr(SqlKeyDigests, "keys", broken)
    store = Store(case.store_url)
    connector = case.project.connector("erp")
    try:
        watermark = store.watermark("by_digests")
        run_id = store.start_run(AS_OF, None)
        with pytest.raises(SourceError, match="went away"):
            pipeline.sync_stream(case.project, store, connector, run_id, "by_digests")
        assert store.watermark("by_digests") == watermark
        tables = store.streams.tables("by_digests")
        assert tables is not None
        with store.engine.connect() as conn:
            for t in (tables.stage, tables.gone, tables.keys):
                assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0
            status = conn.execute(sa.select(m.sync_run.c.status).order_by(m.sync_run.c.id.desc())).first()
        assert status is not None and status[0] == "failed"
    finally:
        connector.close()
        store.close()
    assert case.live("by_digests") == before  # row 30's change and the deletes were not applied
    monkeypatch.undo()
    case.check(deleted=3)


def test_the_hash_is_the_same_in_python_and_in_each_database(pair: tuple[str, str, str, str]) -> None:
    source, _, admin_url, store_url = pair
    assert store_digests.h32("abc", 0) == h32("abc", 0) == 0x90015098
    assert h32("abc", 1) == 0x3CD24FB0
    for url, backend in ((admin_url, source), (store_url, "postgresql" if "postgres" in store_url else "")):
        if backend not in ("postgresql", "mysql"):
            continue
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                got = conn.execute(sa.select(hash_expr(sa.literal("k-ü|7", sa.String), backend, 0),
                                             hash_expr(sa.literal("k-ü|7", sa.String), backend, 1))).one()
        finally:
            engine.dispose()
        assert (int(got[0]), int(got[1])) == (h32("k-ü|7", 0), h32("k-ü|7", 1))


def test_dense_integer_keys_are_compared_as_bit_masks(integer_case: Case) -> None:
    """Default sizes: integer keys in buckets of 32, each digest the bucket's exact key set (a bit mask,
    no md5 on either side). Deletes are found without reading a single source key."""
    case = integer_case
    case.insert(list(range(1, 3001)), day=1)
    case.check(deleted=0)  # the full read
    case.check(deleted=0, keys_read=0)  # the first comparison builds the store's digests
    store = Store(case.store_url)
    try:
        with store.engine.connect() as conn:
            scheme = store_digests.load(conn, "by_digests")
    finally:
        store.close()
    assert scheme is not None and scheme.bits and scheme.width == store_digests.BITS
    gone = [1, 31, 32, 33, 64, 1000, 2047, 2048, 2999, 3000]  # bucket edges, both ends of the range
    case.delete(gone)
    case.insert([3001, 3100], day=2)  # new rows past the stored range, read by this very sync
    case.update([500, 501], day=2)
    case.check(deleted=len(gone), keys_read=0)
    case.delete([5, 6, 7])
    case.insert([31], day=3)  # back, in a bucket that also loses keys
    case.check(deleted=3, keys_read=0)
    case.check(deleted=0, keys_read=0)
