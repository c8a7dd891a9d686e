"""One run of a project, whoever executes its steps.

:func:`run_project` takes the project's lease (queueing behind a live run of the same project), keeps
it alive with a heartbeat, syncs every stream, computes every key result and closes the run. Its two
kinds of step — :func:`sync_step` for one stream, :func:`compute_step` for the key results — take only
picklable arguments (the project file's path and the run's :class:`RunContext`) and open their own
connections, so any executor can run them: :class:`LocalSteps` (threads, in this process: a local
``okrsync run`` with no Prefect API) or the Prefect tasks of :mod:`flows.okr_flow` (threads, Dask or Ray
task runners, under a real server).

Interrupts (Ctrl-C, SIGTERM, a Prefect crash) close the run row and free its leases before they
propagate; a run that lost its lease (it stalled and another run took over) changes nothing more.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from flows import alerts as alerting
from flows import compute, pipeline
from okr_store.lease import Fence, Heartbeat
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync.errors import ConfigError, LeaseLost, OkrsyncError, SourceError
from okrsync.project import Project, load_project
from okrsync.project_bindings import stored_bindings

log = logging.getLogger("okrsync.run")
T = TypeVar("T")
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of this clock a run's as-of time may be
RETRIES = 3  # a transient source error is retried this often, with exponential backoff and jitter


def resolve_project_file(project_file: str | os.PathLike[str] | None) -> Path:
    """The project file a run reads: the argument, else ``OKRSYNC_PROJECT``, else ``./okrsync.yaml``.

    A deployment leaves it unset, so each worker's environment says where its project lives."""
    chosen = str(project_file or os.environ.get("OKRSYNC_PROJECT", "").strip() or "okrsync.yaml")
    path = Path(chosen).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.is_file():
        raise ConfigError(
            f"no project file at {path}",
            hint="pass project_file (an absolute path) to the flow, or set OKRSYNC_PROJECT in the "
            "environment of the worker that runs it (see README, 'Run on a schedule')",
        )
    return path


@dataclass(frozen=True)
class RunContext:
    """What a step needs, all picklable: it opens its own project, store and source connections."""

    project_file: str
    fence: Fence
    flow_run_id: str | None
    as_of: datetime
    retry_delay_seconds: float = 2.0
    timeout_seconds: float = 7200.0

    @property
    def run_id(self) -> str:
        return self.fence.run_id


