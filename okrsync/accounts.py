"""Changes of access, as the web app and ``okrsync users`` make them: who may grant which role, and
every change written to the audit log (okr_store.audit) in the same transaction as the change.

The grant model: a role is a set of capabilities (``records``, ``sensitive``, ``admin``). A web user
may grant a role, and may change or remove a user, only if their own role is an admin role holding
every capability of that role. So a plain ``admin`` cannot make an ``hr`` user (nor take one over):
that takes a role with ``admin`` *and* ``sensitive`` (the default ``owner``). The CLI acts with the
store's own credentials, which open everything anyway: it may grant any role, and is audited as
``cli:<os user>`` from its host.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from okr_store import audit
from okr_store import users as stored
from okrsync import users
from okrsync.access import NotAllowed
from okrsync.errors import NotFound

CAPABILITIES = ("records", "sensitive", "admin", "bind")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a web user with their role (``role`` None: the CLI, with the store's
    credentials) and where the request came from."""

    name: str
    role: Any = None  # okrsync.project.RoleSpec
    address: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container): still say it was the CLI
            who = "unknown"
        return cls(f"cli:{who}", None, socket.gethostname()[:64])


def covers(holder: Any, role: Any) -> bool:
    """Whether ``holder`` has every capability ``role`` has."""
    return all(getattr(holder, cap) or not getattr(role, cap) for cap in CAPABILITIES)


def _role(project: Any, name: str) -> Any:
    from okrsync.project import RoleSpec

    return project.settings.roles.get(name) or RoleSpec(records=False)  # unknown: grants nothing


def check_grant(project: Any, actor: Actor, role_name: str) -> None:
    """May ``actor`` give someone the role ``role_name``? (NotAllowed says why not.)"""
    users.check_role(project, role_name)
    if actor.role is not None and not (actor.role.admin and covers(actor.role, _role(project, role_name))):
        raise NotAllowed(
            f"you may not grant the role {role_name!r}: it can do what your role cannot",
            hint="a role is granted by someone whose role holds all of its capabilities (e.g. owner for hr)",
        )


def check_manage(conn: sa.Connection, project: Any, actor: Actor, name: str) -> stored.User:
    """May ``actor`` change or remove user ``name``? Returns the user."""
    found = stored.get_user(conn, name)
    if found is None:
        raise NotFound(f"no user {name!r}", hint="`okrsync users list` shows them")
    if actor.role is not None and not covers(actor.role, _role(project, found.role)):
        raise NotAllowed(
            f"you may not change {name!r}: their role ({found.role}) can do what yours cannot",
            hint="ask someone whose role holds all of its capabilities (e.g. owner)",
        )
    return found


def _audit(conn: sa.Connection, actor: Actor, action: str, target: str | None, reason: str) -> None:
    audit.audit(conn, actor=actor.name, action=action, reason=reason, target=target, address=actor.address)


def add_user(
    conn: sa.Connection, project: Any, actor: Actor, name: str, role: str, password_hash: str
) -> stored.User:
    check_grant(project, actor, role)
    u = stored.add_user(conn, users.check_name(name), role, password_hash, users.utcnow())
    _audit(conn, actor, "user.add", name, f"added with role {role}")
    return u


def change_role(conn: sa.Connection, project: Any, actor: Actor, name: str, role: str) -> stored.User:
    old = check_manage(conn, project, actor, name)
    check_grant(project, actor, role)
    ended = stored.set_role(conn, name, role)
    _audit(conn, actor, "user.role", name, f"role {old.role} → {role}; sessions and {ended} API tokens ended")
    return stored.User(old.name, role, old.created_at, old.disabled)


def change_password(conn: sa.Connection, project: Any, actor: Actor, name: str, password_hash: str) -> int:
    check_manage(conn, project, actor, name)
    ended = stored.set_password(conn, name, password_hash)
    _audit(conn, actor, "user.password", name, f"password set; sessions and {ended} API tokens ended")
    return ended


def remove_user(conn: sa.Connection, project: Any, actor: Actor, name: str) -> None:
    old = check_manage(conn, project, actor, name)
    stored.remove_user(conn, name)
    _audit(conn, actor, "user.remove", name, f"removed (role {old.role}) with their sessions and API tokens")


def issue_token(
    conn: sa.Connection, actor: Actor, name: str, label: str, days: int = users.TOKEN_DAYS
) -> tuple[str, stored.Token]:
    secret, t = users.issue_token(conn, name, label, days)
    expires = f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never"
    _audit(conn, actor, "token.add", name, f"API token #{t.id} ({label}), expires {expires} UTC")
    return secret, t


def revoke_token(conn: sa.Connection, actor: Actor, token_id: int, owner: str | None = None) -> None:
    """Revoke a token (only ``owner``'s, when given)."""
    t = stored.revoke_token(conn, token_id, owner)
    _audit(conn, actor, "token.revoke", t.user_name, f"API token #{t.id} ({t.label}) revoked")


def signed_in(conn: sa.Connection, name: str, address: str | None) -> None:
    _audit(conn, Actor(name, address=address), "signin.ok", name, "session started")


def sign_in_failed(conn: sa.Connection, name: str, address: str | None, *, closed: bool) -> str | None:
    """A failed sign-in; the name is kept only when it is a user's (a password typed into the name
    field must not land in the log): returns it, or None. ``closed``: this failure closed the
    throttle."""
    known = name if stored.get_user(conn, name) is not None else None
    who = known or "(unknown user)"
    _audit(conn, Actor(who, address=address), "signin.fail", known, "wrong user name or password")
    if closed:
        _audit(conn, Actor(who, address=address), "signin.throttled", known,
               "too many failed sign-ins: this name (or this address) is paused here for a while")
    return known
