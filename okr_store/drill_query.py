"""What a drill asks for beyond the default page: a sort and exact-match filters, checked against the
value's streams, and turned into conditions with bound parameters only (no user text in SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metrics.evaluate import StreamView
from okrsync.errors import ConfigError
from okrsync.schema import Field, FieldType, StreamSchema

SORTS = ("contribution", "record")  # besides the fields of the value's streams


def _typed(f: Field, text: str) -> Any:
    """A filter's text as the field's stored type (what the drill's ``equals`` compares)."""
    t = f.type
    try:
        if t is FieldType.INTEGER:
            return int(text.strip())
        if t is FieldType.DECIMAL:
            d = Decimal(text.strip())
            if not d.is_finite():
                raise ValueError(text)
            return d
        if t is FieldType.FLOAT:
            return float(text)
        if t is FieldType.DATE:
            return date.fromisoformat(text.strip())
        if t is FieldType.DATETIME:
            at = datetime.fromisoformat(text.strip())
            return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
        if t is FieldType.BOOLEAN:
            return {"true": True, "false": False}[text.strip().lower()]
    except (ValueError, ArithmeticError, KeyError):
        raise ConfigError(
            f"drill filter on {f.name!r}: {text!r} is not a {t.value}",
            hint=f"write it as {FORMS[t]}",
        ) from None
    return text


FORMS = {
    FieldType.INTEGER: "a whole number, e.g. 42",
    FieldType.DECIMAL: "a decimal number, e.g. 12.50",
    FieldType.FLOAT: "a number, e.g. 0.25",
    FieldType.DATE: "YYYY-MM-DD, e.g. 2026-01-05",
    FieldType.DATETIME: "YYYY-MM-DDTHH:MM[:SS] in UTC, e.g. 2026-01-05T09:30",
    FieldType.BOOLEAN: "true or false",
    FieldType.STRING: "any text",
}


@dataclass(frozen=True)
class DrillQuery:
    """A drill request, checked against the value's streams: how to sort, what to keep."""

    sort: str
    descending: bool
    equals: dict[str, tuple[str, ...]]  # field → the texts it may equal (several: any of them, an IN)
    record_id: str | None

    @property
    def filtered(self) -> bool:
        return bool(self.equals) or self.record_id is not None

    @property
    def default_order(self) -> bool:
        return self.sort == "contribution" and self.descending


def drill_query(
    schemas: Mapping[str, StreamSchema],
    sort: str,
    descending: bool | None,
    equals: Mapping[str, str | Sequence[str]] | None,
    record_id: str | None,
) -> DrillQuery:
    """Check the sort and the filters against the fields of the value's streams.

    A field given several texts keeps the records equal to any of them (``region IN (…)``); filters on
    different fields must all hold."""
    wanted = {n: (texts,) if isinstance(texts, str) else tuple(texts) for n, texts in (equals or {}).items()}
    known = list(dict.fromkeys(n for s in schemas.values() for n in s.names))
    if sort not in (*SORTS, *known):
        raise ConfigError(
            f"cannot sort a drill by {sort!r}: it is not a field of {', '.join(schemas) or 'the value'}",
            hint=f"sort by one of: {', '.join((*SORTS, *known))}",
        )
    for name, texts in wanted.items():
        if not texts:
            raise ConfigError(f"drill filter on {name!r}: no value given")
        if name not in known:
            raise ConfigError(
                f"cannot filter a drill on {name!r}: it is not a field of "
                f"{', '.join(schemas) or 'the value'}",
                hint=f"filter on one of: {', '.join(known) or '(no fields)'}",
            )
        for s in schemas.values():
            f = s.get(name)
            if f is not None:
                for text in texts:
                    _typed(f, text)  # a text that does not convert fails here, before any query
    desc = (sort == "contribution") if descending is None else descending
    return DrillQuery(sort, desc, wanted, record_id)


def field_conditions(view: StreamView, ask: DrillQuery) -> list[sa.ColumnElement[bool]]:
    """``equals`` on the record's fields (bound parameters); a field this stream lacks matches nothing."""
    conds: list[sa.ColumnElement[bool]] = []
    for name, texts in ask.equals.items():
        f = view.schema.get(name)
        if f is None:
            conds.append(sa.false())
            continue
        values = list(dict.fromkeys(_typed(f, text) for text in texts))
        col = view.table.c[name]
        conds.append(col == values[0] if len(values) == 1 else col.in_(values))
    return conds


def id_condition(conn: sa.Connection, rid: sa.ColumnElement[Any], text: str) -> sa.ColumnElement[bool]:
    """A case-sensitive substring of the record id (SQLite's LIKE ignores case: instr there)."""
    if conn.dialect.name == "sqlite":
        return sa.func.instr(rid, text) > 0
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return rid.like(f"%{escaped}%", escape="\\")
