"""Field types shared by connectors (which report them), the store (which keeps them) and metrics
(which check filters against them). A deliberately small vocabulary: every source maps onto it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"  # exact (money): kept exact end to end, never float
    FLOAT = "float"
    STRING = "string"
    DATE = "date"
    DATETIME = "datetime"  # stored as naive UTC
    BOOLEAN = "boolean"

    @property
    def numeric(self) -> bool:
        return self in (FieldType.INTEGER, FieldType.DECIMAL, FieldType.FLOAT)

    @property
    def temporal(self) -> bool:
        return self in (FieldType.DATE, FieldType.DATETIME)


@dataclass(frozen=True)
class Field:
    """One column of a stream. ``scale`` is the number of decimal places of a DECIMAL field."""

    name: str
    type: FieldType
    scale: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type.value, "scale": self.scale}

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Field:
        scale = raw.get("scale")
        return cls(
            str(raw["name"]), FieldType(str(raw["type"])), int(str(scale)) if scale is not None else None
        )


@dataclass(frozen=True)
class StreamSchema:
    """The ordered fields of a stream as the source reports them."""

    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def get(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    def to_json(self) -> list[dict[str, object]]:
        return [f.to_json() for f in self.fields]

    @classmethod
    def from_json(cls, raw: list[dict[str, object]]) -> StreamSchema:
        return cls(tuple(Field.from_json(r) for r in raw))
