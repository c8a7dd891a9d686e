"""Who sees what behind a key result: the CLI's role, and drill/diff as that role sees them.

Roles are project settings (``settings.roles``; the CLI's is ``OKRSYNC_ROLE`` or ``settings.role``).
A role without ``records`` sees values only; one without ``sensitive`` sees streams' sensitive fields
as ``•••`` (they are sealed in the store, see :mod:`okrsync.pii`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from okrsync.errors import ConfigError
from okrsync.pii import reveal


class NotAllowed(ConfigError):
    """The role may not do this (the web app answers 403)."""


def where_filters(items: list[str]) -> dict[str, list[str]]:
    """``FIELD=VALUE`` texts (``--where``, the API's ``where``) → field → values; a field given
    several times keeps each value (the drill keeps records equal to any of them)."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"cannot read the filter {item!r}: expected FIELD=VALUE",
                              hint="e.g. region=EMEA; repeat it for several values: region=EMEA region=APAC")
        out.setdefault(name, []).append(text)
    return out


def drill_filters(
    project: Any, role_name: str, role: Any, equals: dict[str, list[str]], sort: str
) -> dict[str, list[str]]:
    """Drill filters as stored: a sensitive field's values sealed as the store keeps them, for roles
    that may see such fields; no sorting on sealed fields (their order means nothing)."""
    hidden = {f for fields in project.sensitive().values() for f in fields}
    if sort in hidden:
        raise ConfigError(f"{sort!r} is a sensitive field: it is stored sealed and cannot be sorted on")
    out: dict[str, list[str]] = {}
    for name, texts in equals.items():
        if name in hidden:
            if not role.sensitive:
                raise NotAllowed(
                    f"{name!r} is a sensitive field; your role ({role_name}) cannot filter on it",
                    hint="ask for a role with `sensitive: true` (e.g. hr)",
                )
            texts = [project.vault().seal(name, text) for text in texts]
        out[name] = list(texts)
    return out


def records_role(project: Any) -> Any:
    """The CLI's role (OKRSYNC_ROLE or settings.role), if it may see records at all."""
    name, role = project.role()
    if not role.records:
        raise ConfigError(f"role {name!r} may see key results but not the records behind them",
                          hint="ask for a role with `records: true` (settings.roles), e.g. leadership")
    return role


def _vault_for(project: Any, role: Any) -> Any:
    return project.vault() if role.sensitive and project.sensitive() else None


def drill_as(project: Any, role: Any, d: Any) -> Any:
    """The drill as the role sees it: sensitive fields opened, or masked (okrsync.pii)."""
    hidden = project.sensitive()
    if not hidden:
        return d
    vault = _vault_for(project, role)
    records = [replace(r, fields=reveal(r.fields, hidden.get(r.stream, ()), vault)) for r in d.records]
    return replace(d, records=records)


def diff_as(project: Any, role: Any, df: Any) -> Any:
    """The diff as the role sees it: each change's sensitive field values opened, or masked. A change's
    ``reason`` text is rendered from those same values (okr_store.lineage.Change), so no sealed text,
    which is deterministic and would link one person's records, reaches a role in any form."""
    hidden = project.sensitive()
    if not hidden:
        return df
    vault = _vault_for(project, role)
    changes = []
    for c in df.changes:
        fields = hidden.get(c.stream, ())
        before = reveal({k: a for k, (a, _) in c.field_changes.items()}, fields, vault)
        after = reveal({k: b for k, (_, b) in c.field_changes.items()}, fields, vault)
        changes.append(replace(c, field_changes={k: (before[k], after[k]) for k in c.field_changes}))
    return replace(df, changes=changes)


def record_links(project: Any, d: Any) -> dict[tuple[str, str], str | None]:
    """Links to each record of a drill in its source's own UI, where the connector knows one."""
    with RecordLinks(project) as links:
        return links(d)


class RecordLinks:
    """:func:`record_links` for page after page of one export: each source's connector is made once
    (on its first page) and closed with this object, not once per page."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self._connectors: dict[str, Any] = {}

    def __enter__(self) -> RecordLinks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, d: Any) -> dict[tuple[str, str], str | None]:
        out: dict[tuple[str, str], str | None] = {}
        for stream in {r.stream for r in d.records}:
            if stream not in self.project.streams:
                continue
            spec = self.project.streams[stream]
            connector = self._connectors.get(spec.source)
            if connector is None:
                connector = self._connectors[spec.source] = self.project.connector(spec.source)
            for r in d.records:
                if r.stream == stream:
                    out[(stream, r.record_id)] = connector.record_url(spec, r.record_id)
        return out

    def close(self) -> None:
        while self._connectors:
            self._connectors.popitem()[1].close()