class _Opened:
    """Projects and stores opened in this process, shared by the steps that run here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[tuple[str, int], Project] = {}
        self._stores: dict[str, Store] = {}

    def project(self, path: str) -> Project:
        key = (path, Path(path).stat().st_mtime_ns)
        with self._lock:
            if key not in self._projects:
                self._projects[key] = load_project(path)
            return self._projects[key]

    def put_project(self, path: str, project: Project) -> None:
        with self._lock:
            self._projects[(path, Path(path).stat().st_mtime_ns)] = project

    def store(self, url: str) -> Store:
        with self._lock:
            if url not in self._stores:
                self._stores[url] = Store(url)
            return self._stores[url]

    def put_store(self, store: Store) -> None:
        with self._lock:
            self._stores[store.url] = store

    def drop_store(self, store: Store) -> None:
        with self._lock:
            if self._stores.get(store.url) is store:
                del self._stores[store.url]


opened = _Opened()


def bound(project: Project, store: Store) -> Project:
    """The project with the key results bound in its store (okrsync.project_bindings.with_bindings)."""
    with store.engine.connect() as conn:
        return stored_bindings(project, conn)


def sync_step(ctx: RunContext, name: str) -> SyncCounts:
    """Sync one stream (raises :class:`SourceError`, transient or not, after cleaning up)."""
    project = opened.project(ctx.project_file)
    store = opened.store(project.store_url())
    project = bound(project, store)  # a blocked check lists the bound KRs it holds too
    connector = project.connector(project.streams[name].source)
    try:
        return pipeline.sync_stream(project, store, connector, ctx.run_id, name, ctx.fence)
    finally:
        connector.close()


def _opened(ctx: RunContext, name: str) -> tuple[Project, Store, Any]:
    project = opened.project(ctx.project_file)
    store = opened.store(project.store_url())
    return bound(project, store), store, project.connector(project.streams[name].source)


def prepare_step(ctx: RunContext, name: str) -> pipeline.SyncPlan:
    """Open the sync of a partitioned stream: what it reads, decided once for every partition."""
    project, store, connector = _opened(ctx, name)
    try:
        plan, _ = pipeline.plan_sync(project, store, connector, ctx.run_id, name, ctx.fence)
        pipeline.progress.reporter.stream_started(name)
        return plan
    finally:
        connector.close()


def partition_step(ctx: RunContext, plan: pipeline.SyncPlan, index: int) -> pipeline.PartRead:
    """Read and stage one partition of an open sync (its own connections, any process)."""
    project, store, connector = _opened(ctx, plan.name)
    try:
        return pipeline.sync_partition(project, store, connector, plan, index, ctx.fence)
    finally:
        connector.close()


def finish_step(ctx: RunContext, plan: pipeline.SyncPlan, parts: list[pipeline.PartRead]) -> SyncCounts:
    """Commit every partition of a sync as one snapshot."""
    project, store, connector = _opened(ctx, plan.name)
    try:
        return pipeline.finish_partitioned(project, store, connector, plan, list(parts), ctx.fence)
    finally:
        connector.close()


def fail_step(ctx: RunContext, plan: pipeline.SyncPlan, error: str) -> None:
    """Drop what a partitioned sync staged after one of its partitions failed."""
    project = opened.project(ctx.project_file)
    pipeline.fail_partitioned(opened.store(project.store_url()), plan, ctx.fence, error)


def partitions_of(ctx: RunContext, name: str) -> int:
    """How many partitions a stream is read in (0: read whole)."""
    parts = opened.project(ctx.project_file).streams[name].partitions
    return 0 if parts is None else len(parts.ranges())


@dataclass(frozen=True)
class Computed:
    values: dict[str, str | None]  # KR id → value (text, exact)
    held: dict[str, str]  # KR id → why it kept its last good value
    previous: dict[str, str | None]  # KR id → its value before this run
    statuses: dict[str, str]


def compute_step(ctx: RunContext, failed: Mapping[str, str]) -> Computed:
    """Evaluate and record every KR whose streams synced; hold the others."""
    store = opened.store(opened.project(ctx.project_file).store_url())
    project = bound(opened.project(ctx.project_file), store)  # with the KRs bound in the store
    ids = [b.spec.id for b in project.key_results()]
    previous = {k: (None if v is None else str(v)) for k, v in store.last_values(ids, ctx.as_of).items()}
    results, held = compute.compute_values(
        project, store, ctx.run_id, ctx.flow_run_id, ctx.as_of, failed, fence=ctx.fence
    )
    statuses = store.last_statuses(list(results), ctx.as_of)
    return Computed(
        {k: (None if e.value is None else str(e.value)) for k, e in results.items() if k not in held},
        dict(held),
        previous,
        statuses,
    )


class Steps(Protocol):
    """Who executes the steps of a run."""

    def sync_all(self, ctx: RunContext, names: Sequence[str]) -> dict[str, SyncCounts | OkrsyncError]: ...

    def compute(self, ctx: RunContext, failed: Mapping[str, str]) -> Computed: ...


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, SourceError) and exc.transient


class LocalSteps:
    """Steps on threads of this process, with the flow's retry policy: no Prefect, no API."""

    def __init__(self, max_workers: int = 8, sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_workers = max_workers
        self.sleep = sleep

    def _retrying(self, ctx: RunContext, what: str, step: Callable[[], T]) -> T:
        for attempt in range(RETRIES + 1):
            try:
                return step()
            except SourceError as exc:
                if not exc.transient or attempt == RETRIES:
                    raise
                delay = ctx.retry_delay_seconds * 2**attempt
                log.info("%s: %s; retrying in %.1f s", what, exc.message, delay)
                self.sleep(delay * random.uniform(0.75, 1.25))  # noqa: S311 (jitter)
        raise AssertionError("unreachable")

    def _with_retries(self, ctx: RunContext, name: str) -> SyncCounts:
        count = partitions_of(ctx, name)
        if not count:
            return self._retrying(ctx, f"stream {name!r}", lambda: sync_step(ctx, name))
        plan = self._retrying(ctx, f"stream {name!r}", lambda: prepare_step(ctx, name))
        with ThreadPoolExecutor(max_workers=min(self.max_workers, count),
                                thread_name_prefix=f"okrsync-{name}") as pool:
            futures = [pool.submit(self._retrying, ctx, f"stream {name!r} partition {i}",
                                   partial(partition_step, ctx, plan, i)) for i in range(count)]
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            first = errors[0]
            message = first.message if isinstance(first, OkrsyncError) else f"{type(first).__name__}: {first}"
            fail_step(ctx, plan, message)
            raise first  # type: ignore[misc]
        return finish_step(ctx, plan, [f.result() for f in futures])

    def sync_all(self, ctx: RunContext, names: Sequence[str]) -> dict[str, SyncCounts | OkrsyncError]:
        out: dict[str, SyncCounts | OkrsyncError] = {}
        if not names:
            return out
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(names)),
                                  thread_name_prefix="okrsync-sync")
        futures: dict[Future[SyncCounts], str] = {pool.submit(self._with_retries, ctx, n): n for n in names}
        deadline = time.monotonic() + ctx.timeout_seconds
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()),
                                     return_when=FIRST_COMPLETED)
                if not done:
                    break
                for fut in done:
                    out[futures[fut]] = _outcome(futures[fut], fut)
            for fut in pending:  # still reading past the task timeout: failed (its commit is fenced)
                out[futures[fut]] = SourceError(
                    f"the sync did not finish within {ctx.timeout_seconds:g} s", stream=futures[fut],
                    hint="raise settings.task_timeout_seconds, or find what makes the source slow",
                    transient=True,
                )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return out

    def compute(self, ctx: RunContext, failed: Mapping[str, str]) -> Computed:
        return compute_step(ctx, failed)


