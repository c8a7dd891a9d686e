"""An example connector in one small file: a CSV file as a source (``kind: csvfile``).

Register it from your own package's pyproject.toml — no okrsync file changes:

    [project.entry-points."okrsync.connectors"]
    csvfile = "csvfile_connector:CsvFileConnector"

tests/connectors/test_plugin.py installs exactly this file as a plugin and runs a KR on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from connectors.base import StreamSpec, Watermark, cursor_values
from okrsync.errors import ConfigError, SourceError
from okrsync.schema import Field, FieldType, StreamSchema


class CsvOptions(BaseModel):
    """The source block: ``{kind: csvfile, folder: exports}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    folder: str


class CsvStreamOptions(BaseModel):
    """Per stream: the file and the type of each column (``decimal:2``, ``integer``, ``date``…)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str
    columns: dict[str, str]


class CsvFileConnector:
    kind: ClassVar[str] = "csvfile"
    Options: ClassVar[type[BaseModel]] = CsvOptions
    StreamOptions: ClassVar[type[BaseModel]] = CsvStreamOptions

    def __init__(self, name: str, options: Any, base_dir: Path) -> None:
        self.name, self.folder = name, base_dir / options.folder

    def check(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"source {self.name!r}: folder {self.folder} does not exist")

    def schema(self, stream: StreamSpec) -> StreamSchema:
        fields = []
        for col, spec in CsvStreamOptions(**stream.options).columns.items():
            kind, _, scale = spec.partition(":")
            try:
                fields.append(Field(col, FieldType(kind), int(scale) if scale else None))
            except ValueError:
                raise ConfigError(f"stream {stream.name!r}: column {col!r} has unknown type {spec!r}",
                                  hint=f"use one of {', '.join(t.value for t in FieldType)}") from None
        return StreamSchema(tuple(fields))

    def _frame(self, stream: StreamSpec) -> pd.DataFrame:
        path = self.folder / CsvStreamOptions(**stream.options).file
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except OSError as exc:
            raise SourceError(f"stream {stream.name!r}: cannot read {path}: {exc.strerror}") from None
        convert = {FieldType.INTEGER: int, FieldType.DECIMAL: Decimal, FieldType.FLOAT: float,
                   FieldType.DATE: lambda v: pd.Timestamp(v).date(), FieldType.STRING: str,
                   FieldType.DATETIME: lambda v: pd.Timestamp(v).to_pydatetime(),
                   FieldType.BOOLEAN: lambda v: v.lower() == "true"}
        for f in self.schema(stream).fields:
            df[f.name] = df[f.name].map(lambda v, c=convert[f.type]: None if v == "" else c(v))
        return df

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        df = self._frame(stream)
        if stream.cursor:
            df = df.assign(_c=cursor_values(df, stream)).sort_values(["_c", *stream.primary_key])
            if since is not None:
                key = df[list(stream.primary_key)].apply(tuple, axis=1)
                df = df[(df["_c"] > since.cursor) | ((df["_c"] == since.cursor) & (key > since.key))]
            df = df.drop(columns="_c")
        yield df

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        yield self._frame(stream)[list(stream.primary_key)]

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        return None

    def close(self) -> None:
        pass
