"""``okrsync audit``: the audit log — access changes (users, roles, passwords, API tokens), sign-ins
and check decisions — newest first, and whether its hash chain holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from okrsync.cli.context import console, open_project, open_store

FIELDS = ("id", "at", "actor", "action", "target", "address", "check_id", "kr_id", "reason")


Access = Annotated[bool, typer.Option("--access", help="Access events only (no check decisions).")]
Verify = Annotated[bool, typer.Option("--verify", help="Check the whole hash chain (exit 1 if broken).")]


def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="How many events, newest first.")] = 50,
    access: Access = False,
    user: Annotated[str | None, typer.Option(help="Only events by or about this user.")] = None,
    verify: Verify = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The audit log: who changed access or decided on a check, when, about whom, from where."""
    from okr_store import audit as store_audit
    from okrsync.render import dumps, fmt_time

    project = open_project(ctx)
    store = open_store(ctx, project, read_only=True)
    with store.engine.connect() as conn:
        if user is None:
            rows = store_audit.recent(conn, limit=limit, access_only=access)
        else:  # by them or about them
            by = store_audit.recent(conn, limit=limit, access_only=access, actor=user)
            about = store_audit.recent(conn, limit=limit, access_only=access, target=user)
            rows = sorted({r.id: r for r in [*by, *about]}.values(), key=lambda r: -r.id)[:limit]
        broken = store_audit.verify_audit_chain(conn) if verify else None
    events = [{k: getattr(r, k) for k in FIELDS} for r in rows]
    if json_out:
        out: dict[str, object] = {"events": events}
        if verify:
            out["chain"] = {"ok": broken is None, "broken_at": broken}
        console.print_json(dumps(out))
    else:
        t = Table(title="Audit log (newest first)")
        for col in ("#", "when", "who", "what", "about", "from", "details"):
            t.add_column(col)
        for e in events:
            subject = e["target"] or (f"check #{e['check_id']}" if e["check_id"] else "")
            t.add_row(str(e["id"]), fmt_time(e["at"]), escape(e["actor"]), escape(e["action"]),
                      escape(str(subject)), escape(e["address"] or ""), escape(e["reason"]))
        console.print(t if events else "No audit events yet.")
        if verify:
            console.print("[green]✓[/green] the hash chain holds" if broken is None
                              else f"[red]✗[/red] the hash chain breaks at event #{broken}: it was edited or "
                              "an event before it removed")
    if verify and broken is not None:
        raise typer.Exit(1)

