"""Where a sync spends its time, without a profiler: thin timing wrappers around the steps of
``pipeline.sync_stream`` (a few calls per batch, so the overhead is negligible).

* the connector's ``read`` and ``keys`` iterators (source query + building DataFrames),
* ``record_ids`` (pipeline), ``row_hashes`` and the conversion to Python rows (store),
* ``SyncWriter.stage`` / ``stage_keys`` / ``commit`` (their database work is what is left after the
  Python parts above are subtracted).

The store's internals change (executemany staging became COPY staging in f4fc718): helpers that are
not there are skipped and their time stays in the database-write remainder.

For a stream with ``checks:`` (the gate): ``BatchValidator.validate`` (GX, per batch), the rest of
``StreamGate.observe``, the outcomes before the commit, recording them, and dropping the GX objects.

For ``compute_values``: ``evaluate`` (the aggregate SQL), ``score``, ``Store.record_values`` and
``record_ranks`` (each new value's first drill positions).

Nothing of okrsync is changed on disk: module attributes are swapped for the duration of one step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import pandas as pd
import sqlalchemy as sa

import flows.compute as compute_module
import flows.pipeline as pipeline_module
import metrics.gx as expectations_module
import okr_store.records as records_module
import okr_store.staging as staging_module
from connectors.base import KeyDigests, SourceConnector, StreamSpec, Watermark
from connectors.horizon import Horizon
from flows.gate import StreamGate
from okr_store.lease import Fence
from okr_store.records import SyncCounts, SyncWriter
from okr_store.store import Store, ValueRecord
from okrsync.schema import StreamSchema

P = ParamSpec("P")
R = TypeVar("R")


class Timings(defaultdict[str, float]):
    """Seconds per step, accumulated. ``scope`` (``stage`` / ``stage_keys``) prefixes the steps timed
    inside a writer call, so a helper both of them use is attributed to the right one."""

    def __init__(self) -> None:
        super().__init__(float)
        self.scope: str | None = None

    def add(self, key: str, seconds: float) -> None:
        self[key] += seconds

    @contextmanager
    def scoped(self, scope: str) -> Iterator[None]:
        start, self.scope = time.perf_counter(), scope
        try:
            yield
        finally:
            self.scope = None
            self.add(f"{scope}: total", time.perf_counter() - start)


def _wrap(fn: Callable[P, R], timings: Timings, label: str) -> Callable[P, R]:
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        if timings.scope is None and label.startswith("*"):
            return fn(*args, **kwargs)  # a scoped-only step called outside a writer call
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            key = f"{timings.scope}: {label.lstrip('*')}" if label.startswith("*") else label
            timings.add(key, time.perf_counter() - start)

    return inner


def _timed_iter(it: Iterator[pd.DataFrame], timings: Timings, key: str) -> Iterator[pd.DataFrame]:
    while True:
        start = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            timings.add(key, time.perf_counter() - start)
            return
        timings.add(key, time.perf_counter() - start)
        yield item


class TimedConnector(SourceConnector):
    """A connector whose ``read`` and ``keys`` iterations are timed; its capabilities are the inner one's."""

    def __init__(self, inner: SourceConnector, timings: Timings) -> None:
        self.inner, self.timings = inner, timings
        self.name, self.base_dir, self.options = inner.name, inner.base_dir, inner.options
        self.kind = inner.kind  # type: ignore[misc]
        self.Options, self.StreamOptions = inner.Options, inner.StreamOptions  # type: ignore[misc]
        self.default_deletes = inner.default_deletes
        self.default_reconcile_every_hours = inner.default_reconcile_every_hours
        self.default_lookback_seconds = inner.default_lookback_seconds
        self.reports_deletions, self.supports_partitions = inner.reports_deletions, inner.supports_partitions

    @property
    def api_calls(self) -> int | None:
        return self.inner.api_calls

    def needs_full_refresh(self, stream: StreamSpec) -> bool:
        return self.inner.needs_full_refresh(stream)

    def filter_needs_keys(self, stream: StreamSpec) -> bool:
        return self.inner.filter_needs_keys(stream)

    def horizon(self, stream: StreamSpec) -> Horizon | None:
        return self.inner.horizon(stream)

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        return self.inner.deleted(stream, since)

    def excluded(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        return self.inner.excluded(stream, since)

    def check(self) -> None:
        self.inner.check()

    def schema(self, stream: StreamSpec) -> StreamSchema:
        return _wrap(self.inner.schema, self.timings, "schema (reflect source)")(stream)

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        return _timed_iter(self.inner.read(stream, since), self.timings, "read: source query + frames")

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        return _timed_iter(self.inner.keys(stream), self.timings, "keys: read all source keys")

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        return self.inner.record_url(stream, record_id)

    def key_digests(self, stream: StreamSpec) -> KeyDigests | None:
        return self.inner.key_digests(stream)

    def close(self) -> None:
        self.inner.close()

    def as_connector(self) -> SourceConnector:
        return self


class TimedWriter(SyncWriter):
    """A :class:`SyncWriter` that times its steps."""

    timings: Timings

    def stage(self, batch: pd.DataFrame) -> None:
        with self.timings.scoped("stage"):
            super().stage(batch)

    def stage_keys(self, rids: pd.Series) -> None:
        with self.timings.scoped("stage_keys"):
            super().stage_keys(rids)

    def commit(self, watermark: str | None, gate: Callable[[int, int], bool] | None = None) -> SyncCounts:
        start = time.perf_counter()
        try:
            return super().commit(watermark, gate) if gate is not None else super().commit(watermark)
        finally:
            self.timings.add("commit: apply versions", time.perf_counter() - start)


class TimedStore(Store):
    """A :class:`Store` whose sync writers (and value recording) report to ``timings`` while it is set."""

    timings: Timings | None = None

    def record_values(
        self,
        run_id: str,
        flow_run_id: str | None,
        as_of: datetime,
        values: Iterable[ValueRecord],
        held: Mapping[str, str],
        fence: Fence | None = None,
        then: Callable[[sa.Connection, list[int]], object] | None = None,
    ) -> list[int]:
        start = time.perf_counter()
        try:
            return super().record_values(run_id, flow_run_id, as_of, values, held, fence, then)
        finally:
            if self.timings is not None:
                self.timings.add("record_values (write values)", time.perf_counter() - start)

    def begin_sync(self, *args: Any, **kwargs: Any) -> SyncWriter:
        start = time.perf_counter()
        w = super().begin_sync(*args, **kwargs)
        if self.timings is None:
            return w
        self.timings.add("begin_sync (tables, lease)", time.perf_counter() - start)
        timed = TimedWriter(w.engine, w.stream, w.sync_id, w.tables, w.reconcile, w.fence)
        timed.timings = self.timings
        return timed


# (module, attribute, label); a label starting with * is timed per writer scope. Attributes the code
# under test does not have (it changes) are skipped: their time stays in the scope's remainder.
SYNC_SWAPS: list[tuple[Any, str, str]] = [
    (pipeline_module, "record_ids", "record_ids (pipeline)"),
    (records_module, "row_hashes", "*row_hashes"),
    (records_module, "_records", "*to Python rows"),  # executemany staging (before f4fc718)
    (records_module, "_plain_rows", "*to Python rows"),  # COPY staging (before #15)
    (staging_module, "plain_rows", "*to Python rows"),  # COPY staging
]
# The data-quality gate of a stream with ``checks:`` (class attributes; importing these modules does not
# import Great Expectations). ``observe`` contains ``validate``: ``breakdown`` subtracts it (NESTED).
GATE_VALIDATE = "gate: BatchValidator.validate (GX)"
GATE_OBSERVE = "gate: StreamGate.observe excl. validate (cursor max, samples)"
GATE_SWAPS: list[tuple[Any, str, str]] = [
    (expectations_module.BatchValidator, "validate", GATE_VALIDATE),
    (StreamGate, "observe", GATE_OBSERVE),
    (StreamGate, "outcomes", "gate: outcomes + freshness (before commit)"),
    (StreamGate, "record", "gate: record outcomes (store)"),
    (StreamGate, "close", "gate: close (drop GX objects)"),
]
NESTED: dict[str, tuple[str, ...]] = {GATE_OBSERVE: (GATE_VALIDATE,)}
RANKS = "record_ranks (first drill positions)"
COMPUTE_SWAPS: list[tuple[Any, str, str]] = [
    (compute_module, "evaluate", "evaluate (grouped query per stream)"),
    (compute_module, "score", "score"),
    (compute_module, "record_ranks", RANKS),
]


@contextmanager
def instrumented(
    store: TimedStore, timings: Timings, swaps: list[tuple[Any, str, str]] = SYNC_SWAPS
) -> Iterator[None]:
    """Time the steps run inside (module attributes are swapped back afterwards)."""
    present = [(mod, name, label) for mod, name, label in swaps if mod is not None and hasattr(mod, name)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in present]
    store.timings = timings
    try:
        for mod, name, label in present:
            setattr(mod, name, _wrap(getattr(mod, name), timings, label))
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        store.timings = None


def breakdown(timings: Timings, total: float) -> dict[str, float]:
    """Exclusive seconds per step: a writer scope's remainder (total − its timed Python steps) is its
    database write (INSERT, or COPY + set-based upsert, and the lease renewal)."""
    t = dict(timings)
    for outer, inner_keys in NESTED.items():
        if outer in t:
            t[outer] = max(t[outer] - sum(t.get(k, 0.0) for k in inner_keys), 0.0)
    for scope in ("stage", "stage_keys"):
        if f"{scope}: total" in t:
            inner = sum(v for k, v in t.items() if k.startswith(f"{scope}: ") and k != f"{scope}: total")
            t[f"{scope}: write to store (SQL)"] = max(t.pop(f"{scope}: total") - inner, 0.0)
    t["other (pipeline glue)"] = max(total - sum(t.values()), 0.0)
    return dict(sorted(t.items(), key=lambda kv: -kv[1]))
