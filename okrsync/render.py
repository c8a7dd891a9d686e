"""What the CLI shows: the same data as rich output for people and as JSON for scripts."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from okr_store.closing import state_json
from okr_store.queries import KrStatus, ObjectiveStatus, StoredValue
from okrsync.small_groups import is_suppressed

if TYPE_CHECKING:  # the drill's machinery (metrics.evaluate, the SQL of ranks) is not on `status`'s path
    from okr_store.lineage import Diff, Drill

STATUS_STYLE = {
    "achieved": "bold green",
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "red",
    "no_data": "dim",
    "suppressed": "dim",
}


def plain(v: Any) -> Any:
    """JSON-ready values. Decimals stay exact, as strings; times are UTC ISO 8601 with a ``Z``."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat() + "Z" if v.tzinfo is None else v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=plain, indent=2, ensure_ascii=False)


def currency_places(unit: str | None) -> int | None:
    """The decimal places of a unit that is an ISO 4217 currency code (USD 2, JPY 0, KWD 3, from
    CLDR via babel), else None."""
    if not unit or len(unit) != 3 or not (unit.isascii() and unit.isalpha() and unit.isupper()):
        return None
    from babel.numbers import get_currency_precision, is_currency

    return get_currency_precision(unit) if is_currency(unit) else None


def exact(v: Decimal | None, unit: str | None) -> Decimal | None:
    """A value as JSON carries it: exact, and money at its currency's places (``103870.260000`` and
    ``109683.0`` USD become ``103870.26`` and ``109683.00``); finer digits (an average) are kept."""
    places = currency_places(unit)
    if v is None or places is None:
        return v
    q = v.quantize(Decimal(1).scaleb(-places))
    return q if q == v else v.normalize()


def fmt_value(v: Decimal | None, unit: str | None) -> str:
    if v is None:
        return "—"
    if unit == "percent":
        return f"{v * 100:,.1f} %"
    if (places := currency_places(unit)) is not None:
        return f"{v:,.{places}f} {unit}"
    text = f"{v:,.2f}" if v != v.to_integral_value() or abs(v) >= 1000 else f"{v:,.0f}"
    return f"{text} {unit}" if unit else text


def fmt_shown(v: StoredValue, unit: str | None) -> str:
    """A stored value as a person reads it; a withheld one (okrsync.small_groups) says so."""
    return (v.reason or "suppressed") if is_suppressed(v.status) else fmt_value(v.value, unit)


def _records(v: StoredValue) -> int | None:
    """The value's record count; None when the value is withheld (a count's value is its n)."""
    return None if is_suppressed(v.status) else v.records


def fmt_pct(p: Decimal | None) -> str:
    return "—" if p is None else f"{p * 100:.0f} %"


def fmt_time(t: datetime | None) -> str:
    return "never" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"


def _bar(p: Decimal | None, width: int = 12) -> str:
    if p is None:
        return " " * width
    filled = int(round(float(p) * width))
    return "█" * filled + "░" * (width - filled)


def is_stale(kr: KrStatus, now: datetime, stale_after: timedelta) -> bool:
    return kr.fresh_at is None or now - kr.fresh_at > stale_after


# ---- status -----------------------------------------------------------------------------------
def kr_json(kr: KrStatus, now: datetime, stale_after: timedelta) -> dict[str, Any]:
    v = kr.value
    return {
        "id": kr.id,
        "title": kr.title,
        "owner": kr.owner,
        "metric": kr.metric,
        "period": kr.period,
        "unit": kr.unit,
        "direction": kr.direction,
        "weight": kr.weight,
        "value": exact(v.value, kr.unit) if v else None,
        "baseline": exact(kr.baseline, kr.unit),
        "target": exact(kr.target, kr.unit),
        "progress": v.progress if v else None,
        "progress_raw": v.progress_raw if v else None,
        "expected": v.expected if v else None,
        "status": v.status if v else "no_data",
        "reason": v.reason if v else "never computed",
        "computed_at": v.computed_at if v else None,
        "as_of": v.as_of if v else None,
        "records": _records(v) if v else 0,
        "flow_run_id": v.flow_run_id if v else None,
        "value_id": v.id if v else None,
        "held": kr.held_reason is not None,
        "held_reason": kr.held_reason,
        "held_since": kr.held_since,
        "data_fresh_at": kr.fresh_at,
        "stale": is_stale(kr, now, stale_after),
        "streams": kr.streams,
        "warnings": kr.warnings,
        "close": state_json(kr.close),
    }


