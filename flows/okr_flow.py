"""The Prefect flow behind ``okrsync run`` and the deployments in ``prefect.yaml``.

One task per stream (retried with backoff on transient source errors, run concurrently), then one
task that evaluates and records every key result. Task results are not persisted: they carry source
data, and Prefect's default result storage pickles to a shared folder.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from flows import pipeline
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync.errors import OkrsyncError, SourceError
from okrsync.project import Project, load_project


@dataclass
class RunSummary:
    """What a run did, for the CLI and for scripts (``okrsync run --json``)."""

    run_id: str
    flow_run_id: str | None
    status: str  # succeeded | partial | failed
    as_of: datetime
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, str | None] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed on a second try: a transient source error."""
    try:
        state.result()
    except SourceError as exc:
        return exc.transient
    except Exception:
        return False
    return False


@task(
    name="sync-stream",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
    task_run_name="sync {name}",
)
def sync_task(project: Project, store: Store, run_id: str, name: str) -> SyncCounts:
    connector = project.connector(project.streams[name].source)
    try:
        return pipeline.sync_stream(project, store, connector, run_id, name)
    finally:
        connector.close()


@task(name="compute-key-results", persist_result=False, cache_policy=NO_CACHE)
def compute_task(
    project: Project,
    store: Store,
    run_id: str,
    flow_run_id: str | None,
    as_of: datetime,
    failed: dict[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    return pipeline.compute_values(project, store, run_id, flow_run_id, as_of, failed)


@flow(name="okrsync-run", persist_result=False, log_prints=False, validate_parameters=True)
def okrsync_run(
    project_file: str = "okrsync.yaml", as_of: datetime | None = None, retry_delay_seconds: float = 2.0
) -> dict[str, Any]:
    """Sync every stream of the project, then compute and record every key result.

    A stream that fails (after retries for transient errors) leaves its records and watermark as they
    were; the key results that read it are held at their last good value, with the reason.
    """
    summary = run_project(load_project(project_file), as_of=as_of, retry_delay_seconds=retry_delay_seconds)
    return summary.__dict__ | {"as_of": summary.as_of.isoformat()}


def run_project(
    project: Project, *, as_of: datetime | None = None, retry_delay_seconds: float = 2.0
) -> RunSummary:
    """The body of the flow (call it inside a flow run)."""
    as_of = (as_of.astimezone(UTC).replace(tzinfo=None) if as_of and as_of.tzinfo else as_of) or datetime.now(
        UTC
    ).replace(tzinfo=None)
    store = Store(project.store_url())
    fr_id = flow_run.get_id()
    pipeline.register_okrs(project, store)
    run_id = store.start_run(as_of, fr_id)
    summary = RunSummary(run_id, fr_id, "running", as_of)
    try:
        sync = sync_task.with_options(
            retry_delay_seconds=exponential_backoff(backoff_factor=retry_delay_seconds)
        )
        futures = {name: sync.submit(project, store, run_id, name) for name in project.streams}
        wait(list(futures.values()))
        failed: dict[str, str] = {}
        for name, fut in futures.items():
            try:
                counts = fut.result()
                summary.streams[name] = {"ok": True, **counts.__dict__}
            except OkrsyncError as exc:
                failed[name] = exc.message
                summary.streams[name] = {"ok": False, "error": exc.message}
        results, held = compute_task(project, store, run_id, fr_id, as_of, failed)
        summary.values = {k: (None if e.value is None else str(e.value)) for k, e in results.items()}
        summary.held = held
        summary.status = "partial" if failed or held else "succeeded"
        summary.error = "; ".join(f"{k}: {v}" for k, v in failed.items()) or None
        store.finish_run(run_id, summary.status, summary.error)
    except Exception as exc:
        summary.status = "failed"
        summary.error = exc.message if isinstance(exc, OkrsyncError) else f"{type(exc).__name__}: {exc}"
        store.finish_run(run_id, "failed", summary.error)
        # Nothing of this run was recorded; say so on every KR, which keeps its last good value.
        held = {b.spec.id: f"run failed: {summary.error}" for b in project.key_results()}
        store.record_values(run_id, fr_id, as_of, [], held)
        summary.held = held
        if not isinstance(exc, OkrsyncError):
            summary.error += "\n" + traceback.format_exc(limit=5)
        raise
    finally:
        store.close()
    return summary
