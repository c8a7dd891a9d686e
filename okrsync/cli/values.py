"""``okrsync history``, ``drill`` and ``diff``: a key result's values and the records behind them.

Registered on the main app by :mod:`okrsync.cli`; like the rest of the CLI, they import the store and
render modules only when they run (and never prefect or great_expectations).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.markup import escape

from okrsync.cli.context import JsonOpt, console, open_project, open_store, parse_time
from okrsync.errors import ConfigError, OkrsyncError


def _unit(project: Any, kr_id: str) -> str | None:
    try:
        b = project.key_result(kr_id)
    except OkrsyncError:
        return None
    return b.spec.unit or project.metrics[b.spec.metric].unit


def history(ctx: typer.Context, kr_id: str, json_out: JsonOpt = False) -> None:
    """Every computed value of a key result, in as-of order (back-filled values at their as-of time),
    with the closings of its period and the restatements after them."""
    from okr_store import closing
    from okr_store.checks import decisions_for_kr
    from okr_store.queries import history as load
    from okrsync import render
    from okrsync.small_groups import small_groups

    project = open_project(ctx)
    with open_store(ctx, project, read_only=True).engine.connect() as conn:
        values = small_groups(project, project.role()[1]).values(load(conn, kr_id))
        decisions = decisions_for_kr(conn, kr_id)
        closes = closing.closes(conn, kr_id)
        # A restatement tells how far a value moved: not for a value withheld from this role.
        withheld = any(render.is_suppressed(v.status) for v in values)
        restated = [] if withheld else closing.restatements(conn, kr_id)
    if json_out:
        console.print_json(
            render.dumps(
                {"kr": kr_id, "values": [render.value_json(v, _unit(project, kr_id)) for v in values],
                 "decisions": decisions,
                 "closes": [closing.close_json(c) | ({"value": None} if withheld else {}) for c in closes],
                 "restatements": [closing.restatement_json(r, changes=False) for r in restated]}
            )
        )
        return
    render.history_table(console, kr_id, values, _unit(project, kr_id))
    for d in decisions:
        console.print(
            f"  {render.fmt_time(d['at'])} {escape(d['actor'])} {d['action']}ed check "
            f"#{d['check_id']} {escape(d['check'])}: {escape(d['reason'])}",
            highlight=False,
        )
    for c in closes:
        shown = "" if withheld else f" at {c.value} (value #{c.value_id})"
        console.print(f"  {render.fmt_time(c.closed_at)} period {escape(c.period_label)} closed{shown}, "
                      f"final as of {render.fmt_time(c.as_of)}", highlight=False)
        if c.reopened_at:
            console.print(f"  {render.fmt_time(c.reopened_at)} {escape(c.reopened_by or '')} reopened it: "
                          f"{escape(c.reopen_reason or '')}", highlight=False)
    for r in reversed(restated):
        state = f"acknowledged by {escape(r.acknowledged_by or '')}" if r.acknowledged_at else "pending"
        console.print(f"  restatement #{r.id} as of {render.fmt_time(r.as_of)}: {r.closed_value} → "
                      f"{r.value} ({r.change_text()}, {r.total_changes} records; {state}): "
                      f"okrsync restatements show {r.id}", highlight=False)


def drill(
    ctx: typer.Context,
    kr_id: str,
    at: Annotated[str | None, typer.Option(help="The value as of this time (default: current).")] = None,
    value_id: Annotated[int | None, typer.Option("--value", help="A value id from `history`.")] = None,
    limit: Annotated[str | None, typer.Option(
        metavar="N|all", help="How many records (table: 50 by default; csv and json: all of them).")] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    sort: Annotated[str, typer.Option(help="contribution | record | a field of the stream")] = "contribution",
    desc: Annotated[bool | None, typer.Option("--desc/--asc", help="Sort direction (default: "
                                              "contribution descending, others ascending).")] = None,
    where: Annotated[list[str] | None, typer.Option(
        help="FIELD=VALUE, exact match; repeatable: one field given twice keeps either value, "
             "different fields must all match.")] = None,
    record_id: Annotated[str | None, typer.Option(help="Record ids containing this text.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    sums: Annotated[bool, typer.Option(help="Also add up all contributions (a full scan).")] = True,
) -> None:
    """The source records behind a key result value, each with its contribution."""
    from okr_store import lineage, queries
    from okrsync import access, render

    if fmt not in ("table", "csv", "json"):
        raise ConfigError("--format takes table, csv or json")
    count = _limit(limit, fmt)
    bad = [w for w in where or [] if "=" not in w]
    if bad:
        raise ConfigError(f"--where {bad[0]!r}: expected FIELD=VALUE", hint="e.g. --where region=EMEA")
    equals = access.where_filters(where or [])
    project = open_project(ctx)
    store = open_store(ctx, project, read_only=True)
    with store.engine.connect() as conn:
        v = (
            queries.value_by_id(conn, value_id)
            if value_id
            else queries.value_at(conn, kr_id, parse_time(at, project.settings.timezone))
        )
    if v.kr_id != kr_id:
        raise ConfigError(f"value #{v.id} belongs to {v.kr_id}, not {kr_id}")
    role = access.records_role(project)
    equals = access.drill_filters(project, project.role()[0], role, equals, sort)
    ask: dict[str, Any] = {"sort": sort, "descending": desc, "equals": equals, "record_id": record_id}
    if fmt == "table":
        page = lineage.drill(store, v, limit=count or 50, offset=offset, sums=sums, **ask)
        d = access.drill_as(project, role, page)
        render.drill_table(console, d, _unit(project, kr_id), offset, access.record_links(project, d))
        return
    from okrsync import drill_export

    # The header (count, sums, columns) from an empty page; then every record, a page at a time.
    head = lineage.drill(store, v, limit=1, offset=0, sums=sums and fmt == "json", **ask)
    with access.RecordLinks(project) as links:  # each source's connector made once for every page
        pages = drill_export.as_seen(head, lineage.drill_pages(store, v, limit=count, offset=offset, **ask),
                                     lambda d: access.drill_as(project, role, d), links)
        write = drill_export.write_json if fmt == "json" else drill_export.write_csv
        write(sys.stdout, replace(head, records=[]), pages)


def _limit(text: str | None, fmt: str) -> int | None:
    """``--limit``: a positive number, or ``all`` (None: every record; csv and json by default)."""
    if text is None or (text == "all" and fmt != "table"):
        return None
    if text == "all":
        raise ConfigError("--limit all needs --format csv or json: the table shows one page",
                          hint="e.g. okrsync drill KR --format csv --limit all > records.csv")
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--limit {text!r}: expected a positive whole number or all")
    return int(text)


def diff(
    ctx: typer.Context,
    kr_id: str,
    from_: Annotated[str | None, typer.Option("--from", help="As-of time of the earlier value.")] = None,
    to: Annotated[str | None, typer.Option(help="As-of time of the later value (default: current).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Why a key result moved: records added, removed or changed between two of its values.

    Without --from, compares with the latest value before it in as-of order that differs (else the
    previous one by as-of).
    """
    from okr_store import lineage, queries
    from okrsync import access, render
    from okrsync.small_groups import small_groups

    project = open_project(ctx)
    tz = project.settings.timezone
    store = open_store(ctx, project, read_only=True)
    with store.engine.connect() as conn:
        after = queries.value_at(conn, kr_id, parse_time(to, tz))
        if from_ is not None:
            before = queries.value_at(conn, kr_id, parse_time(from_, tz))
        else:
            found = queries.compared_with(queries.history(conn, kr_id), after)
            if found is None:
                raise ConfigError(f"{kr_id} has only one value so far", hint="run `okrsync run` again later")
            before = found
    role = access.records_role(project)
    result = access.diff_as(project, role, lineage.diff(store, before, after, limit=limit))
    seen = small_groups(project, role)  # the two values as the role sees them (and so the delta)
    result = replace(result, before=seen.value(before), after=seen.value(after))
    if json_out:
        console.print_json(render.dumps(render.diff_json(result, _unit(project, kr_id))))
    else:
        render.diff_text(console, result, _unit(project, kr_id))