def objective_json(o: ObjectiveStatus, now: datetime, stale_after: timedelta) -> dict[str, Any]:
    krs = [kr_json(k, now, stale_after) for k in o.key_results]
    subs = [objective_json(c, now, stale_after) for c in o.objectives]
    return {
        "id": o.id,
        "title": o.title,
        "owner": o.owner,
        "weight": o.weight,
        "progress": o.progress,
        "held": o.held,
        "stale": any(k["stale"] for k in krs) or any(s["stale"] for s in subs),
        "key_results": krs,
        "objectives": subs,
    }


def status_tree(
    console: Console, roots: list[ObjectiveStatus], now: datetime, stale_after: timedelta
) -> None:
    tree = Tree("[bold]Objectives and key results[/bold]")
    for o in roots:
        _add_objective(tree, objective_json(o, now, stale_after))
    console.print(tree)


def _flags(node: dict[str, Any]) -> str:
    out = ""
    if node.get("held"):
        out += " [bold yellow]⏸ held[/bold yellow]"
    if node.get("stale"):
        out += " [yellow]⚠ stale[/yellow]"
    return out


CLOSE_STYLE = {"final": "bold green", "provisional": "cyan", "restated": "bold magenta"}


def _close_flag(close: dict[str, Any]) -> str:
    """`final`, `provisional (closes on …)` or `restated after close (+1.2 %)` (okr_store.closing)."""
    if not close["label"]:
        return ""
    style = CLOSE_STYLE.get(close["state"], "")
    return f" [{style}]{escape(close['label'])}[/{style}]"


def _add_objective(parent: Tree, o: dict[str, Any]) -> None:
    # Titles, owners and reasons are user or source text: escaped, never read as rich markup.
    p = o["progress"]
    node = parent.add(
        f"[bold]{escape(o['id'])}[/bold] {escape(o['title'])}  {_bar(p)} {fmt_pct(p)}{_flags(o)}"
        + (f"  [dim]{escape(o['owner'])}[/dim]" if o["owner"] else "")
    )
    for k in o["key_results"]:
        style = STATUS_STYLE.get(k["status"], "")
        line = (
            f"[cyan]{escape(k['id'])}[/cyan] {escape(k['title'])}: "
            f"[bold]{escape(k['reason'] if is_suppressed(k['status']) else fmt_value(k['value'], k['unit']))}"
            "[/bold] "
            f"(baseline {escape(fmt_value(k['baseline'], k['unit']))} → "
            f"target {escape(fmt_value(k['target'], k['unit']))}) "
            f"{_bar(k['progress'])} {fmt_pct(k['progress'])} "
            f"[{style}]{k['status'].replace('_', ' ')}[/{style}]"
            f"{_flags(k)}{_close_flag(k['close'])}"
        )
        detail = (
            f"[dim]{escape(k['period'])} · as of {fmt_time(k['as_of'])} · "
            f"computed {fmt_time(k['computed_at'])} · data {fmt_time(k['data_fresh_at'])}"
        )
        if k["reason"] and k["value"] is None and not is_suppressed(k["status"]):
            detail += f" · {escape(k['reason'])}"
        if k["held_reason"]:
            detail += f" · held: {escape(k['held_reason'])}"
        leaf = node.add(line)
        leaf.add(detail + "[/dim]")
        for stream, warning in k["warnings"].items():
            leaf.add(f"[yellow]⚠ stream {escape(stream)}: {escape(warning)}[/yellow]")
    for c in o["objectives"]:
        _add_objective(node, c)


