"""The installed connector kinds: the ``okrsync.connectors`` entry points, each loaded only when named.

A class that subclasses :class:`~connectors.base.SourceConnector` is used as it is; one written against
the bare protocol is wrapped once (:mod:`connectors.protocol`).
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from connectors.base import SourceConnector
from connectors.protocol import wrapped
from okrsync.errors import ConfigError

GROUP = "okrsync.connectors"
_FOUND: dict[tuple[str, ...], dict[str, EntryPoint]] = {}


def _entry_points() -> dict[str, EntryPoint]:
    """The group's entry points by name, read once per ``sys.path``: reading them scans every installed
    distribution (~200 here, tens of ms), and loading one project asked for them three times a source.
    A distribution put on a new path (a plugin installed while the process runs) is seen."""
    key = tuple(sys.path)
    found = _FOUND.get(key)
    if found is None:
        found = _FOUND[key] = {ep.name: ep for ep in entry_points(group=GROUP)}
    return found


def installed_kinds() -> list[str]:
    """The names of the installed connector kinds, sorted."""
    return sorted(_entry_points())


def connector_kind(kind: str) -> type[SourceConnector]:
    """The connector class registered as ``kind`` (only that entry point is loaded)."""
    eps = _entry_points()
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
    return {name: _typed_kind(ep.load()) for name, ep in _entry_points().items()}
