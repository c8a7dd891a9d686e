"""An example connector in one small file: a CSV file as a source (``kind: csvfile``).

Register it from your own package's pyproject.toml — no okrsync file changes:

    [project.entry-points."okrsync.connectors"]
    csvfile = "csvfile_connector:CsvFileConnector"

tests/connectors/test_plugin.py installs exactly this file as a plugin, runs a KR on it and runs the
connector contract (connectors.testing) on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from connectors.base import SourceConnector, StreamSpec, Watermark
from connectors.kit.cursor import Incremental
from connectors.kit.options import validated
from connectors.kit.values import records_frame
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


class CsvFileConnector(SourceConnector):
    kind: ClassVar[str] = "csvfile"
    Options: ClassVar[type[BaseModel]] = CsvOptions
    StreamOptions: ClassVar[type[BaseModel]] = CsvStreamOptions

    def __init__(self, name: str, options: Any, base_dir: Path) -> None:
        super().__init__(name, options, base_dir)
        self.folder = base_dir / self.options.folder

    def check(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"source {self.name!r}: folder {self.folder} does not exist")

    def schema(self, stream: StreamSpec) -> StreamSchema:
        fields = []
        for col, spec in self._stream_options(stream).columns.items():
            kind, _, scale = spec.partition(":")
            try:
                fields.append(Field(col, FieldType(kind), int(scale) if scale else None))
            except ValueError:
                raise ConfigError(f"stream {stream.name!r}: column {col!r} has unknown type {spec!r}",
                                  hint=f"use one of {', '.join(t.value for t in FieldType)}") from None
        schema = StreamSchema(tuple(fields))
        named = (*(stream.fields or ()), *stream.primary_key, *stream.cursor)
        if missing := [n for n in named if n not in schema]:
            raise ConfigError(f"stream {stream.name!r}: no column {missing[0]!r}",
                              hint=f"columns: {', '.join(schema.names)}")
        return schema

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        rows = self._frame(stream)[list(stream.kept_fields(self.schema(stream)))]
        yield from Incremental.of(stream, since).frames(rows, stream.batch_size)

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        yield self._frame(stream)[list(stream.primary_key)]

    def _stream_options(self, stream: StreamSpec) -> CsvStreamOptions:
        return validated(CsvStreamOptions, stream.options, where=f"stream {stream.name!r}",
                         hint="a csvfile stream takes `file` and `columns`")

    def _frame(self, stream: StreamSpec) -> pd.DataFrame:
        path = self.folder / self._stream_options(stream).file
        try:
            text = pd.read_csv(path, dtype=str, keep_default_na=False)
        except OSError as exc:
            raise SourceError(f"stream {stream.name!r}: cannot read {path}: {exc.strerror}") from None
        records = [{k: v or None for k, v in r.items()} for r in text.to_dict("records")]
        return records_frame(records, self.schema(stream).fields, where=f"stream {stream.name!r}",
                             key=stream.primary_key[0])
