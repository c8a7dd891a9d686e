"""The connector interface, the stream declaration and the incremental cursor (watermark).

A connector subclasses :class:`SourceConnector`: the required members of the :class:`Connector` protocol
plus every optional capability declared with its default (tombstones, API-call counting, full refreshes,
partitions, the horizon), so the pipeline reads typed attributes instead of probing with ``getattr``.
A class written against the bare protocol still loads: :func:`connectors.registry.connector_kind`
wraps it once (:mod:`connectors.protocol`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.kit.options import validated
from okrsync.errors import ConfigError
from okrsync.schema import FieldType, StreamSchema

if TYPE_CHECKING:  # connectors import pandas where they read; the project file and `status` need none
    import pandas as pd

    from connectors.horizon import Horizon

KEY_SEPARATOR = "|"


class Partitions(BaseModel):
    """Ranges of one field a stream is read in, in parallel: ``bounds: [b1, b2, …]`` makes the ranges
    ``< b1``, ``[b1, b2)``, …, ``>= bn`` (NULLs go with the first). Every range stages into the same
    sync, which commits once: the stream's snapshot stays atomic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    bounds: tuple[Any, ...] = Field(min_length=1, max_length=255)

    @field_validator("bounds")
    @classmethod
    def _ascending(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        try:
            ordered = all(a < b for a, b in zip(v, v[1:], strict=False))
        except TypeError:
            raise ValueError("bounds must all be numbers, or all dates/texts") from None
        if not ordered:
            raise ValueError("bounds must be in ascending order, each once")
        return v

    def ranges(self) -> list[tuple[Any, Any]]:
        """``[(None, b1), (b1, b2), …, (bn, None)]``: lower bound included, upper excluded."""
        edges: list[Any] = [None, *self.bounds, None]
        return list(zip(edges, edges[1:], strict=False))


class StreamSpec(BaseModel):
    """What to pull from a source: identity (primary key), cursor and fields are declared data.

    ``options`` holds the connector-specific keys (``table``/``query`` for SQL); each connector
    validates them with its own ``StreamOptions`` model, so unknown keys are errors there too.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: str
    primary_key: tuple[str, ...]
    cursor: tuple[str, ...] = ()
    fields: tuple[str, ...] | None = None
    # How deleted source records are found: ``reconcile`` compares every key with the source,
    # ``tombstones`` asks the source which records it deleted (Salesforce queryAll), ``none`` never
    # looks. Unset: the connector's default (see :func:`deletion_policy`).
    deletes: Literal["reconcile", "tombstones", "none"] | None = None
    # Reading every key to find hard deletes costs ~10 s per million rows: large streams can do it
    # on a cadence (e.g. 24) instead of on every sync. 0 means every sync; unset, the connector's default.
    reconcile_every_hours: float | None = Field(default=None, ge=0)
    # Re-read this far behind what can still commit (late rows); unset: the connector's default
    # (``default_lookback_seconds``; 300 s for sql). The store drops re-read rows that did not change.
    lookback_seconds: int | None = Field(default=None, ge=0)
    timezone: str | None = None
    batch_size: int = Field(default=50_000, ge=1, le=1_000_000)
    # Fields holding personal data: never copied in clear into check samples or results.
    sensitive: tuple[str, ...] = ()
    # Data-quality checks (see metrics.quality), validated by the project loader.
    checks: tuple[Any, ...] = ()
    # Read in ranges of one field, as parallel tasks committing as one (connectors that support it).
    partitions: Partitions | None = None
    # Set by okrsync on the copy of the stream that one partition task reads: ``(lower, upper)`` of
    # ``partitions.field``, lower included, upper excluded, None for open; connectors add it to their
    # query. Never in a project file.
    partition_range: tuple[Any, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("primary_key", "cursor", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("primary_key")
    @classmethod
    def _pk_not_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("a stream needs at least one primary-key field")
        return v

    def kept_fields(self, schema: StreamSchema) -> tuple[str, ...]:
        """The fields to keep: the declared ones plus primary key and cursor, in schema order."""
        wanted = set(self.fields) if self.fields is not None else set(schema.names)
        wanted |= set(self.primary_key) | set(self.cursor)
        return tuple(n for n in schema.names if n in wanted)


def stream_zone(source: str, stream: StreamSpec) -> ZoneInfo:
    """The stream's ``timezone`` (naive source values are in it; UTC when unset), or a ConfigError."""
    try:
        return ZoneInfo(stream.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"source {source!r}, stream {stream.name!r}: unknown timezone {stream.timezone!r}",
                          hint="use an IANA zone name such as Europe/Berlin") from None

def _jsonable(v: Any) -> Any:
    pandas = sys.modules.get("pandas")  # a NaT exists only once pandas is imported
    missing = pandas is not None and (v is pandas.NaT or v is pandas.NA)  # NA: Arrow-backed columns
    if v is None or missing or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if hasattr(v, "item"):  # numpy scalar
        return v.item()
    return v


@dataclass(frozen=True)
class Watermark:
    """The position after the last committed record: ``(cursor, primary key)``, compared as a tuple.

    Reading strictly after it picks up every row changed since, including rows that share the cursor
    value of the last one (ties at a batch boundary), and nothing already read.
    """

    cursor: Any
    key: tuple[Any, ...]
    # A digest of what the stream extracted up to here (see flows.pipeline.extraction_spec).
    spec: str | None = None
    # Set when rows at or after this cursor value (naive UTC) may still commit at the source (an open
    # transaction, the lookback, a cursor ahead of the source's clock): the next read starts here,
    # inclusive, instead of strictly after (cursor, key). See connectors.horizon.
    reread_from: Any = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"cursor": _jsonable(self.cursor), "key": [_jsonable(k) for k in self.key]}
        if self.spec is not None:
            data["spec"] = self.spec
        if self.reread_from is not None:
            data["reread_from"] = _jsonable(self.reread_from)
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str | None) -> Watermark | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(data["cursor"], tuple(data["key"]), data.get("spec"), data.get("reread_from"))


