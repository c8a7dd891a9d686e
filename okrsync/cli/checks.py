"""``okrsync checks``: the admin's review of data-quality checks — list, show, accept, rerun, docs."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from okrsync.cli.context import JsonOpt, cli_context, console, open_project, open_store, parse_time
from okrsync.cli.running import execute, print_summary
from okrsync.errors import ConfigError

checks_app = typer.Typer(
    help="Review data-quality checks: what failed, the offending rows, what was held.",
    invoke_without_command=True,
    no_args_is_help=False,
)
STATUS_STYLE = {
    "passed": "green",
    "warned": "yellow",
    "blocked": "bold red",
    "accepted": "cyan",
    "superseded": "dim",
}


def _ctx(ctx: typer.Context, *, read_only: bool = False) -> tuple[Any, Any]:
    project = open_project(ctx)
    return project, open_store(ctx, project, read_only=read_only)


@checks_app.callback()
def checks(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Only checks that did not pass.")] = False,
    since: Annotated[str | None, typer.Option(help="Only checks from this time on.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every check result, newest first (with --failed: the ones that did not pass)."""
    if ctx.invoked_subcommand is not None:
        return
    from okr_store.checks import list_checks
    from okrsync.reconcile_view import subject
    from okrsync.render import check_json, dumps, fmt_time

    project, store = _ctx(ctx, read_only=True)
    with store.engine.connect() as conn:
        rows = list_checks(conn, failed=failed, since=parse_time(since, project.settings.timezone))
    if json_out:
        console.print_json(dumps({"checks": [check_json(r) for r in rows]}))
        return
    if not rows:
        console.print("No check results." + ("" if failed else " Declare checks in the project file."))
        return
    t = Table(title="Data-quality checks")
    for col in ("#", "when", "on", "check", "severity", "status", "failed", "held KRs"):
        t.add_column(col, overflow="fold")
    for r in rows:
        style = STATUS_STYLE.get(r.status, "")
        t.add_row(
            str(r.id),
            fmt_time(r.created_at),
            Text(subject(r)),
            Text(r.label),
            r.severity,
            f"[{style}]{r.status}[/{style}]",
            f"{r.unexpected_count}/{r.element_count}" if r.element_count else Text(r.observed or ""),
            Text(", ".join(r.held_krs)),
        )
    console.print(t)


@checks_app.command()
def show(ctx: typer.Context, check_id: int, json_out: JsonOpt = False) -> None:
    """One check: what it found, a sample of the offending rows, the KRs it held, the decisions."""
    from okr_store.checks import audit_log, get_check
    from okrsync.reconcile_view import detail, subject
    from okrsync.render import check_json, dumps, fmt_time

    project, store = _ctx(ctx, read_only=True)
    with store.engine.connect() as conn:
        r = get_check(conn, check_id)
        events = audit_log(conn, check_id=check_id)
    audit = [
        {"at": e.at, "actor": e.actor, "action": e.action, "reason": e.reason, "hash": e.hash} for e in events
    ]
    found = detail(project, r.result) if r.kind == "reconcile" else None
    if json_out:
        console.print_json(dumps({**check_json(r), "sample": r.sample, "result": r.result, "audit": audit,
                                  "reconciliation": found}))
        return
    c = console
    c.print(
        f"[bold]Check #{r.id}[/bold] {escape(r.label)} on "
        f"{escape(subject(r))} — [{STATUS_STYLE.get(r.status, '')}]{r.status}[/] "
        f"({r.severity}), {fmt_time(r.created_at)}, run {r.run_id[:8]}"
    )
    c.print(f"  declared as: {escape(json.dumps(r.spec['kwargs']))}")
    if r.element_count and not r.observed:
        c.print(f"  {r.unexpected_count} of {r.element_count} rows failed")
    if r.observed:
        c.print(f"  {escape(r.observed)}")
    if r.proposed_value is not None:
        c.print(f"  value held back: {r.proposed_value}")
    if r.held_krs and r.status == "blocked":
        c.print(f"  [yellow]held key results[/yellow]: {escape(', '.join(r.held_krs))}")
    if r.sample:
        names = list(r.sample[0]["fields"])[:9]
        t = Table(title=f"offending rows (first {len(r.sample)})")
        for col in ("record", *names):
            t.add_column(col, overflow="fold")
        for s in r.sample:
            t.add_row(*map(Text, [str(s["record_id"]), *[str(s["fields"].get(n, "")) for n in names]]))
        c.print(t)
    if found is not None:
        _print_reconciliation(found)
    for e in audit:
        c.print(f"  {fmt_time(e['at'])} {escape(e['actor'])} {e['action']}: {escape(e['reason'])}")
    if r.status == "blocked" and r.kind == "reconcile":
        c.print(f"Next: fix the side that is wrong and `okrsync checks rerun {r.id}`, or "
                f'`okrsync checks accept {r.id} --reason "…"`: the same difference then stays accepted.')
    elif r.status == "blocked":
        c.print(
            f"Next: fix the source and `okrsync checks rerun {r.id}`, or "
            f'`okrsync checks accept {r.id} --reason "…"` to let this batch through once.'
        )


