"""The Prefect flow behind the deployments in ``prefect.yaml`` (and ``okrsync run`` with a Prefect API).

One task per stream (retried with backoff on transient source errors, run concurrently by whatever
task runner the flow has: threads by default, Dask or Ray for scale-out), then one task that evaluates
and records every key result. Tasks take picklable arguments only (:class:`flows.run.RunContext`) and
open their own connections. Task results are not persisted: they carry counts and values, and
Prefect's default result storage pickles to a shared folder.

The flow run tells the truth: it ends **Completed** only when every stream synced and every key result
was recorded. A failed stream, a blocked check or a held key result ends it **Failed**, with a message
starting ``okrsync:`` that names them, so Prefect automations can alert on it (README, "Run on a schedule").
Its name is the project and as-of time, its tags name the project and source kinds, its logs carry
okrsync's messages, and a markdown artifact lists every key result's value, change and hold.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect import flow, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.tasks import exponential_backoff

from flows import pipeline
from flows import run as runner
from flows.run import Computed, RunContext, RunSummary
from okr_store.records import SyncCounts
from okrsync.errors import MetricError, OkrsyncError, SourceError

FORWARDED = ("okrsync", "connectors", "metrics", "flows")  # okrsync's own loggers, into the run's logs


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed on a second try: a transient source error."""
    try:
        state.result()
    except SourceError as exc:
        return exc.transient
    except Exception:
        return False
    return False


def _counts_line(name: str, c: SyncCounts) -> str:
    calls = "" if c.api_calls is None else f" · {c.api_calls} API calls"
    return (f"sync {name}: {c.rows_read} rows pulled · {c.inserted} new · {c.updated} changed · "
            f"{c.deleted} deleted{calls}" + (f" · warning: {c.warning}" if c.warning else ""))


# Every task that reads a source: retried with backoff on transient errors, results never persisted.
_SYNC_OPTIONS: dict[str, Any] = dict(
    retries=runner.RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)


@task(name="sync-stream", task_run_name="sync {name}", **_SYNC_OPTIONS)
def sync_task(ctx: RunContext, name: str) -> SyncCounts:
    logger = get_run_logger()
    try:
        counts = runner.sync_step(ctx, name)
    except OkrsyncError as exc:
        logger.warning("sync %s failed: %s", name, exc.message)
        raise
    logger.info("%s", _counts_line(name, counts))
    return counts


@task(name="open-partitioned-sync", task_run_name="open {name}", **_SYNC_OPTIONS)
def prepare_task(ctx: RunContext, name: str) -> pipeline.SyncPlan:
    return runner.prepare_step(ctx, name)


@task(name="sync-partition", task_run_name="sync {plan.stream.name} partition {index}", **_SYNC_OPTIONS)
def partition_task(ctx: RunContext, plan: pipeline.SyncPlan, index: int) -> pipeline.PartRead:
    part = runner.partition_step(ctx, plan, index)
    get_run_logger().info("sync %s partition %d: %d rows pulled", plan.name, index, part.rows_read)
    return part


@task(name="commit-partitioned-sync", task_run_name="commit {plan.stream.name}", persist_result=False,
      cache_policy=NO_CACHE)
def finish_task(ctx: RunContext, plan: pipeline.SyncPlan, parts: list[pipeline.PartRead]) -> SyncCounts:
    counts = runner.finish_step(ctx, plan, parts)
    get_run_logger().info("%s", _counts_line(plan.name, counts))
    return counts


@task(name="compute-key-results", persist_result=False, cache_policy=NO_CACHE)
def compute_task(ctx: RunContext, failed: dict[str, str]) -> Computed:
    logger = get_run_logger()
    computed = runner.compute_step(ctx, failed)
    for kr, value in computed.values.items():
        logger.info("%s = %s (%s; was %s)", kr, value if value is not None else "—",
                    computed.statuses.get(kr, "no status"), computed.previous.get(kr) or "—")
    for kr, why in computed.held.items():
        logger.warning("%s held at its last good value: %s", kr, why)
    return computed


