"""Users, sessions and API tokens of the web app, as stored. Only hashes are stored: this module never
sees a password or a token in clear (see :mod:`okrsync.users`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from okr_store import models as m
from okrsync.errors import ConfigError, NotFound


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True)
class Token:
    id: int
    user_name: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


def _user(r: sa.Row) -> User:
    return User(r.name, r.role, r.created_at, bool(r.disabled))


def _token(r: sa.Row) -> Token:
    return Token(r.id, r.user_name, r.label, r.created_at, r.expires_at, r.last_used_at)


def add_user(conn: sa.Connection, name: str, role: str, password_hash: str, now: datetime) -> User:
    if conn.execute(sa.select(m.web_user.c.name).where(m.web_user.c.name == name)).first():
        raise ConfigError(
            f"user {name!r} already exists",
            hint="pick another name, or `okrsync users passwd` / `users role` to change it",
        )
    conn.execute(
        sa.insert(m.web_user).values(
            name=name, role=role, password_hash=password_hash, created_at=now, disabled=False
        )
    )
    return User(name, role, now, False)


def get_user(conn: sa.Connection, name: str) -> User | None:
    r = conn.execute(sa.select(m.web_user).where(m.web_user.c.name == name)).first()
    return None if r is None else _user(r)


def password_hash(conn: sa.Connection, name: str) -> str | None:
    """The stored hash of an enabled user's password (None: no such user, or disabled)."""
    return conn.execute(
        sa.select(m.web_user.c.password_hash).where(m.web_user.c.name == name, ~m.web_user.c.disabled)
    ).scalar_one_or_none()


def list_users(conn: sa.Connection) -> list[User]:
    return [_user(r) for r in conn.execute(sa.select(m.web_user).order_by(m.web_user.c.name))]


def _require(conn: sa.Connection, name: str) -> None:
    if get_user(conn, name) is None:
        raise NotFound(f"no user {name!r}", hint="`okrsync users list` shows them")


def set_password(conn: sa.Connection, name: str, password_hash: str) -> int:
    """Set a user's password and end their sessions and API tokens; returns how many tokens ended."""
    _require(conn, name)
    conn.execute(sa.update(m.web_user).where(m.web_user.c.name == name).values(password_hash=password_hash))
    end_sessions(conn, name)
    return end_tokens(conn, name)


def set_role(conn: sa.Connection, name: str, role: str) -> int:
    """Give a user another role and end their sessions and API tokens (made under the old role);
    returns how many tokens ended."""
    _require(conn, name)
    conn.execute(sa.update(m.web_user).where(m.web_user.c.name == name).values(role=role))
    end_sessions(conn, name)
    return end_tokens(conn, name)


def remove_user(conn: sa.Connection, name: str) -> None:
    """Remove a user with their sessions and tokens."""
    _require(conn, name)
    end_sessions(conn, name)
    end_tokens(conn, name)
    conn.execute(sa.delete(m.web_user).where(m.web_user.c.name == name))


# ---- sessions ---------------------------------------------------------------------------------
def add_session(conn: sa.Connection, token_hash: str, name: str, now: datetime, expires_at: datetime) -> None:
    conn.execute(sa.delete(m.web_session).where(m.web_session.c.expires_at <= now))  # tidy as we go
    conn.execute(
        sa.insert(m.web_session).values(
            token_hash=token_hash, user_name=name, created_at=now, expires_at=expires_at
        )
    )


def session_user(conn: sa.Connection, token_hash: str, now: datetime) -> User | None:
    s, u = m.web_session.c, m.web_user.c
    r = conn.execute(
        sa.select(m.web_user)
        .join(m.web_session, s.user_name == u.name)
        .where(s.token_hash == token_hash, s.expires_at > now, ~u.disabled)
    ).first()
    return None if r is None else _user(r)


def end_session(conn: sa.Connection, token_hash: str) -> None:
    conn.execute(sa.delete(m.web_session).where(m.web_session.c.token_hash == token_hash))


def end_sessions(conn: sa.Connection, name: str) -> None:
    conn.execute(sa.delete(m.web_session).where(m.web_session.c.user_name == name))


# ---- API tokens -------------------------------------------------------------------------------
def add_token(
    conn: sa.Connection, token_hash: str, name: str, label: str, now: datetime, expires_at: datetime | None
) -> Token:
    _require(conn, name)
    tid = conn.execute(
        sa.insert(m.api_token)
        .values(token_hash=token_hash, user_name=name, label=label, created_at=now, expires_at=expires_at)
        .returning(m.api_token.c.id)
    ).scalar_one()
    return Token(int(tid), name, label, now, expires_at, None)


def token_user(conn: sa.Connection, token_hash: str, now: datetime) -> User | None:
    t, u = m.api_token.c, m.web_user.c
    r = conn.execute(
        sa.select(m.web_user, t.id.label("token_id"), t.last_used_at)
        .join(m.api_token, t.user_name == u.name)
        .where(t.token_hash == token_hash, sa.or_(t.expires_at.is_(None), t.expires_at > now), ~u.disabled)
    ).first()
    if r is None:
        return None
    if r.last_used_at is None or (now - r.last_used_at).total_seconds() > 60:  # not a write per request
        conn.execute(sa.update(m.api_token).where(t.id == r.token_id).values(last_used_at=now))
    return _user(r)


def list_tokens(conn: sa.Connection, name: str | None = None) -> list[Token]:
    q = sa.select(m.api_token).order_by(m.api_token.c.id)
    if name is not None:
        q = q.where(m.api_token.c.user_name == name)
    return [_token(r) for r in conn.execute(q)]


def revoke_token(conn: sa.Connection, token_id: int, name: str | None = None) -> Token:
    """Revoke a token (only ``name``'s own, when given); returns what it was."""
    q = sa.select(m.api_token).where(m.api_token.c.id == token_id)
    if name is not None:
        q = q.where(m.api_token.c.user_name == name)
    found = conn.execute(q).first()
    if found is None:
        raise NotFound(f"no API token #{token_id}" + (f" of {name}" if name else ""))
    conn.execute(sa.delete(m.api_token).where(m.api_token.c.id == token_id))
    return _token(found)


def end_tokens(conn: sa.Connection, name: str) -> int:
    """Revoke every API token of a user; returns how many there were."""
    return int(conn.execute(sa.delete(m.api_token).where(m.api_token.c.user_name == name)).rowcount)
