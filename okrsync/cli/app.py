"""The ``okrsync`` command line. Exit status: 0 ok, 1 failure (a run failed or held KRs), 2 usage or
validation error. Every command has JSON output for scripts (``--json`` or ``--format json``).

Heavy imports (prefect, great_expectations) happen only inside the commands that need them.
"""

from __future__ import annotations

import copy
import gc
import sys
import traceback
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.main import get_command_name

from okrsync.cli.context import (
    CliContext,
    JsonOpt,
    ProjectOpt,
    cli_context,
    console,
    err,
    now,
    open_project,
    open_store,
    parse_time,
)
from okrsync.cli.running import execute, print_summary
from okrsync.errors import ConfigError, OkrsyncError

app = typer.Typer(
    help="Compute OKR key results from the systems your company already runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
@app.callback()
def _main(
    ctx: typer.Context,
    project: ProjectOpt = Path("okrsync.yaml"),
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    context = ctx.ensure_object(CliContext)
    context.project_file, context.debug = project, debug


# ---- init / validate ----------------------------------------------------------------------------
@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the project file.")] = Path("okrsync.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented project file to start from."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it, or pick another path")
    template = Path(__file__).parents[1] / "templates" / "okrsync.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.read_text())
    console.print(f"Wrote {path}. Edit it, then run [bold]okrsync validate --check-sources[/bold].")


@app.command()
def validate(
    ctx: typer.Context,
    check_sources: Annotated[
        bool, typer.Option("--check-sources", help="Also connect to each source and check fields and types.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the project file (and, with --check-sources, the sources' real schemas)."""
    from okrsync.project_problems import ProjectFileError

    try:
        project = open_project(ctx)
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
@app.command()
def run(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(
        help="Back-fill history: compute as of this past time (default: now). The values join the "
        "history; a KR's current value stays the one with the latest as-of.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sync every stream, compute every key result, record the values (a Prefect flow run)."""
    project = open_project(ctx)
    when = parse_time(as_of, project.settings.timezone)
    if when is not None:
        from flows.run import run_as_of

        when = run_as_of(when)  # refuse a future time before any flow run starts
    summary = execute(project.path, when, quiet=json_out, debug=cli_context(ctx).debug)
    if json_out:
        from okrsync.render import dumps

        console.print_json(dumps(summary))
    else:
        print_summary(summary)
    if summary["status"] != "succeeded":
        raise typer.Exit(1)


# ---- status -------------------------------------------------------------------------------------
@app.command()
def status(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    stale_after: Annotated[float, typer.Option(help="Hours after which data counts as stale.")] = 24.0,
) -> None:
    """The objective tree: every KR's value, target, progress, status, freshness and holds."""
    from okr_store.queries import status_tree
    from okrsync import render
    from okrsync.small_groups import small_groups

    project = open_project(ctx)
    store = open_store(ctx, project, read_only=True)
    with store.engine.connect() as conn:
        roots = small_groups(project, project.role()[1]).tree(status_tree(conn))
    at, window = now(), timedelta(hours=stale_after)
    if json_out:
        console.print_json(
            render.dumps({"objectives": [render.objective_json(o, at, window) for o in roots]})
        )
        return
    if not roots:
        console.print("No key results computed yet: run [bold]okrsync run[/bold].")
        return
    render.status_tree(console, roots, at, window)


# ---- demo ---------------------------------------------------------------------------------------
# (history, drill and diff are in okrsync.cli.values; _register_commands lists them before demo)
def demo(
    ctx: typer.Context,
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

    from okrsync.sandboxes.background import free_port, start_background

    now = datetime.now(UTC).replace(microsecond=0)
    sf = demo_mod.SalesforceDemo(free_port(), now) if salesforce else None
    project_file = demo_mod.build(directory, today=date.today(), force=force, salesforce=sf)
    if sf is not None:
        pid = start_background(directory / demo_mod.SANDBOX_DIR, port=sf.port, org_time=sf.org_time,
                               seed=demo_mod.SANDBOX_SEED, opportunities=demo_mod.SANDBOX_OPPORTUNITIES)
        console.print(f"Started a local Salesforce sandbox at https://127.0.0.1:{sf.port} (pid {pid}).")
    console.print(f"Built a demo ERP and project in [bold]{directory}/[/bold]. Running it (Prefect flow)…")
    cli_context(ctx).project_file = project_file
    summary = execute(project_file, None, debug=cli_context(ctx).debug)
    print_summary(summary)
    status(ctx, json_out=False, stale_after=24.0)
    console.print()
    console.print(demo_mod.closing_note(directory, salesforce=sf is not None), soft_wrap=True)
    console.print(demo_mod.next_steps(directory, salesforce=sf is not None), soft_wrap=True)
    if summary["status"] != "succeeded":
        raise typer.Exit(1)


def _register_commands() -> None:
    """The commands kept in their own modules, and demo, in the order `okrsync --help` lists them."""
    from okrsync.cli.alerts import alerts_app
    from okrsync.cli.audit import audit
    from okrsync.cli.checks import checks_app
    from okrsync.cli.closing import reopen, restatements_app
    from okrsync.cli.kr import kr_app
    from okrsync.cli.plan import plan
    from okrsync.cli.sandbox import sandbox_app
    from okrsync.cli.users import serve, users_app
    from okrsync.cli.values import diff, drill, history

    for command in (history, drill, diff, plan, demo, serve, audit, reopen):
        app.command()(command)
    app.add_typer(checks_app, name="checks")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(restatements_app, name="restatements")
    app.add_typer(kr_app, name="kr")
    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(users_app, name="users")


_register_commands()


def _invoked(args: list[str]) -> str | None:
    """The command or group name ``args`` invoke, when only the root's own options (``--project``,
    ``-p``, ``--debug``) stand before it; None for anything else (``--help``, no command, an unknown
    option), which the whole command tree then handles."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-p", "--project"):
            i += 2
        elif arg == "--debug" or arg.startswith(("--project=", "-p")):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def _only(name: str | None) -> typer.Typer:
    """``app`` with only the command or group ``name`` (the whole app if it names none).

    Typer builds a click command, with every parameter's type hints, for each command of an app it is
    called on: ~0.1 s of CPU for ours, paid by every command. A command runs the same in this copy
    (the root callback and its options, the settings, the command's own parameters are the same
    objects), and a name typed wrong still gets the whole tree, and so click's suggestions."""
    commands = [c for c in app.registered_commands
                if (c.name or (c.callback and get_command_name(c.callback.__name__))) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    slim = copy.copy(app)
    slim.registered_commands, slim.registered_groups = commands, groups
    return slim


def main() -> None:
    """Entry point: known errors become a message and an exit status, not a traceback."""
    context = CliContext()
    try:
        _only(_invoked(sys.argv[1:]))(obj=context)
    except OkrsyncError as exc:
        if context.debug:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"  → {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: nothing of the unfinished step was committed")
        sys.exit(130)
    finally:
        # The process ends here (typer always exits). Freeing every object of the run one by one at
        # interpreter exit took ~0.15-0.2 s of CPU after a cold `status` (the garbage collector's
        # passes over the imported libraries' cyclic structures); frozen, they go with the process,
        # as mypy's --fast-exit does. atexit handlers and the flushing of stdout/stderr still run.
        gc.freeze()
