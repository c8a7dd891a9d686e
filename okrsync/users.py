"""Who may sign in to the web app: password hashing (argon2), session and API tokens (the sign-in
throttle is :mod:`okrsync.throttle`).

Passwords are hashed with argon2id (argon2-cffi's defaults); session and API tokens are 256-bit random
strings of which the store keeps only the SHA-256, so a copy of the store opens nothing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from okrsync.errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from argon2 import PasswordHasher

    from okr_store import users as stored

TOKEN_PREFIX = "okr_"
MIN_PASSWORD = 10
TOKEN_DAYS = 90  # an API token's default lifetime (migration 0009 gave older tokens the same)
MAX_TOKEN_DAYS = 365
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2, loaded by the commands that hash or verify (``status`` and ``drill`` never do)."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
    Made on first use: an argon2 hash costs ~0.2 s, which commands that never verify should not pay."""
    return _hasher().hash(secrets.token_urlsafe(16))


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid user name",
            hint="use letters, digits, '.', '_', '@' or '-', up to 100 characters",
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(
            f"the password is too short ({len(password)} characters)",
            hint=f"use at least {MIN_PASSWORD} characters",
        )
    return password


def check_role(project: Any, role: str) -> str:
    if role not in project.settings.roles:
        raise ConfigError(
            f"role {role!r} is not one of the project's roles",
            hint=f"roles: {', '.join(project.settings.roles)} (settings.roles)",
        )
    return role


def hash_password(password: str) -> str:
    return _hasher().hash(check_password(password))


def verify_password(conn: sa.Connection, name: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    from okr_store import users as stored  # the store only when a command uses it: `status` never does

    found = stored.password_hash(conn, name)
    try:
        return _hasher().verify(found or _dummy(), password) and found is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def csrf_for(session_token: str) -> str:
    """The CSRF token of a session: derived from the session token, so nothing more is stored and a
    page on another origin, which cannot read the cookie, cannot forge it."""
    return hmac.new(session_token.encode(), b"okrsync csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(csrf_for(session_token), given)


def start_session(conn: sa.Connection, name: str, hours: float) -> str:
    from okr_store import users as stored

    token = new_token()
    now = utcnow()
    stored.add_session(conn, digest(token), name, now, now + timedelta(hours=hours))
    return token


def issue_token(
    conn: sa.Connection, name: str, label: str, days: int = TOKEN_DAYS
) -> tuple[str, stored.Token]:
    """A new API token for ``name``, expiring after ``days`` (every token expires)."""
    from okr_store import users as stored

    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise ConfigError(f"an API token lasts 1 to {MAX_TOKEN_DAYS} days, not {days}",
                          hint=f"the default is {TOKEN_DAYS}; make a new one when it ends")
    token = new_token()
    now = utcnow()
    return token, stored.add_token(conn, digest(token), name, label, now, now + timedelta(days=days))


def user_of_session(conn: sa.Connection, token: str) -> stored.User | None:
    from okr_store import users as stored

    return stored.session_user(conn, digest(token), utcnow())


def user_of_token(conn: sa.Connection, token: str) -> stored.User | None:
    from okr_store import users as stored

    if not token.startswith(TOKEN_PREFIX):
        return None
    return stored.token_user(conn, digest(token), utcnow())