# ---- history ----------------------------------------------------------------------------------
def value_json(v: StoredValue, unit: str | None = None) -> dict[str, Any]:
    return {
        "value_id": v.id,
        "value": exact(v.value, unit),
        "reason": v.reason,
        "progress": v.progress,
        "progress_raw": v.progress_raw,
        "expected": v.expected,
        "status": v.status,
        "records": _records(v),
        "as_of": v.as_of,
        "computed_at": v.computed_at,
        "definition_hash": v.definition_hash,
        "snapshot": v.snapshot,
        "run_id": v.run_id,
        "flow_run_id": v.flow_run_id,
        "restated_from": v.restated_from,
    }


def history_table(console: Console, kr_id: str, values: list[StoredValue], unit: str | None) -> None:
    """Values in as-of order (a back-filled value sits at its as-of time, not at the end); the arrows
    compare each with the one before it in that order."""
    t = Table(title=f"History of {kr_id}")
    for col in ("#", "as of", "computed at", "value", "progress", "status", "records", "flow run / restated"):
        t.add_column(col)
    prev = None
    for v in values:
        shown = not is_suppressed(v.status)
        moved = ""
        if shown and prev is not None and prev != v.value:
            moved = " ▲" if (v.value or 0) > prev else " ▼"
        t.add_row(
            str(v.id),
            fmt_time(v.as_of),
            fmt_time(v.computed_at),
            fmt_shown(v, unit) + moved,
            fmt_pct(v.progress),
            v.status.replace("_", " "),
            "—" if _records(v) is None else str(v.records),
            f"restates #{v.restated_from}" if v.restated_from else (v.flow_run_id or "")[:8],
        )
        prev = v.value if shown else None  # no arrow on or just after a withheld value: it tells the way
    console.print(t)


# ---- drill ------------------------------------------------------------------------------------
def drill_json(d: Drill, links: dict[tuple[str, str], str | None]) -> dict[str, Any]:
    v = d.value
    return {
        "kr": v.kr_id,
        "value": v.value,
        "computed_at": v.computed_at,
        "as_of": v.as_of,
        "value_id": v.id,
        "metric": d.definition.name,
        "total": d.total,
        "contribution_sum": d.contribution_sum,
        "denominator_sum": d.denominator_sum,
        "snapshot": v.snapshot,
        "flow_run_id": v.flow_run_id,
        "records": [
            {
                "source": r.source,
                "stream": r.stream,
                "record_id": r.record_id,
                "contribution": r.contribution,
                "denominator_contribution": r.denominator_contribution,
                "role": r.role,
                "url": links.get((r.stream, r.record_id)),
                "fields": {k: plain(x) for k, x in r.fields.items()},
            }
            for r in d.records
        ],
    }


def drill_table(
    console: Console, d: Drill, unit: str | None, offset: int,
    links: dict[tuple[str, str], str | None] | None = None,
) -> None:
    v = d.value
    console.print(
        f"[bold]{v.kr_id}[/bold] = [bold]{fmt_value(v.value, unit)}[/bold] "
        f"(value #{v.id}, as of {fmt_time(v.as_of)}) — {d.total} contributing records, "
        f"showing {offset + 1}–{offset + len(d.records)}"
    )
    if not d.records:
        return
    t = Table()
    first = d.records[0]
    # a field that only repeats the record id takes no column
    names = [n for n in first.fields if str(plain(first.fields[n])) != first.record_id][:8]
    for col in ("record", "role", "contribution", *names):
        t.add_column(col, overflow="fold")
    links = links or {}
    for r in d.records:
        url = links.get((r.stream, r.record_id))
        record = Text(f"{r.stream}:{r.record_id}", style=f"link {url}" if url else "")
        cells = [r.role, str(r.contribution), *(str(plain(r.fields.get(n, ""))) for n in names)]
        t.add_row(record, *map(Text, cells))
    console.print(t)
    shown = [(r.record_id, url) for r in d.records if (url := links.get((r.stream, r.record_id)))]
    if shown:
        console.print("[dim]open in the source:[/dim]")
        for rid, url in shown:
            console.print(f"  {rid}  {url}", soft_wrap=True, highlight=False)
    if d.contribution_sum is not None:
        check = "numerator" if d.denominator_sum is not None else "sum"
        den = f" · denominator: {d.denominator_sum}" if d.denominator_sum is not None else ""
        console.print(f"[dim]{check} of all contributions: {d.contribution_sum}{den}[/dim]")