@checks_app.command()
def accept(
    ctx: typer.Context,
    check_id: int,
    reason: Annotated[str, typer.Option(help="Why the data is fine (kept in the audit log).")],
    actor: Annotated[
        str | None, typer.Option(help="Who accepts (default: $OKRSYNC_ACTOR or your login).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Let what a failed check blocked through once, and update the held key results."""
    from flows.review import accept as do_accept
    from okrsync.render import dumps

    project, store = _ctx(ctx)
    who = actor or os.environ.get("OKRSYNC_ACTOR") or getpass.getuser()
    done = do_accept(project, store, check_id, reason=reason, actor=who)
    if json_out:
        console.print_json(dumps(done.__dict__))
        return
    console.print(
        f"[green]✓[/green] accepted check(s) {', '.join(f'#{i}' for i in done.check_ids)} as {who}"
        + (f"; {done.rows_committed} staged row changes committed to {done.stream}" if done.stream else "")
    )
    console.print(
        f"{len(done.values)} key results recomputed" + (f", {len(done.held)} still held" if done.held else "")
    )
    for kr, why in done.held.items():
        console.print(f"  [yellow]⏸ {escape(kr)}[/yellow]: {escape(why)}")


@checks_app.command()
def rerun(ctx: typer.Context, check_id: int) -> None:
    """Run the sync again (after the source was fixed): a new sync supersedes the blocked one."""
    from okr_store.checks import get_check

    project, store = _ctx(ctx)
    with store.engine.connect() as conn:
        r = get_check(conn, check_id)
    summary = execute(project.path, None, debug=cli_context(ctx).debug)
    print_summary(summary)
    with store.engine.connect() as conn:
        now = get_check(conn, check_id)
    console.print(
        f"check #{check_id} is now {now.status}"
        + (
            f" (stream {r.stream} synced)"
            if r.stream and summary["streams"].get(r.stream, {}).get("ok")
            else ""
        )
    )
    if summary["status"] != "succeeded":
        raise typer.Exit(1)


@checks_app.command()
def docs(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Option("--dir", help="Where to build the site.")] = Path("gx-docs"),
) -> None:
    """Build Great Expectations Data Docs for the latest validation of each stream."""
    from metrics.gx import build_data_docs, validation_record
    from metrics.quality import CheckSpec, Outcome
    from okr_store.checks import list_checks

    _, store = _ctx(ctx, read_only=True)
    with store.engine.connect() as conn:
        rows = [r for r in list_checks(conn, limit=5000) if r.stream and not CheckSpec(**r.spec).builtin]
    latest: dict[str, int] = {}
    for r in rows:
        key = str(r.stream)
        latest[key] = max(latest.get(key, 0), r.sync_id or 0)
    records = []
    for stream, sync_id in sorted(latest.items()):
        mine = [r for r in rows if r.stream == stream and (r.sync_id or 0) == sync_id]
        outcomes = [
            Outcome(
                check=CheckSpec(**r.spec),
                success=r.status == "passed",
                element_count=r.element_count,
                unexpected_count=r.unexpected_count,
                observed=r.observed,
                result=r.result,
                failing_record_ids=tuple(str(s["record_id"]) for s in r.sample),
            )
            for r in mine
        ]
        records.append(validation_record(stream, outcomes, min(r.created_at for r in mine)))
    if not records:
        raise ConfigError(
            "no Great Expectations validations stored yet",
            hint="declare expect_… checks on a stream and run `okrsync run`",
        )
    index = build_data_docs(records, directory)
    console.print(f"Data Docs for {len(records)} stream(s): {index}")


def _print_reconciliation(found: dict[str, Any]) -> None:
    """Totals per dimension value, then the unmatched and mismatched keys with their records (and the
    record's link in its source, where there is one)."""
    left, right = found["sides"]["left"]["metric"], found["sides"]["right"]["metric"]
    if found["dimensions"]:
        pairs = " · ".join(f"{a} ↔ {b}" for a, b in found["dimension_fields"].items())
        t = Table(title=f"totals per {pairs}")
        for col in ("value", left, right, "difference", ""):
            t.add_column(col, overflow="fold")
        for p in found["dimensions"]:
            t.add_row(Text(p["key"]), p["left"], p["right"], p["difference"],
                      "" if p["within_tolerance"] else "[red]differs[/red]")
        console.print(t)
    titles = {"unmatched_left": f"only in {left}", "unmatched_right": f"only in {right}",
              "mismatched": "amounts differ"}
    for group, title in titles.items():
        rows = found.get(group) or []
        if not rows:
            continue
        total = found["counts"][group]
        t = Table(title=f"{title} ({total}{'' if total == len(rows) else f', first {len(rows)} shown'})")
        for col in ("key", left, right, f"{left} records", f"{right} records"):
            t.add_column(col, overflow="fold")
        for p in rows:
            records = ["\n".join(x["id"] + (f" {x['url']}" if x["url"] else "") for x in p[f"{s}_records"])
                       for s in ("left", "right")]
            t.add_row(Text(p["key"]), p["left"], p["right"], *map(Text, records))
        console.print(t)
