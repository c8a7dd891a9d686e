"""Live progress of a run in the terminal, and silence for Prefect's shutdown noise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class LiveReporter:
    """A rich progress display: one line per stream (rows pulled), one for the key results."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()
        self.started: list[str] = []  # streams whose sync began, in order
        self.kept: list[str] = []  # streams whose sync committed (what an interrupted run keeps)

    def __enter__(self) -> LiveReporter:
        self.progress.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def _task(self, key: str, text: str) -> TaskID:
        with self.lock:
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(text, total=None)
            return self.tasks[key]

    def stream_started(self, stream: str) -> None:
        with self.lock:
            self.started.append(stream)
        self._task(stream, f"sync {stream}: starting")

    def stream_rows(self, stream: str, rows: int) -> None:
        self.progress.update(self._task(stream, stream), description=f"sync {stream}: {rows:,} rows pulled")

    def stream_finished(self, stream: str, summary: str, ok: bool) -> None:
        if ok:
            with self.lock:
                self.kept.append(stream)
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        tid = self._task(stream, stream)
        self.progress.update(tid, description=f"{mark} sync {stream}: {summary}", total=1, completed=1)

    def metrics_started(self, count: int) -> None:
        self._task("__metrics__", f"compute {count} key results")

    def metric_done(self, kr_id: str, summary: str) -> None:
        tid = self._task("__metrics__", "compute")
        self.progress.update(tid, description=f"compute key results: {kr_id} = {summary}")


class _DropCancelled(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError):
            return False
        return "CancelledError" not in record.getMessage()


@contextlib.contextmanager
def quiet_prefect_shutdown() -> Iterator[None]:
    """Prefect's ephemeral API logs CancelledError tracebacks as it stops; users need not see them."""
    flt = _DropCancelled()
    names = ["", "asyncio", "uvicorn", "uvicorn.error", "prefect", "prefect.server"]
    loggers = [logging.getLogger(n) for n in names]
    for lg in loggers:
        lg.addFilter(flt)
        for h in lg.handlers:
            h.addFilter(flt)
    yield
