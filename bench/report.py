"""The results as a rich table (terminal), as Markdown (for BENCHMARKS.md) and as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.core import Results, Row


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "rows/s":
        return f"{v:,.0f} rows/s"
    if unit == "MB":
        return f"{v:,.0f} MB"
    return f"{v:g} {unit}"


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def _cells(r: Row) -> list[str]:
    return [
        r.phase,
        r.metric,
        fmt_value(r.value, r.unit),
        r.baseline or "",
        fmt_value(r.baseline_value, r.unit) if r.baseline else "",
        fmt_ratio(r.ratio),
        r.note,
    ]


HEADERS = ["phase", "measure", "okrsync", "baseline (same run)", "baseline", "cost ratio", "note"]


def print_results(res: Results, console: Console | None = None) -> None:
    # Piped output (a log file, CI) is not cut to 80 columns.
    console = console or (Console() if sys.stdout.isatty() else Console(width=170))
    meta = res.meta
    args = meta.get("args", {})
    titles = {
        "salesforce": f"okrsync benchmark · {args.get('sf_rows', 0):,} Salesforce opportunities",
        "local-tax": f"okrsync benchmark · local run tax · demo, nothing changed · {args.get('repeats')} "
        "runs each",
    }
    table = Table(
        title=titles.get(args.get("only") or "", f"okrsync benchmark · {args.get('rows', 0):,} rows · "
                         f"{args.get('krs', 0)} KRs"),
        caption="cost ratio = okrsync ÷ baseline (time, MB) or baseline ÷ okrsync (rows/s); "
        ">1: okrsync costs more",
    )
    for h in HEADERS:
        table.add_column(h, justify="right" if h in ("okrsync", "baseline", "cost ratio") else "left")
    last = None
    for r in res.rows:
        if last is not None and r.phase != last:
            table.add_section()
        last = r.phase
        table.add_row(*_cells(r))
    console.print(table)
    for phase, steps in res.breakdown.items():
        bt = Table(title=f"where the {phase} spends its time", show_header=True)
        bt.add_column("step")
        bt.add_column("seconds", justify="right")
        bt.add_column("share", justify="right")
        total = sum(steps.values()) or 1.0
        for k, v in steps.items():
            bt.add_row(k, f"{v:.3f}", f"{v / total:.0%}")
        console.print(bt)
    for c in res.checks:
        mark = "[green]✓[/green]" if c.ok else "[red]✗[/red]"
        console.print(f"{mark} {c.name}" + (f" [dim]({c.detail})[/dim]" if c.detail else ""))
    console.print(
        f"[dim]{meta.get('cpu_model')} · {meta.get('cores')} cores · {meta.get('ram_gb')} GB · "
        f"Python {meta.get('python')} · PYTHONDONTWRITEBYTECODE={meta.get('PYTHONDONTWRITEBYTECODE')} · "
        f"{meta.get('date')}[/dim]"
    )


def markdown(res: Results) -> str:
    """The results table in Markdown (pasted into BENCHMARKS.md)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in res.rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    for phase, steps in res.breakdown.items():
        total = sum(steps.values()) or 1.0
        lines += ["", f"**{phase}: where the time goes**", "", "| step | seconds | share |", "|---|---|---|"]
        lines += [f"| {k} | {v:.3f} | {v / total:.0%} |" for k, v in steps.items()]
    lines.append("")
    lines += [
        f"- {'✓' if c.ok else '✗'} {c.name}" + (f" ({c.detail})" if c.detail else "") for c in res.checks
    ]
    return "\n".join(lines) + "\n"


def write_json(res: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res.to_json(), indent=2, default=str) + "\n")
