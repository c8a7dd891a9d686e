"""``okrsync kr``: bind key results to the project's metrics without editing the project file.

``add`` and ``preview`` take the same options: ``preview`` shows the value now, the records
contributing most and the history back-filled as of every past run, ``add`` saves (audited). ``list``,
``edit``, ``retire`` and ``export`` manage what is bound. The CLI's role (``OKRSYNC_ROLE`` or
``settings.role``) needs ``bind: true`` to change bindings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from okrsync.cli.context import console, now, open_project, open_store
from okrsync.errors import ConfigError

kr_app = typer.Typer(
    help="Bind key results to the project's metrics (stored, audited; see docs/binding.md).",
    no_args_is_help=True,
)

Id = Annotated[str, typer.Argument(help="The key result's id (never one the project file defines).")]
Objective = Annotated[str | None, typer.Option(help="The objective it belongs to (id).")]
Metric = Annotated[str | None, typer.Option(help="A metric of the project file.")]
Pin = Annotated[list[str] | None, typer.Option("--pin", help="DIMENSION=VALUE (repeat for several).")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _pins(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(
                f"cannot read the pin {item!r}: expected DIMENSION=VALUE", hint="e.g. --pin region=EMEA"
            )
        out[name] = value
    return out


def _request(
    kr_id: str,
    objective: str | None,
    metric: str | None,
    title: str | None,
    target: str | None,
    baseline: str | None,
    direction: str | None,
    period: str | None,
    owner: str | None,
    pins: list[str] | None,
    new_objective: str | None,
    parent: str | None,
    reason: str,
) -> Any:
    from okrsync.binding import NewObjective, Request

    spec: dict[str, Any] = {
        "title": title,
        "metric": metric,
        "target": target,
        "baseline": baseline,
        "direction": direction,
        "period": period,
        "owner": owner,
    }
    if pins:
        spec["dimensions"] = _pins(pins)
    new = None
    if new_objective is not None:
        if parent is None or objective is None:
            raise ConfigError(
                "--new-objective TITLE needs --objective ID (the new objective's id) and --parent",
                hint="e.g. --objective O-EMEA-OPS --new-objective 'Run EMEA well' --parent O1",
            )
        new = NewObjective(objective, new_objective, parent)
    return Request(kr_id, objective or "", {k: v for k, v in spec.items() if v is not None}, new, reason)


def _role(project: Any, *, change: bool) -> Any:
    from okrsync.binding import require_bind

    name, role = project.role()
    if change:
        require_bind(name, role)
    return role


Title = Annotated[str | None, typer.Option(help="What the key result says.")]
Target = Annotated[str | None, typer.Option(help="The target (a number, or 12%).")]
Baseline = Annotated[
    str | None, typer.Option(help="The baseline, or `start`: the value at the period start.")
]
Direction = Annotated[str | None, typer.Option(help="increase | decrease.")]
Period = Annotated[str | None, typer.Option(help="e.g. 2026-Q4 (default: settings.default_period).")]
Owner = Annotated[str | None, typer.Option(help="Who owns it.")]
NewObj = Annotated[str | None, typer.Option("--new-objective", help="Create --objective with this title.")]
Parent = Annotated[str | None, typer.Option(help="The new objective's parent (with --new-objective).")]
Reason = Annotated[str, typer.Option(help="Why (kept in the audit log).")]


def _resolved(project: Any, store: Any, req: Any) -> Any:
    """``--baseline start``: the value at the period start, from the store as of that time."""
    from okrsync.binding import resolve_start

    out = resolve_start(project, store, req)
    if out is not req:
        console.print(f"baseline: {out.spec['baseline']} (the value at the period start)")
    return out


def preview(
    ctx: typer.Context,
    kr_id: Id,
    objective: Objective = None,
    metric: Metric = None,
    title: Title = None,
    target: Target = None,
    baseline: Baseline = None,
    direction: Direction = None,
    period: Period = None,
    owner: Owner = None,
    pin: Pin = None,
    new_objective: NewObj = None,
    parent: Parent = None,
    top: Annotated[int, typer.Option(min=0, max=100)] = 10,
    json_out: Json = False,
) -> None:
    """What a key result would show before you save it: value, progress, status, top records and its
    whole history back-filled as of every past run (with the expected pace)."""
    from okrsync import binding
    from okrsync.render import dumps

    project = open_project(ctx)
    role = _role(project, change=False)
    store = open_store(ctx, project)
    try:
        req = _resolved(
            project,
            store,
            _request(
                kr_id,
                objective,
                metric,
                title or kr_id,
                target,
                baseline,
                direction,
                period,
                owner,
                pin,
                new_objective,
                parent,
                "",
            ),
        )
        out = binding.preview(project, store, req, role, now=now(), top=top)
    finally:
        store.close()
    if json_out:
        console.print_json(dumps(out))
        return
    console.print(
        f"[bold]{escape(kr_id)}[/bold]: {out['value']} ({out['status']}) · progress "
        f"{out['progress']} · expected {out['expected']} · {out['records']} records"
    )
    if out["top_records"]:
        t = Table(title="Top contributing records")
        for col in ("record", "contribution", "fields"):
            t.add_column(col)
        for r in out["top_records"]:
            t.add_row(
                escape(r["record_id"]),
                str(r["contribution"]),
                escape(", ".join(f"{k}={v}" for k, v in r["fields"].items())),
            )
        console.print(t)
    h = Table(title=f"History back-filled as of {len(out['history'])} past runs")
    for col in ("as of", "value", "pace", "status"):
        h.add_column(col)
    for p in out["history"]:
        h.add_row(f"{p['as_of']:%Y-%m-%d %H:%M}", str(p["value"]), str(p["pace_value"]), p["status"])
    console.print(h)


def add(
    ctx: typer.Context,
    kr_id: Id,
    objective: Objective = None,
    metric: Metric = None,
    title: Title = None,
    target: Target = None,
    baseline: Baseline = None,
    direction: Direction = None,
    period: Period = None,
    owner: Owner = None,
    pin: Pin = None,
    new_objective: NewObj = None,
    parent: Parent = None,
    reason: Reason = "",
) -> None:
    """Bind a key result to a metric of the project (stored and audited; runs compute it from now on)."""
    from okrsync import binding
    from okrsync.accounts import Actor

    project = open_project(ctx)
    _role(project, change=True)
    store = open_store(ctx, project)
    try:
        req = _resolved(
            project,
            store,
            _request(
                kr_id,
                objective,
                metric,
                title or kr_id,
                target,
                baseline,
                direction,
                period,
                owner,
                pin,
                new_objective,
                parent,
                reason,
            ),
        )
        b = binding.save(project, store, req, Actor.cli().name)
    finally:
        store.close()
    console.print(
        f"bound {escape(b.id)} under {escape(b.objective_id)} (version {b.version}); "
        "`okrsync run` computes it with the others"
    )


def edit(
    ctx: typer.Context,
    kr_id: Id,
    objective: Objective = None,
    metric: Metric = None,
    title: Title = None,
    target: Target = None,
    baseline: Baseline = None,
    direction: Direction = None,
    period: Period = None,
    owner: Owner = None,
    pin: Pin = None,
    reason: Reason = "",
) -> None:
    """Change a bound key result (a new version; before and after go to the audit log)."""
    from okrsync import binding
    from okrsync.accounts import Actor

    project = open_project(ctx)
    _role(project, change=True)
    store = open_store(ctx, project)
    try:
        req = _request(
            kr_id,
            objective,
            metric,
            title,
            target,
            baseline,
            direction,
            period,
            owner,
            pin,
            None,
            None,
            reason,
        )
        b = binding.edit(project, store, req, Actor.cli().name)
    finally:
        store.close()
    console.print(f"{escape(b.id)} is now version {b.version}")


def retire(ctx: typer.Context, kr_id: Id, reason: Reason = "") -> None:
    """Stop computing a bound key result; its values, drill-down and versions are kept."""
    from okrsync import binding
    from okrsync.accounts import Actor

    project = open_project(ctx)
    _role(project, change=True)
    store = open_store(ctx, project)
    try:
        b = binding.retire(project, store, kr_id, Actor.cli().name, reason)
    finally:
        store.close()
    console.print(f"retired {escape(b.id)} (version {b.version}); its history stays")


def list_(ctx: typer.Context, json_out: Json = False) -> None:
    """Every bound key result (retired ones too) with its version and who changed it last."""
    from okr_store import bindings
    from okrsync.render import dumps

    project = open_project(ctx)
    store = open_store(ctx, project, read_only=True)
    try:
        with store.engine.connect() as conn:
            found = bindings.listed(conn)
    finally:
        store.close()
    rows = [
        {
            "id": b.id,
            "objective": b.objective_id,
            "status": b.status,
            "version": b.version,
            "updated_by": b.updated_by,
            "updated_at": b.updated_at,
            **b.spec,
        }
        for b in found
    ]
    if json_out:
        console.print_json(dumps({"bindings": rows}))
        return
    t = Table(title="Bound key results")
    for col in ("id", "objective", "metric", "pins", "target", "status", "v", "last change"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            escape(r["id"]),
            escape(r["objective"]),
            escape(r["metric"]),
            escape(", ".join(f"{k}={v}" for k, v in r.get("dimensions", {}).items())),
            str(r["target"]),
            r["status"],
            str(r["version"]),
            escape(f"{r['updated_by']} {r['updated_at']:%Y-%m-%d %H:%M}"),
        )
    console.print(t if rows else "No bound key results yet (`okrsync kr add`).")


def export(ctx: typer.Context) -> None:
    """The active bindings as YAML in the project file's format."""
    from okrsync.binding import export_yaml

    project = open_project(ctx)
    store = open_store(ctx, project, read_only=True)
    try:
        typer.echo(export_yaml(project, store), nl=False)
    finally:
        store.close()


for _command, _name in (
    (add, "add"),
    (preview, "preview"),
    (list_, "list"),
    (edit, "edit"),
    (retire, "retire"),
    (export, "export"),
):
    kr_app.command(_name)(_command)