def cursor_values(df: pd.DataFrame, stream: StreamSpec) -> pd.Series:
    """The effective cursor of each row: the first non-null of the cursor fields (COALESCE)."""
    cols = list(stream.cursor)
    out = df[cols[0]]
    for c in cols[1:]:
        out = out.where(out.notna(), df[c])
    return out


def record_ids(df: pd.DataFrame, primary_key: tuple[str, ...]) -> pd.Series:
    """Stable string ids for records: the primary-key values joined with ``|`` (vectorised). Stores
    hold them: an Arrow-backed batch gets, through Arrow kernels, the ids its Python values would
    (an Arrow-backed string column then)."""
    arrow = _arrow_key_texts(df, primary_key) if all(_is_arrow(df[c]) for c in primary_key) else None
    if arrow is not None:
        import pyarrow.compute as pc

        from connectors.kit.arrow_text import to_series

        joined = arrow[0] if len(arrow) == 1 else pc.binary_join_element_wise(*arrow, KEY_SEPARATOR)
        return to_series(joined, df[primary_key[0]])
    ids = df[primary_key[0]].map(_key_text)
    for col in primary_key[1:]:
        ids = ids + KEY_SEPARATOR + df[col].map(_key_text)
    return ids.astype(str)


def _arrow_key_texts(df: pd.DataFrame, primary_key: tuple[str, ...]) -> list[Any] | None:
    """Each key column's ``_key_text`` through Arrow, when every one is Arrow-backed and of a type
    Arrow prints as Python does (see connectors.kit.arrow_text); None otherwise."""
    import pyarrow as pa

    from connectors.kit.arrow_text import arrow_array, isoformat_text, str_text

    texts = []
    for col in primary_key:
        if (arr := arrow_array(df[col])) is None:
            return None
        text = isoformat_text(arr) if pa.types.is_timestamp(arr.type) else str_text(arr)
        if text is None or text.null_count:  # floats; a NULL key (refused by the connectors anyway)
            return None
        texts.append(text)
    return texts


def _is_arrow(s: pd.Series) -> bool:
    return type(s.dtype).__name__ == "ArrowDtype"  # without importing pandas for other frames


def _key_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


