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