class PrefectSteps:
    """The steps of a run as Prefect tasks, on the flow's task runner."""

    def sync_all(self, ctx: RunContext, names: Sequence[str]) -> dict[str, SyncCounts | OkrsyncError]:
        sync = sync_task.with_options(
            retry_delay_seconds=exponential_backoff(backoff_factor=ctx.retry_delay_seconds),
        )
        project = runner.opened.project(ctx.project_file)
        futures: dict[str, Any] = {}
        opened: dict[str, Any] = {}
        parts: dict[str, list[Any]] = {}
        for name in names:
            # Task-run tags: a tag concurrency limit (e.g. `source:salesforce`) caps parallel reads.
            kind = project.sources[project.streams[name].source].kind
            with tags(f"source:{kind}", f"project:{project.name}"):
                count = runner.partitions_of(ctx, name)
                if not count:
                    futures[name] = sync.submit(ctx, name)
                    continue
                # A partitioned stream: open the sync, read every range in parallel, commit once.
                opened[name] = prepare_task.submit(ctx, name)
                part = partition_task.with_options(
                    retry_delay_seconds=exponential_backoff(backoff_factor=ctx.retry_delay_seconds),
                )
                parts[name] = [part.submit(ctx, opened[name], i) for i in range(count)]
                futures[name] = finish_task.submit(ctx, opened[name], parts[name])
        # The run's own deadline, whatever the task runner (Prefect cannot interrupt a task on a worker
        # thread): a stream past it counts as failed, and what it may still commit is fenced off once
        # the run has ended.
        late = wait(list(futures.values()), timeout=ctx.timeout_seconds).not_done
        out: dict[str, SyncCounts | OkrsyncError] = {}
        for name, fut in futures.items():
            if fut in late:
                out[name] = SourceError(
                    f"the sync did not finish within {ctx.timeout_seconds:g} s", stream=name,
                    hint="raise settings.task_timeout_seconds, or find what makes the source slow",
                    transient=True,
                )
                continue
            try:
                out[name] = fut.result()
                continue
            except OkrsyncError as exc:
                error: OkrsyncError = exc
            except Exception as exc:  # a task timeout, a lost Dask worker, a failed partition…
                error = _first_error(name, parts.get(name, []), exc)
            out[name] = error
            if name in opened and opened[name].state.is_completed():
                runner.fail_step(ctx, opened[name].result(), error.message)  # drop what was staged
        return out

    def compute(self, ctx: RunContext, failed: Mapping[str, str]) -> Computed:
        future = compute_task.submit(ctx, dict(failed))
        if wait([future], timeout=ctx.timeout_seconds).not_done:
            raise MetricError(f"the key results were not computed within {ctx.timeout_seconds:g} s",
                              hint="raise settings.task_timeout_seconds, or find what makes it slow")
        return future.result()


def _first_error(name: str, parts: list[Any], exc: Exception) -> OkrsyncError:
    """The error that stopped a stream: a failed partition's own, else the one given."""
    for fut in parts:
        if fut.state.is_failed():
            try:
                fut.result()
            except OkrsyncError as failed:
                return failed
            except Exception as failed:
                exc = failed
                break
    return SourceError(f"{type(exc).__name__}: {exc}", stream=name, hint="see the task run's logs in Prefect")


def _run_name() -> str:
    """``<project> as of <time>`` (the project's name without loading the whole file)."""
    params = flow_run.parameters or {}
    as_of = params.get("as_of")
    when = runner.utc_naive(as_of if isinstance(as_of, datetime) else None)
    try:
        name = runner.project_name(runner.resolve_project_file(params.get("project_file")))
    except OkrsyncError:
        name = "okrsync"
    return f"{name} as of {when:%Y-%m-%d %H:%M}Z"


