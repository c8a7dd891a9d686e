"""Connectors written against the bare :class:`~connectors.base.Connector` protocol, before
:class:`~connectors.base.SourceConnector` declared the optional capabilities: each is wrapped once, when its
kind is loaded, and its optional members are read here — the one place that still asks an object what it
has — so the pipeline only ever sees typed capabilities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import ReportsDeletions, SourceConnector, StreamSpec, Watermark
from okrsync.schema import StreamSchema

if TYPE_CHECKING:
    import pandas as pd

    from connectors.horizon import Horizon


def wrapped(factory: Any) -> type[SourceConnector]:
    """A :class:`SourceConnector` class whose instances wrap ``factory(name, options, base_dir)``."""

    class Wrapped(ProtocolConnector):
        kind = factory.kind
        Options = factory.Options
        StreamOptions = factory.StreamOptions

        def __init__(self, name: str, options: Any, base_dir: Path) -> None:
            super().__init__(factory(name, options, base_dir))

    Wrapped.__name__ = Wrapped.__qualname__ = f"{getattr(factory, '__name__', 'Connector')}AsSource"
    return Wrapped


class ProtocolConnector(SourceConnector):
    """A connector written against the bare :class:`Connector` protocol, wrapped once: its optional
    members are read here, into the typed capabilities, and every call is passed on."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, getattr(inner, "name", "")
        self.base_dir = getattr(inner, "base_dir", Path("."))
        self.options = getattr(inner, "options", None)
        self.default_deletes = getattr(inner, "default_deletes", "reconcile")
        self.default_reconcile_every_hours = float(getattr(inner, "default_reconcile_every_hours", 0))
        self.default_lookback_seconds = int(getattr(inner, "default_lookback_seconds", 0))
        self.reports_deletions = isinstance(inner, ReportsDeletions)
        self.supports_partitions = bool(getattr(inner, "supports_partitions", False))

    def schema(self, stream: StreamSpec) -> StreamSchema:
        found: StreamSchema = self.inner.schema(stream)
        return found

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        return iter(self.inner.read(stream, since))

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        return iter(self.inner.keys(stream))

    @property
    def api_calls(self) -> int | None:
        calls = getattr(self.inner, "api_calls", None)
        return None if calls is None else int(calls)

    def check(self) -> None:
        self.inner.check()

    def needs_full_refresh(self, stream: StreamSpec) -> bool:
        probe = getattr(self.inner, "needs_full_refresh", None)
        return bool(probe(stream)) if probe is not None else False

    def filter_needs_keys(self, stream: StreamSpec) -> bool:
        probe = getattr(self.inner, "filter_needs_keys", None)
        return bool(probe(stream)) if probe is not None else False

    def horizon(self, stream: StreamSpec) -> Horizon | None:
        probe = getattr(self.inner, "horizon", None)
        return probe(stream) if probe is not None else None

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        if not self.reports_deletions:
            return super().deleted(stream, since)
        return iter(self.inner.deleted(stream, since))

    def excluded(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        probe = getattr(self.inner, "excluded", None)
        return iter(probe(stream, since)) if probe is not None else iter(())

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        url: str | None = self.inner.record_url(stream, record_id)
        return url

    def close(self) -> None:
        self.inner.close()
