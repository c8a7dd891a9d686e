"""Shaping GX results: failing record ids, JSON conversion, bounding, and masking sensitive values."""

from __future__ import annotations

import json
from typing import Any

RID = "_rid"
# What a result of a check on a sensitive column may keep: counts and record ids, never values.
_SAFE_RESULT_KEYS = {
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "missing_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
    "unexpected_index_column_names",
    "partial_unexpected_index_list",
}
_HIDDEN = "hidden: the column is sensitive"


def exception_of(result: Any) -> tuple[bool, str | None]:
    """Whether GX raised evaluating the expectation, and its message."""
    info = getattr(result, "exception_info", None) or {}
    candidates = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for item in candidates:
        if item.get("raised_exception"):
            return True, str(item.get("exception_message") or "error")
    return False, None


def failing_ids(body: dict[str, Any], limit: int) -> list[str]:
    """The first ``limit`` record ids of GX's index list: ``[{"_rid": [ids…]}]`` (values excluded)
    or ``[{"_rid": id}, …]``."""
    found: list[str] = []
    for item in body.get("partial_unexpected_index_list") or body.get("unexpected_index_list") or []:
        if len(found) >= limit:
            break
        if isinstance(item, dict):
            value = item.get(RID)
            if isinstance(value, list):
                found.extend(str(v) for v in value[: limit - len(found)])
            elif value is not None:
                found.append(str(value))
    return found


def plain(value: Any) -> Any:
    """A value fit for JSON: NaN/NA/NaT → None, numpy scalars → Python."""
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists and the like
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str | bytes) else value


def jsonable(value: Any) -> Any:
    """Round-trip through JSON (after GX's own conversion): plain dicts, lists, str, numbers."""

    def default(obj: Any) -> Any:
        converted = plain(obj)
        return converted if converted is not obj else str(obj)

    return json.loads(json.dumps(value, default=default))


def strip_values(raw: dict[str, Any]) -> dict[str, Any]:
    """A GX result of a check on a sensitive column, with nothing left that could hold a source value."""
    out = dict(raw)
    body = raw.get("result") or {}
    kept: dict[str, Any] = {k: v for k, v in body.items() if k in _SAFE_RESULT_KEYS}
    if "partial_unexpected_index_list" in kept:
        kept["partial_unexpected_index_list"] = [
            {RID: item[RID]}
            for item in kept["partial_unexpected_index_list"]
            if isinstance(item, dict) and isinstance(item.get(RID), str)
        ]
    if "observed_value" in body:
        kept["observed_value"] = _HIDDEN  # the renderer shows this instead of the value
    out["result"] = kept
    info = raw.get("exception_info")
    if isinstance(info, dict) and info:
        raised = bool(info.get("raised_exception")) or any(
            isinstance(v, dict) and v.get("raised_exception") for v in info.values()
        )
        out["exception_info"] = {
            "raised_exception": raised,
            "exception_traceback": None,
            "exception_message": _HIDDEN if raised else None,
        }
    out.pop("rendered_content", None)
    return out


def bound(value: Any, limit: int) -> Any:
    """At most ``limit`` items in any list, recursively."""
    if isinstance(value, list):
        return [bound(v, limit) for v in value[:limit]]
    if isinstance(value, dict):
        return {k: bound(v, limit) for k, v in value.items() if k != "rendered_content"}
    return value


def observed_value(body: dict[str, Any], sensitive: bool, raised: bool, message: str | None) -> str | None:
    if raised:
        text = " ".join((message or "").split())[:200]
        return "GX could not evaluate it" + ("" if sensitive else f": {text}")
    if "observed_value" not in body:
        return None
    if sensitive:
        return f"observed value {_HIDDEN}"
    text = json.dumps(jsonable(body["observed_value"]), ensure_ascii=False)
    return f"observed {text if len(text) <= 80 else text[:77] + '…'}"
