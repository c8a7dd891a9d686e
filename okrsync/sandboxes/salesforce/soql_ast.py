"""The SOQL abstract syntax tree built by :mod:`.soql_parse` and interpreted by :mod:`.soql_eval`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldRef:
    path: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass
class AggCall:
    func: str
    arg: FieldRef | None
    pos: int


@dataclass
class SelectItem:
    expr: FieldRef | AggCall
    alias: str | None = None


@dataclass
class Literal:
    kind: str  # string number date datetime boolean null
    value: Any
    pos: int


@dataclass
class Compare:
    field: FieldRef
    op: str  # = != < <= > >= IN NOT IN LIKE
    value: Literal | list[Literal]
    pos: int


@dataclass
class BoolOp:
    op: str  # AND / OR
    items: list[Any]


@dataclass
class Not:
    item: Any


@dataclass
class OrderItem:
    expr: FieldRef | AggCall
    desc: bool = False
    nulls_last: bool | None = None


@dataclass
class Query:
    text: str
    select: list[SelectItem]
    sobject: str
    sobject_pos: int
    where: Any = None
    group_by: list[FieldRef] = field(default_factory=list)
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None

    @property
    def count_only(self) -> bool:
        return (
            len(self.select) == 1
            and isinstance(self.select[0].expr, AggCall)
            and self.select[0].expr.func == "COUNT"
            and self.select[0].expr.arg is None
        )

    @property
    def is_aggregate(self) -> bool:
        return bool(self.group_by) or any(isinstance(s.expr, AggCall) for s in self.select)
