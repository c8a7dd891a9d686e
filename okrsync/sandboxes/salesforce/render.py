"""How query results look on the wire: REST JSON records (nested relationships) and Bulk 2.0 CSV cells."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from .soql_eval import QueryResult, Record, Resolved


def _utc_millis(v: datetime) -> str:
    """``2026-06-15T12:00:00.000`` in UTC."""
    if v.tzinfo is not UTC and v.utcoffset():
        v = v.astimezone(UTC)
    return v.isoformat(timespec="milliseconds")[:23]


def json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return _utc_millis(v) + "+0000"
    if isinstance(v, date):
        return v.isoformat()
    return v


def csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return _utc_millis(v) + "Z"
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def render_json(result: QueryResult, rows: list[Record], version: str) -> list[Record]:
    if result.aggregate:
        return [{k: json_value(v) for k, v in row.items()} for row in rows]
    out = []
    obj = result.odef.name
    url = f"/services/data/v{version}/sobjects/{obj}/"
    columns: list[tuple[str | None, Resolved]] = []
    for col in result.columns:
        assert col.resolved is not None
        columns.append((col.resolved.leaf.name if col.resolved.direct else None, col.resolved))
    for rec in rows:
        doc: Record = {"attributes": {"type": obj, "url": url + rec["Id"]}}
        for name, res in columns:
            if name is not None:
                doc[name] = json_value(rec.get(name))
            else:
                _put(doc, rec, res, version)
        out.append(doc)
    return out


def _put(doc: Record, rec: Record, res: Resolved, version: str) -> None:
    target: Record | None = doc
    current: Record | None = rec
    for (ref, tobj), rel_name in zip(res.hops, res.path, strict=False):
        parent_id = current.get(ref.name) if current else None
        current = res.org.tables[tobj.name].get(parent_id) if parent_id else None
        assert target is not None
        if current is None:
            target.setdefault(rel_name, None)
            return
        nested = target.get(rel_name)
        if nested is None:
            nested = {
                "attributes": {
                    "type": tobj.name,
                    "url": f"/services/data/v{version}/sobjects/{tobj.name}/{current['Id']}",
                }
            }
            target[rel_name] = nested
        target = nested
    assert target is not None and current is not None
    target[res.leaf.name] = json_value(current.get(res.leaf.name))


def csv_header(result: QueryResult) -> list[str]:
    return [".".join(c.resolved.path) if c.resolved else c.name for c in result.columns]


def csv_rows(result: QueryResult, rows: list[Record]) -> list[list[str]]:
    getters = [c.resolved.getter for c in result.columns if c.resolved]
    return [[csv_value(get(rec)) for get in getters] for rec in rows]
