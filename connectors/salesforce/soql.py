"""SOQL text built from checked names and quoted values only.

Field and object names are matched against the object's ``describe`` before they get here (and
against a strict pattern here); every value goes through simple-salesforce's ``quote_soql_value`` or
is a number or datetime formatted by this module. There is no way to pass SOQL text through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connectors.salesforce.options import NAME, PATH

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")  # the filter's op is the SOQL operator
MAX_LIST = 1000
MAX_TEXT = 1024


class FilterError(ValueError):
    """A ``where`` filter that cannot be compiled; the message names the part at fault."""


def literal(value: Any) -> str:
    """A SOQL literal for a filter value (strings quoted and escaped, numbers checked finite)."""
    from simple_salesforce.format import quote_soql_value  # not on import: loading a project needs none

    if isinstance(value, bool) or value is None:
        return quote_soql_value(value)
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=UTC)
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        d = Decimal(repr(value)) if isinstance(value, float) else value
        if not d.is_finite():
            raise FilterError("a filter number must be finite")
        return format(d, "f")
    if isinstance(value, str):
        return quote_soql_value(_checked_text(value))
    raise FilterError(f"cannot use a {type(value).__name__} as a filter value")


def _like(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FilterError("contains/starts_with need a text value")
    # simple-salesforce's own LIKE escaping: quotes, backslashes, % and _ of the value are literal.
    from simple_salesforce.format import format_soql

    return format_soql("'" + ("%" if where == "contains" else "") + "{:like}%'", _checked_text(value))


def _checked_text(value: str) -> str:
    if len(value) > MAX_TEXT or "\x00" in value:
        raise FilterError(f"a filter string may hold at most {MAX_TEXT} characters and no NUL")
    return value


def where_clause(node: Any, field: Callable[[str], str]) -> str:
    """Compile a filter (``{field, op, value}`` with ``and``/``or``/``not``, as in metric filters).

    ``field(name)`` checks a field name against the object's describe and returns its API name."""
    if not isinstance(node, dict):
        raise FilterError("a filter is a mapping with field/op/value, and, or or not")
    if set(node) == {"and"} or set(node) == {"or"}:
        (key, parts), = node.items()
        if not isinstance(parts, list) or not parts:
            raise FilterError(f"{key!r} takes a non-empty list of filters")
        return "(" + f" {key.upper()} ".join(where_clause(p, field) for p in parts) + ")"
    if set(node) == {"not"}:
        return f"(NOT {where_clause(node['not'], field)})"
    extra = set(node) - {"field", "op", "value"}
    if extra or "field" not in node or "op" not in node:
        raise FilterError(f"a condition has field, op and value (got {', '.join(sorted(node))})")
    name, op, value = field(str(node["field"])), node["op"], node.get("value")
    if op in COMPARISONS:
        if isinstance(value, list) or value is None:
            raise FilterError(f"op {op!r} needs a single value")
        return f"{name} {op} {literal(value)}"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise FilterError(f"op {op!r} needs a list of 1 to {MAX_LIST} values")
        return f"{name} {'IN' if op == 'in' else 'NOT IN'} ({', '.join(literal(v) for v in value)})"
    if op in ("is_null", "not_null"):
        return f"{name} {'=' if op == 'is_null' else '!='} null"
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise FilterError("op 'between' needs [low, high]")
        return f"({name} >= {literal(value[0])} AND {name} <= {literal(value[1])})"
    if op in ("contains", "starts_with"):
        return f"{name} LIKE {_like(value, op)}"
    raise FilterError(f"unknown op {op!r}")


def select(obj: str, fields: Sequence[str], conditions: Sequence[str], order: Sequence[str] = ()) -> str:
    """``SELECT fields FROM obj [WHERE a AND b] [ORDER BY …]`` from checked names and clauses."""
    if not NAME.match(obj):
        raise FilterError(f"{obj!r} is not an object API name")
    for f in (*fields, *order):
        if not PATH.match(f):
            raise FilterError(f"{f!r} is not a field API name")
    text = f"SELECT {', '.join(fields)} FROM {obj}"  # noqa: S608 - names checked above, no values
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    if order:
        text += " ORDER BY " + ", ".join(order)
    return text