def _outcome(name: str, fut: Future[SyncCounts]) -> SyncCounts | OkrsyncError:
    try:
        return fut.result()
    except OkrsyncError as exc:
        return exc
    except Exception as exc:
        return SourceError(f"unexpected {type(exc).__name__}: {exc}", stream=name,
                           hint="run again with --debug for the traceback")


@dataclass
class RunSummary:
    """What a run did, for the CLI, the Prefect artifact and scripts (``okrsync run --json``)."""

    run_id: str
    flow_run_id: str | None
    status: str  # succeeded | partial | failed
    as_of: datetime
    project: str = ""
    project_file: str = ""
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, str | None] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    previous: dict[str, str | None] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    alerts: dict[str, Any] = field(default_factory=dict)  # flows.alerts.AlertReport: events, sent, failed

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"as_of": self.as_of.isoformat()}

    def headline(self) -> str:
        """One line saying what went wrong (for a Failed flow-run state), or that all went well."""
        if self.status == "succeeded":
            return f"{len(self.values)} key results recorded"
        parts = []
        bad = [n for n, s in self.streams.items() if not s.get("ok")]
        if bad:
            parts.append(f"{len(bad)} stream(s) failed: {', '.join(bad)}")
        if self.held:
            parts.append(f"{len(self.held)} key result(s) held: {', '.join(sorted(self.held))}")
        if self.error and not parts:
            parts.append(self.error.splitlines()[0])
        return "; ".join(parts) or self.status


def utc_naive(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC).replace(tzinfo=None)
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def run_as_of(at: datetime | None, now: datetime | None = None) -> datetime:
    """The as-of time of a run (naive UTC): now, or an earlier time to back-fill history.

    A time in the future (beyond :data:`CLOCK_SKEW`) is refused: no data exists for it yet, and its
    values would stay "current" over every real run until that time came."""
    now = utc_naive(now)
    when = now if at is None else utc_naive(at)
    if when > now + CLOCK_SKEW:
        raise ConfigError(
            f"the as-of time {when:%Y-%m-%d %H:%M}Z is in the future (it is {now:%Y-%m-%d %H:%M}Z now)",
            hint="as-of is for back-filling history at a past time (a date alone means the end of that "
            "day); leave it out (`okrsync run`, or no as_of parameter) to compute as of now",
        )
    return when