def _close_leftovers(flw: Any, fr: Any, state: State) -> None:
    """on_crashed / on_cancellation: close this flow run's open okrsync runs and free their leases."""
    why = f"the flow run was {(state.name or state.type.value).lower()}: {state.message or 'no message'}"
    try:
        runner.close_flow_run((fr.parameters or {}).get("project_file"), str(fr.id), why)
    except Exception as exc:  # a hook must not hide the state it reacts to
        logging.getLogger("okrsync.run").warning("could not close the okrsync run of flow run %s: %s",
                                                 fr.id, exc)


@contextmanager
def _forward_logs(logger: Any) -> Iterator[None]:
    """okrsync's own log records (from any thread of this process) into the flow run's logs."""

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger.log(record.levelno, "%s", record.getMessage())

    handler = Forward(level=logging.INFO)
    loggers = [logging.getLogger(n) for n in FORWARDED]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


@flow(
    name="okrsync-run",
    flow_run_name=_run_name,
    persist_result=False,
    log_prints=False,
    validate_parameters=True,
    timeout_seconds=6 * 3600,
    on_crashed=[_close_leftovers],  # type: ignore[list-item]
    on_cancellation=[_close_leftovers],  # type: ignore[list-item]
)
def okrsync_run(
    project_file: str | None = None, as_of: datetime | None = None, retry_delay_seconds: float = 2.0
) -> Any:
    """Sync every stream of the project, then compute and record every key result.

    ``project_file`` unset: the ``OKRSYNC_PROJECT`` variable of the process running the flow (the
    worker's environment), else ``./okrsync.yaml``. A stream that fails (after retries for transient
    errors) leaves its records and watermark as they were; the key results that read it are held at
    their last good value, and the flow run ends Failed.
    """
    logger = get_run_logger()
    fr_id = flow_run.get_id()
    try:
        with _forward_logs(logger):
            path = runner.resolve_project_file(project_file)
            _tag(path)
            summary = runner.run_project(
                path, PrefectSteps(), as_of=as_of, flow_run_id=fr_id, retry_delay_seconds=retry_delay_seconds,
                on_wait=lambda holder: logger.info("waiting for %s to finish", holder),
            )
    except OkrsyncError as exc:
        logger.error("%s", exc)
        return Failed(message=f"okrsync: {exc.message}", data=exc)
    _publish(summary)
    if summary.status != "succeeded":
        logger.error("okrsync: %s", summary.headline())
        return Failed(message=f"okrsync: {summary.headline()}", data=summary.as_dict())
    logger.info("okrsync: %s", summary.headline())
    return summary.as_dict()


def _tag(path: Any) -> None:
    """Tags naming the project and its source kinds, added to the flow run's own."""
    fr_id = flow_run.get_id()
    if fr_id is None:
        return
    from prefect.client.orchestration import get_client

    project = runner.opened.project(str(path))
    wanted = {"okrsync", f"project:{project.name}", *(f"source:{s.kind}" for s in project.sources.values())}
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(UUID(fr_id)).tags or []
            client.update_flow_run(UUID(fr_id), tags=sorted(set(current) | wanted))
    except Exception as exc:  # tags are a convenience: never fail a run for them
        get_run_logger().warning("could not tag the flow run: %s", type(exc).__name__)


def _publish(summary: RunSummary) -> None:
    """A markdown artifact of the run: every KR's value, change, status and hold, with links."""
    from prefect.artifacts import create_markdown_artifact

    from flows.report import markdown

    try:
        web = runner.opened.project(summary.project_file).settings.web_url
    except (OSError, OkrsyncError):
        web = None
    try:
        create_markdown_artifact(
            markdown=markdown(summary, web),
            key=runner.artifact_key(summary.project),
            description=f"okrsync run {summary.run_id[:8]}: {summary.headline()}",
        )
    except Exception as exc:  # the values are recorded; a missing artifact is only a warning
        get_run_logger().warning("could not publish the run's artifact: %s", type(exc).__name__)