class KeyDigests(Protocol):
    """A source's key-range digests of one stream (see :mod:`connectors.sql_digest`): ``(rows, Σ h1,
    Σ h2)`` per bucket ``(position - origin) // width``, where the position is the key itself
    (``positional``: one integer key) or the key's hash ``h1``; optionally only within some buckets
    ``(width, numbers)`` of a coarser level; and the keys of such buckets. ``bits`` (one integer key,
    buckets at most 32 wide): ``(rows, Σ 2^((position - origin) mod width), 0)``, the exact key set."""

    positional: bool

    def digests(self, origin: int, width: int, within: tuple[int, Sequence[int]] | None,
                bits: bool = False) -> dict[int, tuple[int, int, int]]: ...

    def keys(self, origin: int, within: tuple[int, Sequence[int]]) -> Iterator[pd.DataFrame]: ...


@runtime_checkable
class ReportsDeletions(Protocol):
    """A connector that can say which records were deleted since a watermark (tombstones)."""

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]: ...


@runtime_checkable
class ReportsFilterExits(Protocol):
    """A connector that pushes a stream's filter down to the source and can say which records changed
    since a watermark but no longer match it (the incremental read no longer returns them)."""

    def excluded(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]: ...


def deletion_policy(stream: StreamSpec, connector: SourceConnector) -> tuple[str, float]:
    """``(deletes, reconcile_every_hours)`` for a stream: its own settings, else the connector's
    ``default_deletes`` / ``default_reconcile_every_hours``, else ``reconcile`` on every sync.

    A stream that says ``deletes: reconcile`` itself compares keys on every sync unless it also sets
    ``reconcile_every_hours``: the connector's cadence belongs to its default mode (e.g. tombstones
    between weekly reconciliations); without tombstones it would leave deletions unseen in between."""
    mode = str(stream.deletes or connector.default_deletes)
    hours = stream.reconcile_every_hours
    if hours is None:
        hours = 0.0 if stream.deletes == "reconcile" else float(connector.default_reconcile_every_hours)
    if mode != "none" and hours > 0 and connector.filter_needs_keys(stream):
        raise ConfigError(
            f"stream {stream.name!r}: its rows come through a filter only the source knows (a `query`), so "
            f"a row edited out of it is found only by comparing keys: on every sync, not every {hours:g} h",
            hint="remove `reconcile_every_hours` from the stream (or `deletes: none` to never look, "
            "keeping rows that left the query counted)",
        )
    if mode == "tombstones" and not connector.reports_deletions:
        raise ConfigError(
            f"stream {stream.name!r}: source kind {connector.kind!r} cannot report deleted records",
            hint="use `deletes: reconcile` (compare every key) or `deletes: none`",
        )
    return mode, hours


