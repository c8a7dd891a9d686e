"""Column types of the store, including exact decimals that stay exact on SQLite."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from okrsync.schema import Field, FieldType


class ExactDecimal(TypeDecorator[Decimal]):
    """A fixed-scale decimal. PostgreSQL: NUMERIC(38, scale). SQLite, whose NUMERIC is a binary float,
    keeps the value as an integer count of 10^-scale units, so SUM stays exact there too."""

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(38, self.scale))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        d = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else value)
        )
        if dialect.name != "sqlite":
            return d
        scaled = d.scaleb(self.scale)
        # Stored values are quantised to the scale (an int); a filter bound like 100.005 on a 2-place
        # column stays fractional so the comparison is still right.
        return int(scaled) if scaled == scaled.to_integral_value() else scaled

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name != "sqlite":
            return value if isinstance(value, Decimal) else Decimal(str(value))
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return d.scaleb(-self.scale)


def column_type(field: Field) -> TypeEngine[Any]:
    """The store column type for a source field."""
    t = field.type
    if t is FieldType.INTEGER:
        return sa.BigInteger()
    if t is FieldType.DECIMAL:
        return ExactDecimal(field.scale if field.scale is not None else 6)
    if t is FieldType.FLOAT:
        return sa.Float(53)
    if t is FieldType.DATE:
        return sa.Date()
    if t is FieldType.DATETIME:
        return sa.DateTime()
    if t is FieldType.BOOLEAN:
        return sa.Boolean()
    return sa.Text()
