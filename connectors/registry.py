"""The installed connector kinds: the ``okrsync.connectors`` entry points, each loaded only when named.

A class that subclasses :class:`~connectors.base.SourceConnector` is used as it is; one written against
the bare protocol is wrapped once (:mod:`connectors.protocol`).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from connectors.base import SourceConnector
from connectors.protocol import wrapped
from okrsync.errors import ConfigError


def connector_kind(kind: str) -> type[SourceConnector]:
    """The connector class registered as ``kind`` (only that entry point is loaded)."""
    eps = {ep.name: ep for ep in entry_points(group="okrsync.connectors")}
    if kind not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(
            f"unknown source kind {kind!r}",
            hint=f"installed kinds: {known}. A new kind registers under the "
            "'okrsync.connectors' entry point.",
        )
    return _typed_kind(eps[kind].load())


def _typed_kind(factory: Any) -> type[SourceConnector]:
    """The class itself if it subclasses :class:`SourceConnector`, else it wrapped (see the module notes)."""
    if isinstance(factory, type) and issubclass(factory, SourceConnector):
        return factory
    return wrapped(factory)


def connector_kinds() -> dict[str, type[SourceConnector]]:
    """Every installed connector kind, from the ``okrsync.connectors`` entry-point group."""
    return {ep.name: _typed_kind(ep.load()) for ep in entry_points(group="okrsync.connectors")}
