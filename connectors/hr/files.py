"""HR exports dropped in a folder as a stream (``system: files``): CSV or XLSX, declared column types.

The connector keeps no state of its own. Each row carries the file it came from: ``_file_name``,
``_file_sha256`` (of the file's bytes), ``_file_modified`` (its modification time, naive UTC to the
microsecond) and ``_file_line``. With ``cursor: _file_modified`` the framework's watermark
``(cursor, primary key)`` is the modification time of the last file read, and each sync reads only what
is newer:

* ``mode: snapshot`` — each file is the whole population and the newest file is the truth. A sync reads the
  newest file if it is newer than the watermark, and yields only the records that differ from the file the
  watermark points at (when that file is still in the folder; else every record). A newer file whose bytes
  equal that file's (a re-saved or touched copy) yields nothing. Records missing from the newest file are
  deleted by key reconciliation (``keys`` lists the newest file's keys; every sync by default).
* ``mode: append`` — each file adds or replaces records. A sync reads every file newer than the watermark
  in modification-time order, skipping any whose sha256 equals a file already read (one at or before the
  watermark, or an earlier one of this sync); a record in several new files comes from the newest one.
  Nothing is deleted unless the stream asks for ``deletes: reconcile`` (then a record lives while some
  file in the folder holds it).

An unchanged folder therefore reads nothing. Every file a sync reads is validated whole before any row is
yielded (:mod:`connectors.hr.parse`, :mod:`connectors.hr.columns`); a bad file fails the sync and nothing
of it is committed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import DeletePolicy, StreamSpec, Watermark, stream_zone
from connectors.hr.columns import Parsed, typed_rows
from connectors.hr.options import META_COLUMNS, HrFilesOptions, stream_options
from connectors.hr.parse import XLSX_SUFFIXES, FileRejected, csv_table, decode, xlsx_table
from connectors.kit.values import naive_utc, typed_frame
from okrsync.errors import ConfigError, SourceError, did_you_mean
from okrsync.schema import Field, FieldType, StreamSchema

if TYPE_CHECKING:  # imported where a read builds frames: loading a project file needs no pandas
    import pandas as pd

log = logging.getLogger(__name__)

CURSOR = "_file_modified"
META_FIELDS = (
    Field("_file_name", FieldType.STRING),
    Field("_file_sha256", FieldType.STRING),
    Field("_file_modified", FieldType.DATETIME),
    Field("_file_line", FieldType.INTEGER),
)
_EPOCH = datetime(1970, 1, 1)
_CACHED_FILES = 4


@dataclass(frozen=True)
class _File:
    path: Path
    name: str  # relative to the folder, with /
    modified: datetime  # naive UTC, microseconds
    size: int
    mtime_ns: int

    @property
    def stamp(self) -> tuple[str, int, int]:
        return (str(self.path), self.size, self.mtime_ns)


@dataclass(frozen=True)
class _Read:
    file: _File
    sha256: str
    parsed: Parsed


class HrFiles:
    """The ``system: files`` half of :class:`~connectors.hr.HrConnector`."""

    default_reconcile_every_hours: ClassVar[float] = 0  # listing the newest file's keys is cheap

    def __init__(self, name: str, options: HrFilesOptions, base_dir: Path) -> None:
        self.name, self.options = name, options
        self.folder = base_dir / options.folder
        # snapshot: records missing from the newest file are gone; append: nothing is ever deleted.
        self.default_deletes: DeletePolicy = "reconcile" if options.mode == "snapshot" else "none"
        declared = tuple(Field(n, s.field_type, s.scale) for n, s in options.columns.items())
        self._schema = StreamSchema(declared + META_FIELDS)
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._parsed: dict[tuple[Any, ...], _Read] = {}

    # -- the Connector protocol --------------------------------------------------------------------

    def check(self) -> None:
        self._files()

    def schema(self, stream: StreamSpec) -> StreamSchema:
        schema = self._schema
        where = f"source {self.name!r}, stream {stream.name!r}"
        so = stream_options(self.name, stream)
        if so.report is not None:
            raise ConfigError(f"{where}: `report` is for BambooHR sources",
                              hint="a files stream takes its columns from the source's `columns`")
        names = list(schema.names)
        for name in (*(stream.fields or ()), *stream.primary_key, *stream.cursor):
            if name not in schema:
                guess = did_you_mean(name, names)
                raise ConfigError(f"{where}: the source declares no column {name!r}{guess}",
                                  hint=f"columns: {', '.join(names)}; declare more under the source's "
                                  "`columns`")
        for name in stream.primary_key:
            if name in ("_file_sha256", "_file_modified"):
                raise ConfigError(f"{where}: {name} cannot be part of the primary key",
                                  hint="use the export's id column (and _file_name, _file_line for files "
                                  "without one)")
        if stream.cursor not in ((), (CURSOR,)):
            raise ConfigError(f"{where}: the cursor of a files stream is {CURSOR}",
                              hint=f"write `cursor: {CURSOR}`: each sync then reads only newer files "
                              "(docs/hr.md)")
        return schema

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        schema = self.schema(stream)
        files = self._files()
        mark = naive_utc(since.cursor) if since is not None and stream.cursor else None
        if self.options.mode == "snapshot":
            rows = self._snapshot_rows(stream, files, mark)
        else:
            rows = self._append_rows(stream, files, mark)
        kept = stream.kept_fields(schema)
        positions = [list(schema.names).index(k) for k in kept]
        fields = [schema.fields[p] for p in positions]
        for start in range(0, len(rows), stream.batch_size):
            batch = rows[start:start + stream.batch_size]
            yield typed_frame(fields, [[row[p] for row in batch] for p in positions])

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        schema = self.schema(stream)
        files = self._files()
        if self.options.mode == "snapshot":
            reads = [self._read_file(stream, files[-1])]
        else:
            reads = self._distinct(stream, files, set())
        names = list(schema.names)
        at = [names.index(k) for k in stream.primary_key]
        keys = sorted({tuple(row[i] for i in at) for r in reads for row in self._rows(r)})
        fields = [schema.fields[i] for i in at]
        for start in range(0, len(keys), stream.batch_size):
            batch = keys[start:start + stream.batch_size]
            yield typed_frame(fields, [[k[j] for k in batch] for j in range(len(at))])

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: a files source finds deleted "
                          "records by comparing keys, not by tombstones",
                          hint="use `deletes: reconcile` (the default of snapshot sources) or "
                          "`deletes: none`")

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        return None

    def close(self) -> None:
        self._hashes.clear()
        self._parsed.clear()

    # -- reads -------------------------------------------------------------------------------------

    def _snapshot_rows(self, stream: StreamSpec, files: list[_File],
                       mark: datetime | None) -> list[list[Any]]:
        newest = files[-1]
        base: _File | None = None
        if mark is not None:
            if newest.modified <= mark:
                return []  # the newest file was read already (a sync reads a file whole)
            at_mark = [f for f in files if f.modified == mark]
            base = at_mark[0] if len(at_mark) == 1 else None
            if base is not None and self._sha(base) == self._sha(newest):
                log.debug("source %r: the newest file has the bytes of the one read last", self.name)
                return []
        current = self._read_file(stream, newest)
        rows = self._rows(current)
        if base is not None:
            try:
                before = self._read_file(stream, base)
            except SourceError:
                before = None  # it no longer parses (the columns changed?): send every record again
            if before is not None:
                rows = self._changed(stream, rows, self._rows(before))
        key = self._key_positions(stream)
        return sorted(rows, key=lambda row: tuple(row[i] for i in key))

    def _append_rows(self, stream: StreamSpec, files: list[_File], mark: datetime | None) -> list[list[Any]]:
        new = [f for f in files if mark is None or f.modified > mark]
        sizes = {f.size for f in new}  # a copy has the same size: only those old files need hashing
        seen = {self._sha(f) for f in files if mark is not None and f.modified <= mark and f.size in sizes}
        reads = self._distinct(stream, new, seen)  # every new file is validated before any row is used
        key = self._key_positions(stream)
        latest: dict[tuple[Any, ...], list[Any]] = {}
        for r in reads:  # in modification-time order: a later file's record replaces an earlier one's
            for row in self._rows(r):
                latest[tuple(row[i] for i in key)] = row
        at = list(self._schema.names).index(CURSOR)
        return sorted(latest.values(), key=lambda row: (row[at], *(row[i] for i in key)))

    def _distinct(self, stream: StreamSpec, files: Sequence[_File], seen: set[str]) -> list[_Read]:
        reads = []
        for f in files:
            sha = self._sha(f)
            if sha in seen:
                log.debug("source %r: skipping a file whose bytes were read already", self.name)
                continue
            seen.add(sha)
            reads.append(self._read_file(stream, f))
        return reads

    def _changed(self, stream: StreamSpec, rows: list[list[Any]], before: list[list[Any]]) -> list[list[Any]]:
        """The rows whose kept columns differ from the same record's in ``before`` (or that are new)."""
        names = list(self._schema.names)
        kept = [names.index(k) for k in stream.kept_fields(self._schema) if k not in META_COLUMNS]
        key = self._key_positions(stream)
        old = {tuple(row[i] for i in key): [row[i] for i in kept] for row in before}
        return [row for row in rows if old.get(tuple(row[i] for i in key)) != [row[i] for i in kept]]

    # -- files -------------------------------------------------------------------------------------

    def _files(self) -> list[_File]:
        """The folder's exports, oldest first (a SourceError if there is none)."""
        if not self.folder.is_dir():
            raise SourceError(f"source {self.name!r}: folder {self.folder} does not exist",
                              hint="create it, mount it, or fix the source's `folder` (relative to the "
                              "project file)")
        found = []
        for p in self.folder.glob(self.options.pattern):
            if p.name.startswith((".", "~$")) or not p.is_file():  # hidden files, Excel's lock files
                continue
            st = p.stat()
            modified = _EPOCH + timedelta(microseconds=st.st_mtime_ns // 1000)
            name = p.relative_to(self.folder).as_posix()
            found.append(_File(p, name, modified, st.st_size, st.st_mtime_ns))
        if not found:
            raise SourceError(f"source {self.name!r}: no file in {self.folder} matches "
                              f"{self.options.pattern!r}", hint="drop an export there, or fix the source's "
                              "`pattern`; with no file the key results keep their last values")
        return sorted(found, key=lambda f: (f.modified, f.name))

    def _bytes(self, f: _File) -> bytes:
        limit = int(self.options.max_file_mb * 1024 * 1024)
        if f.size > limit:
            raise FileRejected(self.name, f.name, "", f"the file is larger than max_file_mb "
                               f"({self.options.max_file_mb:g} MB)", "raise max_file_mb, or split the export")
        try:
            return f.path.read_bytes()
        except OSError as exc:
            raise SourceError(f"source {self.name!r}: cannot read {f.name}: {exc.strerror}",
                              hint="check the file's permissions", transient=True) from None

    def _sha(self, f: _File) -> str:
        if f.stamp not in self._hashes:
            self._hashes[f.stamp] = hashlib.sha256(self._bytes(f)).hexdigest()
        return self._hashes[f.stamp]

    def _read_file(self, stream: StreamSpec, f: _File) -> _Read:
        cache_key = (*f.stamp, stream.primary_key, stream.timezone)
        if cache_key in self._parsed:
            return self._parsed[cache_key]
        data = self._bytes(f)
        sha = hashlib.sha256(data).hexdigest()
        self._hashes[f.stamp] = sha
        o = self.options
        wanted = [spec.header or name for name, spec in o.columns.items()]
        if f.path.suffix.lower() == ".xls":
            raise FileRejected(self.name, f.name, "", "old Excel files (.xls) are not read",
                               "save the export as .xlsx or .csv")
        if f.path.suffix.lower() in XLSX_SUFFIXES:
            table = xlsx_table(data, o.sheet, self.name, f.name)
        else:
            text = decode(data, o.encoding, self.name, f.name)
            table = csv_table(text, o.delimiter, wanted, self.name, f.name)
        parsed = typed_rows(table, o, stream.primary_key, stream_zone(self.name, stream), self.name, f.name)
        if o.mode == "snapshot" and not parsed.rows:
            raise FileRejected(self.name, f.name, "", "the export has a header but no rows: as a snapshot it "
                               "would delete every record", "check the export (or remove the file)")
        log.debug("source %r: read a %s export: %d rows", self.name, "XLSX" if table.xlsx else "CSV",
                  len(parsed.rows))
        result = _Read(f, sha, parsed)
        if len(self._parsed) >= _CACHED_FILES:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[cache_key] = result
        return result

    # -- rows --------------------------------------------------------------------------------------

    def _rows(self, r: _Read) -> list[list[Any]]:
        """Rows in schema order: the declared columns, then the file's columns."""
        f = r.file
        return [[*values, f.name, r.sha256, f.modified, line]
                for values, line in zip(r.parsed.rows, r.parsed.lines, strict=True)]

    def _key_positions(self, stream: StreamSpec) -> list[int]:
        names = list(self._schema.names)
        return [names.index(k) for k in stream.primary_key]
