"""Small groups: a value over personal data, computed from a handful of records, is withheld.

A key result over an HR stream pinned to a department of two, or counting the one person who left this
month, tells its reader about those people. So a value is **suppressed** for roles without
``sensitive`` (viewer, leadership, admin by default) when both hold:

* it reads a *personal* stream: one with ``sensitive`` fields, or one of a source whose connector
  holds people (``personal_data = True``: ``kind: hr``). A stream the project no longer names counts as
  personal (its sensitivity is unknown: fail closed);
* ``n``, the number of distinct source records that contributed to it, is at least 1 and below
  ``settings.min_group_size`` (default 5). ``n`` is the value's ``records`` in the store
  (``kr_value.records``, counted when the value was computed: the records passing the metric's filter,
  pins and window, with a non-null field; for a ratio the records in either part). A value from no
  record at all (a count of 0) is about nobody and is shown.

Such a value is shown as ``suppressed (n < 5)``: no value, progress, status or record count (each
would give the value away; a count's value *is* n), and objectives roll up without it. Roles with
``sensitive`` (hr, owner) see everything. The records behind a value follow the role rules of
:mod:`okrsync.access` unchanged: a role with ``records`` may still list them, with sensitive fields
masked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from connectors.registry import connector_kind
from okr_store.queries import KrStatus, ObjectiveStatus, StoredValue

SUPPRESSED = "suppressed"


@lru_cache(maxsize=64)
def holds_people(kind: str) -> bool:
    """Whether the connector kind says every record is a person (its ``personal_data`` attribute)."""
    return bool(getattr(connector_kind(kind), "personal_data", False))


def personal_streams(project: Any) -> frozenset[str]:
    """The project's streams that hold personal data: with ``sensitive`` fields, or from a source
    whose connector says every record is a person."""
    kinds = {s.name: s.kind for s in project.sources.values()}
    return frozenset(
        name for name, s in project.streams.items()
        if s.sensitive or (s.source in kinds and holds_people(kinds[s.source]))
    )


@dataclass(frozen=True)
class SmallGroups:
    """What a role without ``sensitive`` may see of the values over personal streams."""

    min_size: int
    personal: frozenset[str]
    known: frozenset[str]  # every stream the project names

    @property
    def label(self) -> str:
        return f"{SUPPRESSED} (n < {self.min_size})"

    def hides(self, v: StoredValue) -> bool:
        """Whether ``v`` is over personal data and from fewer than ``min_size`` records (but some)."""
        if not 0 < v.records < self.min_size:
            return False
        return any(s in self.personal or s not in self.known for s in v.snapshot)

    def value(self, v: StoredValue) -> StoredValue:
        """``v`` as the role sees it: withheld (no value, progress, status or count), or as it is."""
        if not self.hides(v):
            return v
        return replace(v, value=None, reason=self.label, records=0, progress_raw=None, progress=None,
                       status=SUPPRESSED)

    def values(self, values: Iterable[StoredValue]) -> list[StoredValue]:
        return [self.value(v) for v in values]

    def tree(self, roots: Iterable[ObjectiveStatus]) -> list[ObjectiveStatus]:
        """A copy of the objective tree with each KR's value as the role sees it (objective progress,
        a property, then rolls up without the withheld ones)."""
        return [self._objective(o) for o in roots]

    def _objective(self, o: ObjectiveStatus) -> ObjectiveStatus:
        return replace(o, key_results=[self.kr(k) for k in o.key_results],
                       objectives=[self._objective(c) for c in o.objectives])

    def kr(self, k: KrStatus) -> KrStatus:
        """A copy of the KR with its current value as the role sees it."""
        if k.value is None or not self.hides(k.value):
            return k
        return replace(k, value=self.value(k.value),  # nor how far a restatement would move it
                       close=None if k.close is None else replace(k.close, withheld=True))


class SeesAll(SmallGroups):
    """A role with ``sensitive``: every value as it is."""

    def hides(self, v: StoredValue) -> bool:
        return False


def small_groups(project: Any, role: Any) -> SmallGroups:
    """The values ``role`` may see: all of them with ``sensitive``, else small groups withheld."""
    make = SeesAll if role.sensitive else SmallGroups
    return make(project.settings.min_group_size, personal_streams(project), frozenset(project.streams))


def is_suppressed(status: str | None) -> bool:
    return status == SUPPRESSED
