"""Running a project from the terminal: a live progress display around :func:`flows.execute.execute`,
the summary it prints, and what Ctrl-C or SIGTERM says the run kept."""

from __future__ import annotations

import os
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from rich.markup import escape

from okrsync.cli.context import console, err
from okrsync.errors import OkrsyncError


def execute(
    project_file: Path, as_of: datetime | None, *, quiet: bool = False, debug: bool = False
) -> dict[str, Any]:
    """Run the project (:func:`flows.execute.execute`) with a progress display; Ctrl-C or SIGTERM
    says what the run kept."""
    import signal

    from flows import progress
    from flows.execute import execute as flows_execute
    from okrsync.live import LiveReporter, quiet_prefect_shutdown

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # the run closes its row and frees its leases on the way out

    reporter = LiveReporter(console, enabled=not quiet and console.is_terminal)
    previous, progress.reporter = progress.reporter, reporter
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, terminate) if main_thread else None

    def waiting(holder: str) -> None:
        if not quiet:
            err.print(f"waiting for {escape(holder)} to finish …", highlight=False)

    try:
        with reporter, quiet_prefect_shutdown():
            return flows_execute(project_file, as_of, on_wait=waiting, debug=debug)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run closed its row and freed its leases
        if not main_thread:
            raise
        kept = reporter.kept
        _interrupted(kept, [s for s in _streams(project_file, reporter.started) if s not in kept])
    finally:
        progress.reporter = previous
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def print_summary(s: dict[str, Any]) -> None:
    for name, st in s["streams"].items():
        if st["ok"]:
            console.print(
                f"[green]✓[/green] {escape(name)}: {st['rows_read']} rows pulled · {st['inserted']} new · "
                f"{st['updated']} changed · {st['deleted']} deleted"
                + ("" if st.get("api_calls") is None else f" · {st['api_calls']} API calls")
            )
            if st.get("warning"):
                console.print(f"  [yellow]⚠ {escape(st['warning'])}[/yellow]")
        else:
            console.print(f"[red]✗[/red] {escape(name)}: {escape(st['error'])}")
    console.print(
        f"{len(s['values'])} key results computed"
        + (f", [yellow]{len(s['held'])} held[/yellow]" if s["held"] else "")
        + f" · run {s['run_id'][:8]} · {s['status']}"
    )
    for kr, why in s["held"].items():
        console.print(f"  [yellow]⏸ {escape(kr)}[/yellow]: {escape(why)}")
    a = s.get("alerts") or {}
    if a.get("channels") and (a.get("events") or a.get("sent") or a.get("failed") or a.get("deferred")):
        console.print(f"alerts: {a.get('events', 0)} new · {a.get('sent', 0)} sent"
                      + (f" · [red]{a['failed']} failed[/red]" if a.get("failed") else "")
                      + (f" · {a['deferred']} waiting (rate limit)" if a.get("deferred") else "")
                      + " (okrsync alerts)")


def _streams(project_file: Path, started: list[str]) -> list[str]:
    """The project's streams (those that started, if the file cannot be read again)."""
    from okrsync.project import load_project

    try:
        return list(load_project(project_file).streams)
    except OkrsyncError:
        return list(dict.fromkeys(started))


def _interrupted(kept: list[str], unfinished: list[str]) -> NoReturn:
    """Say what an interrupted run kept (the streams it committed) and what not, then exit 130."""
    synced = f"kept what was synced before it ({', '.join(kept)})" if kept else "no stream was synced"
    dropped = f"; not synced: {', '.join(unfinished)} (an unfinished sync keeps nothing)" * bool(unfinished)
    err.print(f"interrupted: {escape(synced + dropped)}; no key result was recorded (each keeps its last "
              "value); the run is closed and its leases are free, so the next run can start at once",
              highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)  # sync threads still blocked on a source must not hold the exit (their work is fenced)
