"""``okrsync alerts``: the admin's view of alert deliveries (sent, failed, waiting), and sending now."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from okrsync.cli.context import JsonOpt, console, open_project, open_store
from okrsync.errors import ConfigError

alerts_app = typer.Typer(
    help="Alert deliveries to webhooks, Slack, Teams and email: what was sent, what failed, what waits.",
    invoke_without_command=True,
    no_args_is_help=False,
)
STATUSES = ("pending", "sending", "sent", "failed", "abandoned")
STATUS_STYLE = {"pending": "yellow", "sending": "cyan", "sent": "green", "failed": "bold red",
                "abandoned": "red"}


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help=f"Only deliveries in this status: {', '.join(STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Alert deliveries, newest first, with each one's event, channel, status, attempts and error."""
    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}", hint=f"one of: {', '.join(STATUSES)}")
    from okr_store.alerts import counts, list_deliveries
    from okrsync.render import dumps, fmt_time

    project = open_project(ctx)
    store = open_store(ctx, project, read_only=True)
    with store.engine.connect() as conn:
        rows = list_deliveries(conn, status=status, limit=limit)
        totals = counts(conn)
    if json_out:
        console.print_json(dumps({"counts": totals, "deliveries": [d.as_json() for d in rows]}))
        return
    if not project.alerts.channels:
        console.print("No alert channels: add an `alerts:` section to the project file (docs/alerts.md).")
    if not rows:
        console.print("No alert deliveries yet.")
        return
    t = Table(title="Alert deliveries · " + " · ".join(f"{n} {s}" for s, n in sorted(totals.items())))
    for col in ("#", "event", "key results", "channel", "to", "status", "tries", "last try", "error"):
        t.add_column(col, overflow="fold")
    for d in rows:
        style = STATUS_STYLE.get(d.status, "")
        t.add_row(str(d.id), Text(d.kind), Text(", ".join(d.kr_ids)), Text(d.channel), Text(d.recipient),
                  f"[{style}]{d.status}[/{style}]", str(d.attempts), fmt_time(d.last_attempt_at),
                  Text(d.error or ""))
    console.print(t)


@alerts_app.command()
def send(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Send the deliveries that are due now (pending, and failed ones with tries left), without a run."""
    from flows.alerts import send_due
    from okrsync.render import dumps

    project = open_project(ctx)
    if not project.alerts.channels:
        raise ConfigError("the project has no alert channels",
                          hint="add an `alerts:` section (docs/alerts.md)")
    store = open_store(ctx, project)
    report = send_due(project, store)
    out: dict[str, Any] = report.as_dict()
    if json_out:
        console.print_json(dumps(out))
    else:
        console.print(f"{report.sent} sent · {report.failed} failed · {report.deferred} waiting (rate limit)")
        for e in report.errors:
            console.print(f"  [red]✗[/red] {Text(e)}")
    if report.failed:
        raise typer.Exit(1)
