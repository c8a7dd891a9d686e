"""What a run did, as markdown: the Prefect artifact every run publishes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flows.run import RunSummary


def _cell(text: object) -> str:
    """Table-safe text: no pipes, no line breaks, no markup from source data."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("[", "\\[").replace("]", "\\]")


def _change(now: str | None, before: str | None) -> str:
    if now is None or before is None:
        return "—"
    try:
        delta = Decimal(now) - Decimal(before)
    except InvalidOperation:
        return "—"
    return "±0" if delta == 0 else f"{delta:+}"


def markdown(summary: RunSummary, web_url: str | None = None) -> str:
    """Every KR (value, previous value, change, status, hold) and every stream of the run."""
    def kr(kr_id: str) -> str:
        return f"[{_cell(kr_id)}]({web_url.rstrip('/')}/kr/{kr_id})" if web_url else f"`{_cell(kr_id)}`"

    lines = [
        f"# okrsync · {_cell(summary.project)} · as of {summary.as_of:%Y-%m-%d %H:%M} UTC",
        "",
        f"**{summary.status}** — {_cell(summary.headline())} · run `{summary.run_id[:8]}`",
        "",
        "| key result | value | before | change | status | held because |",
        "|---|---|---|---|---|---|",
    ]
    for kr_id in sorted(set(summary.values) | set(summary.held)):
        value = summary.values.get(kr_id)
        before = summary.previous.get(kr_id)
        held = summary.held.get(kr_id)
        shown = before if held else value
        lines.append(
            f"| {kr(kr_id)} | {_cell(shown if shown is not None else '—')} | {_cell(before or '—')} | "
            f"{'—' if held else _change(value, before)} | {_cell(summary.statuses.get(kr_id, '—'))} | "
            f"{_cell(held or '')} |"
        )
    lines += ["", "| stream | result |", "|---|---|"]
    for name, st in summary.streams.items():
        if st.get("ok"):
            calls = "" if st.get("api_calls") is None else f" · {st['api_calls']} API calls"
            text = (f"{st['rows_read']} rows pulled · {st['inserted']} new · {st['updated']} changed · "
                    f"{st['deleted']} deleted{calls}")
        else:
            text = f"failed: {st.get('error')}"
        lines.append(f"| {_cell(name)} | {_cell(text)} |")
    if web_url:
        lines += ["", f"Drill into any value from [the okrsync web app]({web_url})."]
    return "\n".join(lines) + "\n"