def run_project(
    project_file: str | os.PathLike[str] | None,
    steps: Steps,
    *,
    as_of: datetime | None = None,
    flow_run_id: str | None = None,
    retry_delay_seconds: float = 2.0,
    on_wait: Callable[[str], None] | None = None,
) -> RunSummary:
    """Run a project: lease, sync every stream, compute every KR, record, release.

    ``as_of`` (default: now) back-fills history when earlier than the store's latest run: see
    :mod:`okr_store.current`. A future ``as_of`` raises :class:`ConfigError`."""
    as_of = run_as_of(as_of)
    path = str(resolve_project_file(project_file))
    project = load_project(path)
    opened.put_project(path, project)
    s = project.settings
    store = Store(project.store_url())
    opened.put_store(store)
    try:
        project = bound(project, store)  # the KRs bound in the store (okrsync kr add) run alongside
        fence = store.begin_run(as_of, flow_run_id, lease_seconds=s.lease_seconds,
                                wait_seconds=s.wait_for_run_seconds, on_wait=on_wait)
        ctx = RunContext(path, fence, flow_run_id, as_of, retry_delay_seconds, s.task_timeout_seconds)
        summary = RunSummary(fence.run_id, flow_run_id, "running", as_of, project.name, path)
        try:
            with Heartbeat(store.engine, fence) as heartbeat:
                compute.register_okrs(project, store, fence)
                failed: dict[str, str] = {}
                for name, outcome in steps.sync_all(ctx, list(project.streams)).items():
                    if isinstance(outcome, LeaseLost):
                        raise outcome
                    if isinstance(outcome, OkrsyncError):
                        failed[name] = outcome.message
                        summary.streams[name] = {"ok": False, "error": outcome.message}
                    else:
                        summary.streams[name] = {"ok": True, **outcome.__dict__}
                if heartbeat.lost is not None:
                    raise heartbeat.lost
                computed = steps.compute(ctx, failed)
            summary.values, summary.held = computed.values, computed.held
            summary.previous, summary.statuses = computed.previous, computed.statuses
            summary.status = "partial" if failed or computed.held else "succeeded"
            summary.error = "; ".join(f"{k}: {v}" for k, v in failed.items()) or None
            noticed = alerting.record(project, store, fence.run_id, fence)  # under the lease
            store.end_run(fence, summary.status, summary.error)
            summary.alerts = alerting.deliver(project, store, noticed).as_dict()
        except LeaseLost as exc:
            # A newer run holds the project: close only this run's own row, touch nothing shared.
            store.finish_run(fence.run_id, "failed", exc.message, if_open=True)
            raise
        except Exception as exc:
            summary.status = "failed"
            summary.error = exc.message if isinstance(exc, OkrsyncError) else f"{type(exc).__name__}: {exc}"
            # Nothing of this run was recorded; say so on every KR, which keeps its last good value.
            held = {b.spec.id: f"run failed: {summary.error}" for b in project.key_results()}
            try:
                store.record_values(fence.run_id, flow_run_id, as_of, [], held, fence)
                summary.held = held
            except LeaseLost:
                pass
            noticed = alerting.record(project, store, fence.run_id, fence)  # every KR held: news
            store.end_run(fence, "failed", summary.error)
            summary.alerts = alerting.deliver(project, store, noticed).as_dict()
            if not isinstance(exc, OkrsyncError):
                summary.error += "\n" + traceback.format_exc(limit=5)
            raise
        except BaseException as exc:  # Ctrl-C, SIGTERM, a Prefect crash or cancellation
            why = f"interrupted ({type(exc).__name__}) before it finished; nothing of it was recorded"
            store.abandon_run(fence.run_id, why)
            raise
    finally:
        opened.drop_store(store)
        store.close()
    return summary


def project_name(path: Path) -> str:
    """The project's name (``settings.name``, else its folder) without validating the whole file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = data.get("settings", {}).get("name") if isinstance(data, dict) else None
    except (OSError, yaml.YAMLError, AttributeError):
        name = None
    return str(name) if name else (path.parent.resolve().name or "okrsync")


def artifact_key(name: str) -> str:
    """A Prefect artifact key for the project (lowercase letters, digits and dashes)."""
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"okrsync-{slug or 'project'}"[:80]


def close_flow_run(project_file: str | None, flow_run_id: str, why: str) -> list[str]:
    """Close the runs a crashed or cancelled flow run left open, freeing their leases (Prefect hooks)."""
    project = load_project(str(resolve_project_file(project_file)))
    store = Store(project.store_url())
    try:
        runs = store.runs_of_flow_run(flow_run_id)
        for run_id in runs:
            store.abandon_run(run_id, why)
        return runs
    finally:
        store.close()
