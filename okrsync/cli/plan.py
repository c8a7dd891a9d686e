"""``okrsync plan``: preview a change of metric, filter or KR binding before it changes any value, and
apply it with a reason (audited), optionally restating history. See docs/plan.md.

Exit status: 0 the project file's definitions are the registered ones (or ``--apply`` registered
them); 3 some differ (CI: a definition change is pending review); 2 a bad project file or option.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from okrsync.cli.context import console, now, open_project, open_store
from okrsync.errors import ConfigError


def plan(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    limit: Annotated[int, typer.Option(min=0, help="Records shown per key result (largest moves).")] = 20,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Register the new definitions (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(
        help="Why the definitions change (kept in the audit log).")] = None,
    restate: Annotated[bool, typer.Option(
        "--restate", help="With --apply: also recompute every stored value under the new definition, "
        "recorded next to the original and marked restated.")] = False,
    actor: Annotated[str | None, typer.Option(
        help="Who applies (default: $OKRSYNC_ACTOR or your login).")] = None,
) -> None:
    """Compare the project file's definitions with the registered ones: per key result, the value
    before and after on the same snapshot, the records entering and leaving, the past values that
    would change. Exit status 3 when definitions differ (0: none, or applied)."""
    from okrsync import plan as planning
    from okrsync.render import dumps

    if fmt not in ("table", "json"):
        raise ConfigError("--format takes table or json")
    if restate and not apply:
        raise ConfigError("--restate needs --apply", hint='okrsync plan --apply --restate --reason "…"')
    if apply and reason is None:
        raise ConfigError("--apply needs --reason", hint='say why: okrsync plan --apply --reason "…"')
    project = open_project(ctx)
    store = open_store(ctx, project, read_only=not apply)
    name, role = project.role()
    p = planning.make_plan(project, store, now(), limit=limit)
    shown = planning.as_seen(project, role, p)
    applied: dict[str, str | None] | None = None
    restated = 0
    if apply and p.changes:
        who = actor or os.environ.get("OKRSYNC_ACTOR") or getpass.getuser()
        applied, restated = planning.apply_plan(project, store, p, reason=reason or "", actor=who,
                                                restate=restate)
    if fmt == "json":
        out = planning.plan_json(shown)
        if apply:
            out["applied"] = sorted(applied or {})
            out["restated"] = restated
        console.print_json(dumps(out))
    else:
        _table(project, shown, role_name=name, records=role.records)
        if apply:
            _applied(applied, restated)
    if p.changes and not apply:
        raise typer.Exit(planning.EXIT_CHANGES)


def _fmt(v: Any) -> str:
    return "—" if v is None else str(v)


def _table(project: Any, p: Any, *, role_name: str, records: bool) -> None:
    from okrsync.plan import definition_text

    hidden = {f for fields in project.sensitive().values() for f in fields}
    if not p.changes:
        console.print("No definition changes: every key result's definition is the registered one.")
    for c in p.affected:
        console.print(f"[bold]{escape(c.kr_id)}[/bold]: value changes "
                      f"(as of {c.as_of:%Y-%m-%d %H:%M} UTC, same snapshot)", highlight=False)
        t = Table(show_header=True, box=None)
        for col in ("changed", "registered", "new"):
            t.add_column(col, overflow="fold")
        for path in c.changed:
            t.add_row(escape(path), escape(definition_text(c.old, path, hidden)),
                      escape(definition_text(c.new, path, hidden)))
        console.print(t)
        b, a = c.before, c.after
        console.print(f"  value {_fmt(b.value if b else None)} → {_fmt(a.value)}"
                      + (f" (Δ {c.delta})" if c.delta is not None else "")
                      + (f" · {escape(a.reason)}" if a.reason else ""), highlight=False)
        parts = [f"{k} {n} (Δ {d})" for k, (n, d) in c.summary.items() if n]
        console.print(f"  records: {', '.join(parts) or 'none move'}", highlight=False)
        if c.records:
            rt = Table(box=None)
            for col in ("", "stream", "record", "before", "after", "fields"):
                rt.add_column(col)
            for r in c.records:
                mark = {"entering": "+", "leaving": "−", "changed": "~"}[r.kind]
                fields = ", ".join(f"{k}={v}" for k, v in r.fields.items())
                rt.add_row(mark, escape(r.stream), escape(r.record_id), _fmt(r.before), _fmt(r.after),
                           escape(fields[:120]))
            console.print(rt)
            if c.total_moved > len(c.records):
                console.print(f"  … and {c.total_moved - len(c.records)} more (--limit, --format json)")
        elif c.total_moved and not records:
            console.print(f"  (your role, {escape(role_name)}, may not see the records)")
        changing = [x for x in c.past if x.changes]
        console.print(f"  past values: {len(changing)} of {len(c.past)} would change", highlight=False)
        for x in changing:
            console.print(f"    #{x.value.id} as of {x.value.as_of:%Y-%m-%d %H:%M}: "
                          f"{_fmt(x.value.value)} → {_fmt(x.new.value if x.new else None)}", highlight=False)
    if p.same_values:
        console.print("Definition changed, every value the same: "
                      + ", ".join(f"{escape(c.kr_id)} ({', '.join(c.changed)})" for c in p.same_values),
                      highlight=False)
    if p.new:
        console.print(f"New key results (the next run registers them): {escape(', '.join(p.new))}")
    if p.retired:
        console.print(f"No longer in the project file (kept with history): {escape(', '.join(p.retired))}")
    if p.changes:
        console.print('To register: okrsync plan --apply --reason "…" [--restate]')


def _applied(applied: dict[str, str | None] | None, restated: int) -> None:
    if not applied:
        console.print("Nothing to apply.")
        return
    console.print(f"[green]✓[/green] registered the new definitions of {', '.join(sorted(applied))} "
                  "(audited)" + (f"; {restated} past values restated" if restated else ""))
