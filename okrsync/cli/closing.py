"""``okrsync restatements`` and ``okrsync reopen``: closed periods after the fact (okr_store.closing).

Listing restatements is for every role that may see records; acknowledging one and reopening a closed
period are an admin's decisions (``OKRSYNC_ROLE`` with ``admin``), kept in the audit log.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from okrsync.cli.context import JsonOpt, console, open_project, open_store

restatements_app = typer.Typer(
    help="Late source changes to closed periods: list them, see their records, acknowledge them.",
    invoke_without_command=True,
    no_args_is_help=False,
)
Reason = Annotated[str, typer.Option(help="Why (kept in the audit log).")]
Actor = Annotated[str | None, typer.Option(help="Who decides (default: $OKRSYNC_ACTOR or your login).")]


def _admin(project: Any, what: str) -> None:
    from okrsync.access import NotAllowed

    name, role = project.role()
    if not role.admin:
        raise NotAllowed(
            f"role {name!r} may not {what}: it takes an admin role",
            hint="set OKRSYNC_ROLE to a role with admin: true (admin, owner)",
        )


def _records_role(project: Any) -> None:
    from okrsync.access import NotAllowed

    name, role = project.role()
    if not role.records:
        raise NotAllowed(
            f"role {name!r} may not see records, so not the records of a restatement",
            hint="okrsync status shows each KR's label without them",
        )


def _seen(project: Any, conn: Any, rows: list[Any]) -> list[Any]:
    """The restatements of KRs whose value the role may see (not those of a small group it sees as
    suppressed: a restatement tells how far that value moved)."""
    from okr_store.queries import value_at
    from okrsync.errors import NotFound
    from okrsync.small_groups import small_groups

    seen, hidden = small_groups(project, project.role()[1]), {}
    for r in rows:
        if r.kr_id not in hidden:
            try:
                hidden[r.kr_id] = seen.hides(value_at(conn, r.kr_id))
            except NotFound:
                hidden[r.kr_id] = False
    return [r for r in rows if not hidden[r.kr_id]]


@restatements_app.callback()
def restatements(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also acknowledged ones and reopened periods'.")
    ] = False,
    kr: Annotated[str | None, typer.Option("--kr", help="Only this key result's.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Restatements waiting for an admin (with --all: every one), newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from okr_store import closing
    from okrsync.render import dumps, fmt_time

    project = open_project(ctx)
    _records_role(project)
    with open_store(ctx, project, read_only=True).engine.connect() as conn:
        rows = _seen(project, conn, closing.restatements(conn, kr, pending=not show_all))
    if json_out:
        console.print_json(
            dumps({"restatements": [closing.restatement_json(r, changes=False) for r in rows]})
        )
        return
    if not rows:
        console.print("No restatements" + (" waiting for an admin." if not show_all else "."))
        return
    t = Table(title="Restatements after close" + ("" if show_all else " (not acknowledged)"))
    for col in ("#", "KR", "as of", "closed value", "would be", "change", "records", "acknowledged"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            str(r.id),
            Text(r.kr_id),
            fmt_time(r.as_of),
            str(r.closed_value),
            str(r.value),
            r.change_text(),
            str(r.total_changes),
            Text(f"{r.acknowledged_by} {fmt_time(r.acknowledged_at)}" if r.acknowledged_at else "—"),
        )
    console.print(t)
    console.print(
        "See one: okrsync restatements show ID · acknowledge it (admin): "
        'okrsync restatements ack ID --reason "…"',
        highlight=False,
    )


@restatements_app.command()
def show(ctx: typer.Context, restatement_id: int, json_out: JsonOpt = False) -> None:
    """One restatement: the closed and the restated value, and each record that moved it."""
    from okr_store import closing
    from okrsync.errors import NotFound
    from okrsync.render import dumps, fmt_time

    project = open_project(ctx)
    _records_role(project)
    with open_store(ctx, project, read_only=True).engine.connect() as conn:
        found = _seen(project, conn, [r for r in closing.restatements(conn) if r.id == restatement_id])
    if not found:
        raise NotFound(f"no restatement #{restatement_id}", hint="`okrsync restatements --all` lists them")
    r = found[0]
    if json_out:
        console.print_json(dumps(closing.restatement_json(r)))
        return
    console.print(
        f"[bold]Restatement #{r.id}[/bold] of {escape(r.kr_id)}: closed value {r.closed_value} "
        f"(value #{r.closed_value_id}) would be {r.value} as of {fmt_time(r.as_of)} "
        f"(value #{r.value_id}): {r.change_text()}",
        highlight=False,
    )
    t = Table(title=f"records that moved it ({r.total_changes})")
    for col in ("stream", "record", "kind", "before", "after", "why"):
        t.add_column(col)
    for c in r.changes:
        why = c["why"] + (f": {', '.join(c['fields'])}" if c["fields"] else "")
        t.add_row(
            *map(Text, [c["stream"], c["record_id"], c["kind"], c["before"] or "—", c["after"] or "—", why])
        )
    console.print(t)
    if r.acknowledged_at:
        console.print(
            f"acknowledged by {escape(r.acknowledged_by or '')} at {fmt_time(r.acknowledged_at)}: "
            f"{escape(r.acknowledge_reason or '')}",
            highlight=False,
        )


@restatements_app.command()
def ack(
    ctx: typer.Context, restatement_id: int, reason: Reason, actor: Actor = None, json_out: JsonOpt = False
) -> None:
    """Acknowledge a restatement (admin; audited). The closed value stays final."""
    from okr_store import closing
    from okrsync.render import dumps

    project = open_project(ctx)
    _admin(project, "acknowledge restatements")
    who = actor or os.environ.get("OKRSYNC_ACTOR") or getpass.getuser()
    with open_store(ctx, project).engine.begin() as conn:
        r = closing.acknowledge(conn, restatement_id, actor=who, reason=reason)
    if json_out:
        console.print_json(dumps(closing.restatement_json(r, changes=False)))
        return
    console.print(f"[green]✓[/green] restatement #{r.id} of {escape(r.kr_id)} acknowledged as {escape(who)}")


def reopen(
    ctx: typer.Context, kr_id: str, reason: Reason, actor: Actor = None, json_out: JsonOpt = False
) -> None:
    """Reopen a KR's closed period (admin; audited): the next run recomputes it and closes it again."""
    from okr_store import closing
    from okrsync.render import dumps

    project = open_project(ctx)
    _admin(project, "reopen closed periods")
    who = actor or os.environ.get("OKRSYNC_ACTOR") or getpass.getuser()
    with open_store(ctx, project).engine.begin() as conn:
        c = closing.reopen(conn, kr_id, actor=who, reason=reason)
    if json_out:
        console.print_json(dumps(closing.close_json(c)))
        return
    console.print(
        f"[green]✓[/green] reopened period {escape(c.period_label)} of {escape(kr_id)} (final value "
        f"{c.value}) as {escape(who)}; the next `okrsync run` recomputes it and closes it again.",
        highlight=False,
    )