# ---- diff -------------------------------------------------------------------------------------
def diff_json(df: Diff, unit: str | None = None) -> dict[str, Any]:
    return {
        "kr": df.after.kr_id,
        "from": value_json(df.before, unit),
        "to": value_json(df.after, unit),
        "delta": exact(df.after.value - df.before.value, unit)
        if df.after.value is not None and df.before.value is not None
        else None,
        "definition_changed": df.definition_changed,
        "summary": {k: {"records": n, "contribution_delta": s} for k, (n, s) in df.summary.items()},
        "total_changes": df.total_changes,
        "changes": [
            {
                "kind": c.kind,
                "stream": c.stream,
                "record_id": c.record_id,
                "before": c.before,
                "after": c.after,
                "delta": c.delta,
                "reason": c.reason,
                "fields": {k: [plain(a), plain(b)] for k, (a, b) in c.field_changes.items()},
            }
            for c in df.changes
        ],
    }


def diff_text(console: Console, df: Diff, unit: str | None) -> None:
    a, b = df.before, df.after
    console.print(
        f"[bold]{b.kr_id}[/bold]: {fmt_shown(a, unit)} (#{a.id}, as of {fmt_time(a.as_of)}) → "
        f"[bold]{fmt_shown(b, unit)}[/bold] (#{b.id}, as of {fmt_time(b.as_of)})"
    )
    if df.definition_changed:
        console.print("[yellow]The metric definition changed between these values.[/yellow]")
    if df.total_changes == 0:
        console.print("No contributing record changed.")
        return
    for kind, (n, delta) in df.summary.items():
        if n:
            console.print(f"  {kind:8} {n:6} records  contribution {delta:+,}")
    t = Table()
    for col in ("change", "record", "before", "after", "why"):
        t.add_column(col, overflow="fold")
    for c in df.changes:
        cells = [
            c.kind,
            f"{c.stream}:{c.record_id}",
            "—" if c.before is None else str(c.before),
            "—" if c.after is None else str(c.after),
            c.reason,
        ]
        t.add_row(*map(Text, cells))
    console.print(t)
    if df.total_changes > len(df.changes):
        console.print(f"[dim]… {df.total_changes - len(df.changes)} more; use --limit or --json[/dim]")


# ---- checks -----------------------------------------------------------------------------------
def check_json(r: Any) -> dict[str, Any]:
    """One check result (okr_store.checks.CheckRow) as the CLI's and the API's JSON show it."""
    return {
        "id": r.id,
        "created_at": r.created_at,
        "run_id": r.run_id,
        "sync_id": r.sync_id,
        "stream": r.stream,
        "kr_id": r.kr_id,
        "check": r.label,
        "kind": r.kind,
        "spec": r.spec,
        "severity": r.severity,
        "status": r.status,
        "element_count": r.element_count,
        "unexpected_count": r.unexpected_count,
        "observed": r.observed,
        "held_krs": r.held_krs,
        "proposed_value": r.proposed_value,
        "resolved_at": r.resolved_at,
        "resolved_by": r.resolved_by,
    }
