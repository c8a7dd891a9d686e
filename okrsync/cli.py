"""The ``okrsync`` command line. Exit status: 0 ok, 1 failure (a run failed or held KRs), 2 usage or
validation error. Every command has JSON output for scripts (``--json`` or ``--format json``).

Heavy imports (prefect, great_expectations) happen only inside the commands that need them.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from okrsync.errors import ConfigError, OkrsyncError

app = typer.Typer(
    help="Compute OKR key results from the systems your company already runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages stay one line each, for grep


class State:
    project: Path = Path("okrsync.yaml")
    debug: bool = False


ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", envvar="OKRSYNC_PROJECT", help="The project file.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.callback()
def _main(
    project: ProjectOpt = Path("okrsync.yaml"),
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    State.project, State.debug = project, debug


def _project() -> Any:
    from okrsync.project import load_project

    return load_project(State.project)


def _store(project: Any, *, read_only: bool = False) -> Any:
    """The project's store; ``read_only`` for commands that only read it (they work on a store in a
    directory this user cannot write)."""
    from okr_store.store import Store

    return Store(project.store_url(), read_only=read_only)


def _now() -> datetime:
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


# ---- init / validate ----------------------------------------------------------------------------
@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the project file.")] = Path("okrsync.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented project file to start from."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it, or pick another path")
    template = Path(__file__).parent / "templates" / "okrsync.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.read_text())
    console.print(f"Wrote {path}. Edit it, then run [bold]okrsync validate --check-sources[/bold].")


@app.command()
def validate(
    check_sources: Annotated[
        bool, typer.Option("--check-sources", help="Also connect to each source and check fields and types.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the project file (and, with --check-sources, the sources' real schemas)."""
    from okrsync.project_problems import ProjectFileError

    try:
        project = _project()
    except ConfigError as exc:
        if not json_out:
            raise
        from okrsync.render import dumps

        found = exc.problems if isinstance(exc, ProjectFileError) else ()
        lines = [str(p) for p in found] or [exc.message]
        console.print_json(dumps({"ok": False, "problems": lines}))
        raise typer.Exit(2) from None
    from okrsync.project import check_declarations

    problems: list[str] = []
    if check_sources:
        from okrsync.project import check_sources as check

        problems = check(project)
    problems += check_declarations(project, with_sources=check_sources)
    krs = project.key_results()
    if json_out:
        from okrsync.render import dumps

        console.print_json(
            dumps(
                {
                    "ok": not problems,
                    "problems": problems,
                    "sources": len(project.sources),
                    "streams": len(project.streams),
                    "metrics": len(project.metrics),
                    "key_results": len(krs),
                }
            )
        )
    elif problems:
        err.print(f"[red]{len(problems)} problem(s) in {escape(str(project.path))}:[/red]")
        for p in problems:
            err.print(f"  {escape(p)}", highlight=False)
    else:
        checked = " and its sources" if check_sources else ""
        console.print(
            f"[green]✓[/green] {project.path}{checked} OK: {len(project.sources)} sources, "
            f"{len(project.streams)} streams, {len(project.metrics)} metrics, {len(krs)} key results"
        )
    if problems:
        raise typer.Exit(2)


# ---- run ----------------------------------------------------------------------------------------
def prefect_defaults() -> None:
    """Settings for a run through a Prefect API from the terminal: the run's logs go to the API (the
    UI shows them); the terminal shows okrsync's own output, not Prefect's log lines (--debug does)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "DEBUG" if State.debug else "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL",
                          "DEBUG" if State.debug else "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL",
                          "DEBUG" if State.debug else "CRITICAL")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")


@app.command()
def run(
    as_of: Annotated[str | None, typer.Option(
        help="Back-fill history: compute as of this past time (default: now). The values join the "
        "history; a KR's current value stays the one with the latest as-of.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sync every stream, compute every key result, record the values (a Prefect flow run)."""
    project = _project()
    when = parse_time(as_of, project.settings.timezone)
    if when is not None:
        from flows.run import run_as_of

        when = run_as_of(when)  # refuse a future time before any flow run starts
    summary = execute(project.path, when, quiet=json_out)
    if json_out:
        from okrsync.render import dumps

        console.print_json(dumps(summary))
    else:
        _print_summary(summary)
    if summary["status"] != "succeeded":
        raise typer.Exit(1)


def prefect_api_configured() -> bool:
    """Whether runs should go through a Prefect API: PREFECT_API_URL in the environment or in the
    active Prefect profile (read without importing Prefect)."""
    if os.environ.get("PREFECT_API_URL", "").strip():
        return True
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def execute(project_file: Path, as_of: datetime | None, *, quiet: bool = False) -> dict[str, Any]:
    """Run the project with a progress display: in this process when no Prefect API is configured
    (no server to start, no tax), else as a Prefect flow run on that API (logs, artifact, UI)."""
    import signal

    from flows import progress
    from okrsync.live import LiveReporter, quiet_prefect_shutdown

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # the run closes its row and frees its leases on the way out

    reporter = LiveReporter(console, enabled=not quiet and console.is_terminal)
    previous, progress.reporter = progress.reporter, reporter
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        if not prefect_api_configured():
            from flows.run import LocalSteps, run_project

            def waiting(holder: str) -> None:
                if not quiet:
                    err.print(f"waiting for {escape(holder)} to finish …", highlight=False)

            with reporter:
                return run_project(project_file, LocalSteps(), as_of=as_of, on_wait=waiting).as_dict()
        prefect_defaults()
        with reporter, quiet_prefect_shutdown():
            from flows.okr_flow import okrsync_run

            state: Any = okrsync_run(project_file=str(project_file), as_of=as_of, return_state=True)
            result = state.result(raise_on_failure=False)
            if isinstance(result, OkrsyncError):
                raise result
            if isinstance(result, BaseException):
                raise OkrsyncError(
                    f"the run failed: {type(result).__name__}: {result}",
                    hint="run again with --debug for details",
                ) from result
            if not isinstance(result, dict):
                raise OkrsyncError(f"the run ended {state.name}: {state.message}",
                                   hint="see the flow run's logs in Prefect")
            return result
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run closed its row and freed its leases
        if not main_thread:
            raise
        kept = reporter.kept
        _interrupted(kept, [s for s in _streams(project_file, reporter.started) if s not in kept])
    finally:
        progress.reporter = previous
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _print_summary(s: dict[str, Any]) -> None:
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


