"""What every command of the CLI shares: the consoles, the options, and the run's context object.

The root command's callback stores a :class:`CliContext` (the project file, ``--debug``) as the
context object of the invocation; a command takes typer's ``ctx`` and opens the project and its store
through it (:func:`open_project`, :func:`open_store`), as click's ``pass_obj`` commands do.
Nothing here imports prefect or great_expectations: ``--help``, ``status`` and ``drill`` stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from okrsync.errors import ConfigError

if TYPE_CHECKING:
    from okr_store.store import Store
    from okrsync.project import Project

console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages stay one line each, for grep

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", envvar="OKRSYNC_PROJECT", help="The project file.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@dataclass
class CliContext:
    """One invocation of ``okrsync``: which project file, and whether to show tracebacks."""

    project_file: Path = Path("okrsync.yaml")
    debug: bool = False

    def project(self) -> Project:
        from okrsync.project import load_project

        return load_project(self.project_file)

    def store(self, project: Project, *, read_only: bool = False) -> Store:
        """The project's store; ``read_only`` for commands that only read it (they work on a store in
        a directory this user cannot write)."""
        from okr_store.store import Store

        return Store(project.store_url(), read_only=read_only)


def cli_context(ctx: typer.Context) -> CliContext:
    """The context object of this invocation (the root command's, made with defaults if unset, as
    when a test invokes the app without ``obj``)."""
    return ctx.find_root().ensure_object(CliContext)


def open_project(ctx: typer.Context) -> Project:
    """The project of this invocation (``--project``, ``OKRSYNC_PROJECT`` or ``./okrsync.yaml``)."""
    return cli_context(ctx).project()


def open_store(ctx: typer.Context, project: Project, *, read_only: bool = False) -> Store:
    return cli_context(ctx).store(project, read_only=read_only)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_time(text: str | None, timezone: str) -> datetime | None:
    """``2026-11-01``, ``2026-11-01T09:30`` (company time) or with an offset/Z → naive UTC."""
    if text is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"cannot read the time {text!r}",
            hint="write 2026-11-01, 2026-11-01T09:30 (company time) or 2026-11-01T08:30Z",
        ) from None
    if len(text) == 10:  # a date means the end of that day
        t = t + timedelta(days=1) - timedelta(microseconds=1)
    if t.tzinfo is None:
        t = t.replace(tzinfo=ZoneInfo(timezone))
    return t.astimezone(UTC).replace(tzinfo=None)
