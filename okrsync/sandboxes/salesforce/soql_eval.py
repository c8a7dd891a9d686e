"""Resolve a parsed SOQL query against the org's schema and run it (filter, sort, aggregate, project)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .model import Org
from .schema import NUMBER_TYPES, STRING_TYPES, FieldDef, ObjectDef
from .soql_ast import AggCall, BoolOp, Compare, FieldRef, Literal, Not, Query
from .soql_parse import parse, soql_error

Record = dict[str, Any]
_LITERAL_FOR_TYPE = {"date": "date", "datetime": "datetime", "boolean": "boolean"}
_TYPE_NAMES = {
    "currency": "double",
    "percent": "double",
    "double": "double",
    "int": "int",
    "date": "date",
    "datetime": "dateTime",
    "boolean": "boolean",
}


@dataclass
class Resolved:
    """A field path resolved through relationships: ``hops`` are reference fields, then the leaf field."""

    path: tuple[str, ...]  # canonical names, relationship names for hops
    hops: list[tuple[FieldDef, ObjectDef]]  # (reference field, target object)
    leaf: FieldDef
    org: Org

    @property
    def direct(self) -> bool:
        """A field of the queried object itself (no relationship hops)."""
        return not self.hops

    @property
    def getter(self) -> Callable[[Record], Any]:
        """:meth:`get` for rows of the queried object, as fast as it can be (for sorting and rendering)."""
        if not self.hops:
            return operator.methodcaller("get", self.leaf.name)
        return self.get

    def get(self, rec: Record | None) -> Any:
        if not self.hops:
            return None if rec is None else rec.get(self.leaf.name)
        for ref, target in self.hops:
            if rec is None:
                return None
            parent_id = rec.get(ref.name)
            rec = self.org.tables[target.name].get(parent_id) if parent_id else None
        return None if rec is None else rec.get(self.leaf.name)


def resolve(org: Org, odef: ObjectDef, ref: FieldRef, query: str) -> Resolved:
    path = list(ref.path)
    if len(path) > 1 and path[0].lower() == odef.name.lower() and path[0].lower() not in odef.relationships:
        path = path[1:]
    hops: list[tuple[FieldDef, ObjectDef]] = []
    canonical: list[str] = []
    current = odef
    for seg in path[:-1]:
        rel = current.relationships.get(seg.lower())
        if rel is None:
            raise soql_error(
                query,
                ref.pos,
                f"Didn't understand relationship '{seg}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the appropriate "
                "names.",
                "INVALID_FIELD",
            )
        target = org.schema[rel.reference_to[0]]
        hops.append((rel, target))
        canonical.append(rel.relationship_name or "")
        current = target
    leaf = current.by_lower.get(path[-1].lower())
    if leaf is None:
        raise soql_error(
            query,
            ref.pos,
            f"No such column '{path[-1]}' on entity '{current.name}'. If you are "
            "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
            "Please reference your WSDL or the describe call for the appropriate names.",
            "INVALID_FIELD",
        )
    canonical.append(leaf.name)
    return Resolved(tuple(canonical), hops, leaf, org)


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _like_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


class Compiler:
    def __init__(self, org: Org, odef: ObjectDef, q: Query) -> None:
        self.org, self.odef, self.q = org, odef, q

    def field(self, ref: FieldRef) -> Resolved:
        return resolve(self.org, self.odef, ref, self.q.text)

    def predicate(self, node: Any) -> Callable[[Record], bool]:
        if isinstance(node, BoolOp):
            parts = [self.predicate(p) for p in node.items]
            if node.op == "AND":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        if isinstance(node, Not):
            inner = self.predicate(node.item)
            return lambda r: not inner(r)
        assert isinstance(node, Compare)
        return self._compare(node)

    def _check_literal(self, fld: Resolved, lit: Literal, op: str) -> Any:
        ftype = fld.leaf.type
        if lit.kind == "null":
            if op not in ("=", "!=", "IN", "NOT IN"):
                raise soql_error(
                    self.q.text,
                    lit.pos,
                    f"invalid operator on null value: {op}",
                    "INVALID_QUERY_FILTER_OPERATOR",
                )
            return None
        expected = (
            "string"
            if ftype in STRING_TYPES
            else "number"
            if ftype in NUMBER_TYPES
            else _LITERAL_FOR_TYPE[ftype]
        )
        ok = lit.kind == expected or (expected == "datetime" and lit.kind == "date" and False)
        if not ok:
            if expected == "string":
                msg = (
                    f"value of filter criterion for field '{fld.leaf.name}' must be of type string "
                    "and should be enclosed in quotes"
                )
            else:
                msg = (
                    f"value of filter criterion for field '{fld.leaf.name}' must be of type "
                    f"{_TYPE_NAMES[ftype]} and should not be enclosed in quotes"
                )
            raise soql_error(self.q.text, lit.pos, msg, "INVALID_QUERY_FILTER_OPERATOR")
        if (
            ftype in ("id", "reference")
            and isinstance(lit.value, str)
            and len(lit.value) not in (15, 18)
            and op not in ("LIKE",)
        ):
            raise soql_error(
                self.q.text, lit.pos, f"invalid ID field: {lit.value}", "INVALID_QUERY_FILTER_OPERATOR"
            )
        return lit.value

    def _compare(self, node: Compare) -> Callable[[Record], bool]:
        fld = self.field(node.field)
        get, op = fld.get, node.op
        is_id = fld.leaf.type in ("id", "reference")

        def norm(v: Any) -> Any:
            if is_id and isinstance(v, str):
                return v[:15]
            return _fold(v)

        if op in ("IN", "NOT IN"):
            assert isinstance(node.value, list)
            values = {norm(self._check_literal(fld, lit, op)) for lit in node.value}
            if op == "IN":
                return lambda r: norm(get(r)) in values
            return lambda r: norm(get(r)) not in values
        assert isinstance(node.value, Literal)
        if op == "LIKE":
            if fld.leaf.type not in STRING_TYPES or node.value.kind != "string":
                raise soql_error(
                    self.q.text,
                    node.pos,
                    f"invalid operator on field: {fld.leaf.name}",
                    "INVALID_QUERY_FILTER_OPERATOR",
                )
            rx = _like_regex(node.value.value)
            return lambda r: (v := get(r)) is not None and rx.fullmatch(str(v)) is not None
        lit = norm(self._check_literal(fld, node.value, op))
        if op == "=":
            return lambda r: norm(get(r)) == lit
        if op == "!=":
            return lambda r: norm(get(r)) != lit
        if fld.leaf.type == "boolean":
            raise soql_error(
                self.q.text,
                node.pos,
                f"invalid operator on field: {fld.leaf.name}",
                "INVALID_QUERY_FILTER_OPERATOR",
            )
        cmp: Callable[[Any, Any], bool] = {
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }[op]
        return lambda r: (v := norm(get(r))) is not None and cmp(v, lit)


SortKey = tuple[Callable[..., Any], bool, bool | None]


def sort_rows(rows: list[Any], keys: list[SortKey]) -> list[Any]:
    """Stable multi-key sort; ascending puts nulls first, descending puts them last (unless NULLS given).
    Text sorts case-insensitively."""
    out = list(rows)
    for getter, desc, nulls_last in reversed(keys):
        last = desc if nulls_last is None else nulls_last
        # each key computed once; sort row positions (no per-row tuples: they would wake the GC)
        values = [_fold(getter(r)) for r in out]
        present = [i for i, v in enumerate(values) if v is not None]
        present.sort(key=values.__getitem__, reverse=desc)
        ordered = [out[i] for i in present]
        if len(present) == len(out):
            out = ordered
            continue
        nulls = [r for r, v in zip(out, values, strict=True) if v is None]
        out = ordered + nulls if last else nulls + ordered
    return out


def _sort_getter(fld: Resolved) -> Callable[[Record], Any]:
    """Ids sort case-sensitively on their 15-character form, consistent with ``Id > '...'`` filters (as
    bytes, which the case-folding of text leaves alone)."""
    getter = fld.getter
    if fld.leaf.type not in ("id", "reference"):
        return getter

    def get(rec: Record) -> Any:
        v = getter(rec)
        return v[:15].encode() if v is not None else None

    return get


@dataclass
class Column:
    """One selected column: a resolved field, or an aggregate with its output name."""

    name: str
    resolved: Resolved | None = None
    agg: AggCall | None = None


@dataclass
class QueryResult:
    query: Query
    odef: ObjectDef
    columns: list[Column]
    rows: list[Record]  # source records (plain queries) or finished output dicts (aggregates)
    total_size: int
    aggregate: bool


def _aggregate(func: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if func == "COUNT":
        return len(present)
    if func == "COUNT_DISTINCT":
        return len({_fold(v) for v in present})
    if not present:
        return None
    if func == "SUM":
        return math.fsum(present)
    if func == "AVG":
        return math.fsum(present) / len(present)
    return min(present, key=_fold) if func == "MIN" else max(present, key=_fold)


def execute(
    org: Org, soql: str, include_deleted: bool = False, validate_only: bool = False
) -> QueryResult:
    """Run ``soql``; with ``validate_only`` only check it (and return no rows)."""
    q = parse(soql)
    try:
        odef = org.object_def(q.sobject)
    except ApiError:
        raise soql_error(
            soql,
            q.sobject_pos,
            f"sObject type '{q.sobject}' is not supported. If you are attempting "
            "to use a custom object, be sure to append the '__c' after the entity name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
            "INVALID_TYPE",
        ) from None
    comp = Compiler(org, odef, q)
    pred = comp.predicate(q.where) if q.where is not None else None
    columns: list[Column] = []
    expr_n = 0
    seen: set[str] = set()
    for item in q.select:
        if isinstance(item.expr, AggCall):
            resolved = comp.field(item.expr.arg) if item.expr.arg else None
            name = item.alias or f"expr{expr_n}"
            expr_n += 0 if item.alias else 1  # only unaliased aggregates are numbered
            if resolved and item.expr.func in ("SUM", "AVG") and resolved.leaf.type not in NUMBER_TYPES:
                raise soql_error(
                    soql,
                    item.expr.pos,
                    f"field {resolved.leaf.name} does not support aggregate operator {item.expr.func}",
                )
            columns.append(Column(name, resolved, item.expr))
        else:
            resolved = comp.field(item.expr)
            key = ".".join(resolved.path).lower()
            if key in seen:
                raise soql_error(soql, item.expr.pos, f"duplicate field selected: {'.'.join(resolved.path)}")
            seen.add(key)
            columns.append(Column(item.alias or resolved.path[-1], resolved))
    keys: list[SortKey] = []
    if not q.is_aggregate:
        for o in q.order_by:
            if isinstance(o.expr, AggCall):
                raise soql_error(soql, o.expr.pos, "Ordered field must be grouped or aggregated")
            keys.append((_sort_getter(comp.field(o.expr)), o.desc, o.nulls_last))
    if validate_only:
        if q.is_aggregate:
            _run_aggregate(org, q, odef, comp, columns, [])
        return QueryResult(q, odef, columns, [], 0, aggregate=q.is_aggregate)
    with org.lock:
        source = org.records(odef.name, include_deleted=include_deleted)
        matched = [r for r in source if pred(r)] if pred else source
        if q.is_aggregate:
            return _run_aggregate(org, q, odef, comp, columns, matched)
        if keys:
            matched = sort_rows(matched, keys)
    start = q.offset or 0
    end = None if q.limit is None else start + q.limit
    matched = matched[start:end]
    return QueryResult(q, odef, columns, matched, len(matched), aggregate=False)


def _run_aggregate(
    org: Org, q: Query, odef: ObjectDef, comp: Compiler, columns: list[Column], matched: list[Record]
) -> QueryResult:
    if q.count_only:
        n = len(matched[q.offset or 0 :])
        n = n if q.limit is None else min(n, q.limit)
        return QueryResult(q, odef, columns, [], n, aggregate=True)
    groups_by = [comp.field(g) for g in q.group_by]
    group_keys = {".".join(g.path).lower() for g in groups_by}
    for col in columns:
        if col.agg is None and col.resolved and ".".join(col.resolved.path).lower() not in group_keys:
            raise soql_error(
                q.text,
                q.select[columns.index(col)].expr.pos,
                f"Field must be grouped or aggregated: {col.resolved.leaf.name}",
            )
    buckets: dict[tuple[Any, ...], list[Record]] = {}
    for rec in matched:
        buckets.setdefault(tuple(_fold(g.get(rec)) for g in groups_by), []).append(rec)
    if not groups_by:
        buckets = {(): matched}
    out: list[Record] = []
    for members in buckets.values():
        row: Record = {"attributes": {"type": "AggregateResult"}}
        for col in columns:
            if col.agg is not None:
                vals = [col.resolved.get(r) for r in members] if col.resolved else [1] * len(members)
                row[col.name] = _aggregate(col.agg.func, vals)
            elif col.resolved is not None:
                row[col.name] = col.resolved.get(members[0])
        out.append(row)
    if q.order_by:
        keys: list[SortKey] = []
        for o in q.order_by:
            name = _aggregate_column_name(q, columns, o.expr)
            keys.append(((lambda r, n=name: r.get(n)), o.desc, o.nulls_last))
        out = sort_rows(out, keys)
    start = q.offset or 0
    out = out[start : None if q.limit is None else start + q.limit]
    return QueryResult(q, odef, columns, out, len(out), aggregate=True)


def _aggregate_column_name(q: Query, columns: list[Column], expr: FieldRef | AggCall) -> str:
    for item, col in zip(q.select, columns, strict=True):
        same = (
            isinstance(expr, AggCall)
            and isinstance(item.expr, AggCall)
            and expr.func == item.expr.func
            and (expr.arg.text.lower() if expr.arg else None)
            == (item.expr.arg.text.lower() if item.expr.arg else None)
        )
        if same or (
            isinstance(expr, FieldRef)
            and col.agg is None
            and col.resolved is not None
            and (expr.text.lower() in (".".join(col.resolved.path).lower(), col.name.lower()))
        ):
            return col.name
    raise soql_error(q.text, expr.pos, "Ordered field must be grouped or aggregated")