# ---- status -------------------------------------------------------------------------------------
@app.command()
def status(
    json_out: JsonOpt = False,
    stale_after: Annotated[float, typer.Option(help="Hours after which data counts as stale.")] = 24.0,
) -> None:
    """The objective tree: every KR's value, target, progress, status, freshness and holds."""
    from okr_store.queries import status_tree
    from okrsync import render
    from okrsync.small_groups import small_groups

    project = _project()
    store = _store(project, read_only=True)
    with store.engine.connect() as conn:
        roots = small_groups(project, project.role()[1]).tree(status_tree(conn))
    now, window = _now(), timedelta(hours=stale_after)
    if json_out:
        console.print_json(
            render.dumps({"objectives": [render.objective_json(o, now, window) for o in roots]})
        )
        return
    if not roots:
        console.print("No key results computed yet: run [bold]okrsync run[/bold].")
        return
    render.status_tree(console, roots, now, window)


# ---- demo ---------------------------------------------------------------------------------------
# (history, drill and diff are in okrsync.cli_values; _register_commands lists them before demo)
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to build the demo.")] = Path("okrsync-demo"),
    force: Annotated[bool, typer.Option(help="Rebuild an existing demo directory.")] = False,
    inject_bad_rows: Annotated[
        bool,
        typer.Option("--inject-bad-rows", help="Break three orders of an existing demo ERP (checks demo)."),
    ] = False,
    salesforce: Annotated[
        bool,
        typer.Option(help="Also read a CRM: a local Salesforce sandbox, left running in the background."),
    ] = True,
) -> None:
    """Build a demo ERP (SQLite), a project file for it, run it, and show the results."""
    from okrsync import demo as demo_mod

    if inject_bad_rows:
        ids = demo_mod.inject_bad_rows(directory)
        o = f"{demo_mod.okrsync_command()} -p {directory}/okrsync.yaml"
        console.print(
            f"Orders {', '.join(map(str, ids))} now have negative amounts in {directory}/erp.db. Try:"
        )
        console.print(
            f"  {o} run             the orders check blocks; revenue KRs keep their last good value\n"
            f"  {o} status          held KRs, with the reason\n"
            f"  {o} checks --failed\n  {o} checks show ID   the offending rows\n"
            f'  {o} checks accept ID --reason "…"',
            soft_wrap=True,
            highlight=False,
        )
        return

    from okrsync.cli_sandbox import free_port, start_background

    now = datetime.now(UTC).replace(microsecond=0)
    sf = demo_mod.SalesforceDemo(free_port(), now) if salesforce else None
    project_file = demo_mod.build(directory, today=date.today(), force=force, salesforce=sf)
    if sf is not None:
        pid = start_background(directory / demo_mod.SANDBOX_DIR, port=sf.port, org_time=sf.org_time,
                               seed=demo_mod.SANDBOX_SEED, opportunities=demo_mod.SANDBOX_OPPORTUNITIES)
        console.print(f"Started a local Salesforce sandbox at https://127.0.0.1:{sf.port} (pid {pid}).")
    console.print(f"Built a demo ERP and project in [bold]{directory}/[/bold]. Running it (Prefect flow)…")
    State.project = project_file
    summary = execute(project_file, None)
    _print_summary(summary)
    status(json_out=False, stale_after=24.0)
    console.print()
    console.print(demo_mod.closing_note(directory, salesforce=sf is not None), soft_wrap=True)
    console.print(demo_mod.next_steps(directory, salesforce=sf is not None), soft_wrap=True)
    if summary["status"] != "succeeded":
        raise typer.Exit(1)


def _register_commands() -> None:
    """The commands kept in their own modules, and demo, in the order `okrsync --help` lists them."""
    from okrsync.cli_audit import audit
    from okrsync.cli_checks import checks_app
    from okrsync.cli_sandbox import sandbox_app
    from okrsync.cli_users import serve, users_app
    from okrsync.cli_values import diff, drill, history

    for command in (history, drill, diff, demo, serve, audit):
        app.command()(command)
    app.add_typer(checks_app, name="checks")
    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(users_app, name="users")


_register_commands()


def main() -> None:
    """Entry point: known errors become a message and an exit status, not a traceback."""
    try:
        app()
    except OkrsyncError as exc:
        if State.debug:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"  → {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: nothing of the unfinished step was committed")
        sys.exit(130)


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


if __name__ == "__main__":
    main()