@runtime_checkable
class Connector(Protocol):
    """One kind of source. Instances are cheap; they open connections lazily and close on ``close``.

    * ``Options`` validates the source block of the project file (``extra="forbid"``).
    * ``StreamOptions`` validates the connector-specific keys of a stream.
    * ``read`` yields DataFrames ordered by (cursor, primary key), strictly after ``since``; columns
      are the stream's kept fields, values already converted to the :class:`FieldType` of the schema
      (DECIMAL as ``decimal.Decimal``, DATETIME as naive UTC ``datetime``, DATE as ``date``).
    * ``keys`` yields DataFrames of the primary-key columns of every live record (hard-delete
      detection by reconciliation).

    The optional members are those of :class:`SourceConnector`, which declares them with their defaults.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    StreamOptions: ClassVar[type[BaseModel]]

    def check(self) -> None: ...

    def schema(self, stream: StreamSpec) -> StreamSchema: ...

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]: ...

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]: ...

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None: ...

    def close(self) -> None: ...


ConnectorFactory = type["SourceConnector"]  # what an ``okrsync.connectors`` entry point loads as


def typed_watermark(raw: str | None, stream: StreamSpec, schema: StreamSchema) -> Watermark | None:
    """Read a stored watermark back with the Python types of the cursor and key fields."""
    wm = Watermark.from_json(raw)
    if wm is None:
        return None
    cursor_field = schema.get(stream.cursor[0]) if stream.cursor else None
    key = tuple(_typed(v, schema.get(k)) for v, k in zip(wm.key, stream.primary_key, strict=False))
    return Watermark(_typed(wm.cursor, cursor_field), key, wm.spec, _typed(wm.reread_from, cursor_field))


def _typed(v: Any, f: Any) -> Any:
    if v is None or f is None:
        return v
    convs: dict[FieldType, Callable[[Any], Any]] = {
        FieldType.DATETIME: datetime.fromisoformat,
        FieldType.DATE: date.fromisoformat,
        FieldType.DECIMAL: Decimal,
        FieldType.INTEGER: int,
        FieldType.FLOAT: float,
    }
    conv = convs.get(f.type)
    return conv(v) if conv and isinstance(v, str | int | float) and not isinstance(v, bool) else v


DeletePolicy = Literal["reconcile", "tombstones", "none"]


class SourceConnector:
    """The base class of a connector: the :class:`Connector` protocol, every optional capability declared
    and defaulted (the Singer SDK's ``Stream`` attributes). Override what the source can do better.

    Capabilities (class attributes, or instance attributes when they depend on the options):

    * ``default_deletes`` / ``default_reconcile_every_hours`` — how deleted records are found in streams
      that say nothing (``reconcile`` on every sync by default);
    * ``default_lookback_seconds`` — how far the pipeline keeps the watermark behind ``horizon()``;
    * ``reports_deletions`` — :meth:`deleted` gives tombstones, so streams may use ``deletes: tombstones``;
    * ``supports_partitions`` — :meth:`read` honours ``stream.partition_range``;
    * ``personal_data`` — each record is a person, so values over few records are withheld from roles
      that may not see personal data (:mod:`okrsync.small_groups`).

    And methods with a default: :attr:`api_calls`, :meth:`needs_full_refresh`, :meth:`filter_needs_keys`,
    :meth:`horizon`, :meth:`deleted`, :meth:`excluded`, :meth:`check`, :meth:`record_url`,
    :meth:`key_digests`, :meth:`close`.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    StreamOptions: ClassVar[type[BaseModel]]
    options_hint: ClassVar[str] = "see the connector's documentation for its keys"

    default_deletes: DeletePolicy = "reconcile"
    default_reconcile_every_hours: float = 0
    default_lookback_seconds: int = 0
    reports_deletions: bool = False
    supports_partitions: bool = False
    personal_data: ClassVar[bool] = False

    def __init__(self, name: str, options: Any, base_dir: Path) -> None:
        self.name, self.base_dir = name, base_dir
        self.options: Any = validated(self.Options, options, where=f"source {name!r}", hint=self.options_hint)

    # -- required ------------------------------------------------------------------------------------

    def schema(self, stream: StreamSpec) -> StreamSchema:
        """The stream's fields and types; a ConfigError naming what the source does not have."""
        raise NotImplementedError

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """The stream's records after ``since``, ordered by (cursor, primary key), in frames."""
        raise NotImplementedError

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        """The primary keys of every live record."""
        raise NotImplementedError

    # -- optional, with defaults ---------------------------------------------------------------------

    @property
    def api_calls(self) -> int | None:
        """Calls made so far that the source counts against a budget; None when it counts none."""
        return None

    def check(self) -> None:
        """Raise SourceError(transient=True) when the source is unreachable."""

    def needs_full_refresh(self, stream: StreamSpec) -> bool:
        """Kept values change without moving the cursor (formulas): read it all whenever keys are
        reconciled."""
        return False

    def filter_needs_keys(self, stream: StreamSpec) -> bool:
        """The stream's filter is the source's own: its keys are compared on every sync."""
        return False

    def horizon(self, stream: StreamSpec) -> Horizon | None:
        """The source's clock and oldest open transaction (see :mod:`connectors.horizon`), or None. A
        connector that gives one honours ``since.reread_from`` in :meth:`read`."""
        return None

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """The primary keys of records deleted since ``since`` (tombstones; see ``reports_deletions``)."""
        raise ConfigError(f"stream {stream.name!r}: source kind {self.kind!r} cannot report deleted records",
                          hint="use `deletes: reconcile` (compare every key) or `deletes: none`")

    def excluded(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """For a filter pushed down into the source: keys of records changed since ``since`` that it no
        longer selects (none by default)."""
        return iter(())

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        """A link to the record in the source's own UI, or None."""
        return None

    def key_digests(self, stream: StreamSpec) -> KeyDigests | None:
        """Key-range digests the source computes itself (deletes found in proportion to change,
        :mod:`flows.deletes`), or None: deletes are then found by reading every key (:meth:`keys`)."""
        return None

    def close(self) -> None:
        """Release connections."""
