"""Opening the store for commands that only read it, and saying what to do when it cannot be written.

Read commands (``status``, ``history``, ``drill``, ``diff``, ``checks``) never write: when the store's
schema is current they open it without migrating, and an embedded SQLite store read-only
(``mode=ro``), so they work on a store in a directory this user cannot write (a backup, a copy, a
read-only mount, a store owned by the service that runs the syncs).

SQLite's write-ahead log needs a ``-shm`` file next to the database. When ``mode=ro`` cannot open the
store because there is none and this user may not create one, no writer has the store open (a writer
keeps that file while connected); with no ``-wal`` file either (or an empty one), the database file
holds every commit, and it is opened ``immutable``. A non-empty ``-wal`` left there cannot be read
without write access, and the error says so.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event

from okrsync.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
READERS = "status, history, drill, diff and checks"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite store URL (None for other databases and in-memory ones)."""
    parsed = sa.make_url(url)
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(os.path.abspath(db))


def writable(path: Path) -> bool:
    """Whether this user can write the store file and the directory its journal files go in."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def cannot_write(path: Path, why: object) -> StoreError:
    """The error of a command that must write a SQLite store it cannot write, with the fix."""
    folder = path.parent
    return StoreError(
        f"cannot write the store {path}: {why}",
        hint=f"this command writes to the store: make {folder} and the files in it writable by this user, "
             f"or set OKRSYNC_STORE_URL to a store you can write ({READERS} also work on a read-only store)",
    )


def _read_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def _uri(path: Path, mode: str) -> str:
    return f"file:{quote(str(path))}?{mode}"


def _readable(path: Path, mode: str) -> bool:
    try:
        conn = sqlite3.connect(_uri(path, mode), uri=True)
    except sqlite3.Error:
        return False
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def sqlite_read_only(path: Path) -> sa.Engine:
    """An engine that only reads the SQLite store at ``path`` (which exists); StoreError if it cannot."""
    if not os.access(path, os.R_OK):
        raise StoreError(f"cannot read the store {path}: permission denied",
                         hint=f"ask for read access to {path}, or run the command as its owner")
    mode = "mode=ro"
    if not _readable(path, mode):
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"cannot read the store {path} read-only: its write-ahead log {wal.name} holds commits "
                "that SQLite can only read with write access to the directory",
                hint=f"run any okrsync command once with write access to {path.parent} (it folds the log "
                     "into the store), or copy the folder somewhere writable",
            )
        mode = "mode=ro&immutable=1"  # no log: the file holds every commit (see the module's docstring)
        if not _readable(path, mode):
            raise StoreError(f"cannot read the store {path}: it is not an SQLite database okrsync can open",
                             hint="check OKRSYNC_STORE_URL, or run `okrsync run` to create the store")
    url = sa.URL.create("sqlite", database=_uri(path, mode), query={"uri": "true"})
    engine = sa.create_engine(url, hide_parameters=True)
    event.listen(engine, "connect", _read_pragmas)
    return engine


# ``revision = "0014"`` and ``down_revision = "0012"`` (or None, or a tuple of merged parents) in the
# header every migration file has: read as text, so checking a store needs no alembic import (~0.1 s of
# every read command's start). tests/okr_store/test_opening.py holds it equal to alembic's own heads.
_REVISION = re.compile(r"^revision(?:\s*:[^=]*)?\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def migration_heads(versions: Path = MIGRATIONS / "versions") -> set[str]:
    """The newest migration(s) of the store's schema: revisions no other migration revises."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            continue
        revisions.add(found[1])
        down = _DOWN.search(text)
        if down is not None:
            parents.update(_QUOTED.findall(down[1]))
    return revisions - parents


def stored_heads(conn: sa.Connection) -> set[str]:
    """The revisions the store's ``alembic_version`` table holds (none for a store never migrated)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return set()
    return set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def at_head(engine: sa.Engine) -> bool:
    """Whether the store's schema is at the newest migration (nothing to migrate)."""
    with engine.connect() as conn:
        return stored_heads(conn) == migration_heads()


def read_only_engine(url: str, make_engine: Callable[[str], sa.Engine]) -> sa.Engine | None:
    """An engine that never writes, if the store exists and needs no migration; None when the store
    must be created or migrated first (by an engine of ``make_engine``, as for any command)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        if not writable(path):
            raise StoreError(f"there is no store at {path} yet, and this user cannot create one",
                             hint=f"run `okrsync run` first as a user who can write {path.parent}, or "
                                  "set OKRSYNC_STORE_URL to the project's store")
        return None
    engine = sqlite_read_only(path) if path is not None else make_engine(url)
    try:
        current = at_head(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise open_error(url, exc) from None
    if current:
        return engine
    engine.dispose()
    if path is not None and not writable(path):
        raise StoreError(
            f"the store {path} was written by an older okrsync and must be upgraded, which needs write "
            "access",
            hint=f"run `okrsync run` once as a user who can write {path.parent}",
        )
    return None


def open_error(url: str, exc: sa.exc.OperationalError) -> StoreError:
    """What to say when the store cannot be opened: for SQLite the file and the fix, else the server."""
    path = sqlite_path(url)
    if path is None:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        return StoreError(f"cannot open the store at {shown}: {exc.orig}",
                          hint="check the store URL (OKRSYNC_STORE_URL) and that the server is up")
    if not writable(path):
        return cannot_write(path, exc.orig)
    return StoreError(
        f"cannot open the store {path}: {exc.orig}",
        hint="check that it is an okrsync store (OKRSYNC_STORE_URL, else .okrsync/store.db next to the "
             "project file) and that the disk is not full",
    )
