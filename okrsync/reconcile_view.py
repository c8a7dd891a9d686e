"""A reconciliation check's finding as the CLI and the web app show it: both sides, their totals per
dimension value, the unmatched and mismatched keys, and drill-down links for each record (to the
record in its source where the connector knows one, and to a key result's drill-down filtered to it)."""

from __future__ import annotations

from contextlib import suppress
from typing import Any
from urllib.parse import quote

from okrsync.errors import OkrsyncError

GROUPS = ("unmatched_left", "unmatched_right", "mismatched")


def _side(project: Any, metric: str) -> dict[str, Any]:
    """The metric's stream and the first key result computed from it unpinned (for drill-down links)."""
    m = project.metrics.get(metric)
    stream = getattr(m, "stream", None)
    kr = next((b.spec.id for b in project.key_results() if b.spec.metric == metric and not b.spec.dimensions),
              None)
    return {"metric": metric, "stream": stream, "kr": kr}


def _source_links(project: Any, stream: str | None, ids: set[str]) -> dict[str, str]:
    if stream is None or stream not in project.streams or not ids:
        return {}
    spec = project.streams[stream]
    out: dict[str, str] = {}
    try:
        connector = project.connector(spec.source)
    except OkrsyncError:
        return out
    try:
        for rid in sorted(ids):
            url = connector.record_url(spec, rid)
            if url:
                out[rid] = url
    finally:
        with suppress(Exception):
            connector.close()
    return out


def detail(project: Any, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` (what :class:`metrics.reconcile.Finding` stored) with its sides described and each
    listed record given ``{"id", "url", "drill"}`` (``url``: in its source; ``drill``: the web app's
    drill-down of the side's key result, filtered to the record)."""
    sides = {s: _side(project, result[s]["metric"]) for s in ("left", "right")}
    ids: dict[str, set[str]] = {"left": set(), "right": set()}
    for group in GROUPS:
        for p in result.get(group, []):
            ids["left"] |= set(p["left_records"])
            ids["right"] |= set(p["right_records"])
    links = {s: _source_links(project, sides[s]["stream"], ids[s]) for s in ids}

    def record(side: str, rid: str) -> dict[str, Any]:
        kr = sides[side]["kr"]
        drill = f"/kr/{quote(kr, safe='')}?record={quote(rid, safe='')}" if kr else None
        return {"id": rid, "url": links[side].get(rid), "drill": drill}

    out = {**result, "sides": sides}
    for group in GROUPS:
        if group in result:
            out[group] = [{**p, "left_records": [record("left", r) for r in p["left_records"]],
                           "right_records": [record("right", r) for r in p["right_records"]]}
                          for p in result[group]]
    return out


def subject(r: Any) -> str:
    """What a check is on, in a few words: ``stream orders``, ``KR KR-REV``, ``won ↔ booked``."""
    if r.kind == "reconcile":
        kw = r.spec.get("kwargs", {})
        return f"{kw.get('left')} ↔ {kw.get('right')}"
    return f"stream {r.stream}" if r.stream else f"KR {r.kr_id}"
