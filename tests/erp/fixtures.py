"""pytest fixtures: a Tryton database built once per session, and a private copy of it per test.

Import them at the top of a test file (they are not in a conftest, so any test folder can use them)::

    from tests.erp.fixtures import tryton_postgres, tryton_sqlite, tryton_sqlite_template  # noqa: F401

* ``tryton_sqlite`` — a copy of the SQLite build, ``<tmp>/tryton/tryton.sqlite``, for one test.
* ``tryton_postgres`` — ``CREATE DATABASE … TEMPLATE <the build>`` for one test, dropped afterwards.
  Needs ``OKRSYNC_TEST_POSTGRES_URL`` (skipped with the reason when unset).

Both give a :class:`TrytonDb`. The build (:mod:`tests.erp.tryton_build`, ``TEST_ORDERS`` orders) runs
once per session and backend, also under pytest-xdist: the workers share it through a lock. Set
``OKRSYNC_TRYTON_CACHE`` to a folder to keep the SQLite build there, and the PostgreSQL template on the
server, across sessions; both are keyed by a hash of the builder's source, Tryton's version and the
parameters, so a changed builder never reuses a stale database.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.erp import tryton_api
from tests.erp.tryton_build import Target, build_tryton, builder_hash

TEST_ORDERS = 60  # enough for every metric in every quarter; the build costs ~1 s of CPU per order
TEST_SEED = 3
TEST_TODAY = date(2026, 11, 20)
CACHE_ENV = "OKRSYNC_TRYTON_CACHE"
# Fixtures imported into several test modules are separate fixtures to pytest, each "session-scoped"
# on its own: the builds are keyed by this process's session, so that the second one finds the first.
_SESSION = uuid.uuid4().hex
PG_ENV = "OKRSYNC_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class TrytonDb:
    """A Tryton database of one test: ``url`` for okrsync, :meth:`api` for Tryton's own API."""

    backend: str  # sqlite | postgresql
    target: Target
    summary: dict[str, Any]  # what the build reported (tests.erp.tryton_build)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL an okrsync ``kind: sql`` source takes (``url`` or ``url_env``)."""
        return self.target.sqlalchemy_url

    def api(self, command: str, *args: str) -> dict[str, Any]:
        """Run a :mod:`tests.erp.tryton_api` command on this database (a Tryton process of its own)."""
        return tryton_api.call(command, self.target, *args)


@dataclass(frozen=True)
class _Template:
    key: str
    summary: dict[str, Any]
    path: Path | None = None  # SQLite
    name: str | None = None  # PostgreSQL


def _key() -> str:
    return builder_hash(TEST_ORDERS, TEST_SEED, TEST_TODAY)[:16]


def _shared_dir(factory: pytest.TempPathFactory) -> Path:
    """A folder this session's xdist workers share (one session's temp root), or the cache folder."""
    if cache := os.environ.get(CACHE_ENV):
        path = Path(cache)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        path = factory.getbasetemp().parent / "tryton"
    else:
        path = factory.getbasetemp() / "tryton"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(target: str) -> dict[str, Any]:
    return build_tryton(target, orders=TEST_ORDERS, seed=TEST_SEED, today=TEST_TODAY, force=True)


@pytest.fixture(scope="session")
def tryton_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> _Template:
    """The SQLite build of this session (or of the cache folder): built once, never written to."""
    shared, key = _shared_dir(tmp_path_factory), _key()
    path, meta = shared / f"tryton-{key}.sqlite", shared / f"tryton-{key}.json"
    with _locked(shared / f"tryton-{key}.lock"):
        if not (path.is_file() and meta.is_file()):
            meta.write_text(json.dumps(_build(str(path))))  # the file appears only once complete
    return _Template(key, json.loads(meta.read_text()), path=path)


@pytest.fixture
def tryton_sqlite(tryton_sqlite_template: _Template, tmp_path: Path) -> TrytonDb:
    """A private copy of the SQLite Tryton database (Tryton names it ``tryton.sqlite``)."""
    assert tryton_sqlite_template.path is not None
    copy = tmp_path / "tryton" / "tryton.sqlite"
    copy.parent.mkdir()
    shutil.copyfile(tryton_sqlite_template.path, copy)
    return TrytonDb("sqlite", Target.parse(copy), tryton_sqlite_template.summary)


def _admin() -> sa.Engine:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server for this test (.ci/run sets it)")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _exists(conn: sa.Connection, name: str) -> bool:
    found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
    return found is not None


@pytest.fixture(scope="session")
def tryton_pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Template]:
    """The PostgreSQL build of this session: a template database that tests copy.

    xdist workers of one run share it (same name, built under an advisory lock); the last worker that
    used it drops it, unless OKRSYNC_TRYTON_CACHE keeps it for later sessions.
    """
    admin, key = _admin(), _key()
    keep = bool(os.environ.get(CACHE_ENV))
    run = "cache" if keep else os.environ.get("PYTEST_XDIST_TESTRUNUID", _SESSION)[:8]
    name = f"okrsync_tryton_{key[:12]}_{run}"
    shared, me = _shared_dir(tmp_path_factory), os.environ.get("PYTEST_XDIST_WORKER", "main")
    users, meta = shared / f"{name}.users", shared / f"{name}.json"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": name})
            try:
                if not _exists(conn, name) or not meta.is_file():
                    building = f"{name}_b"  # renamed once complete: a killed build is never reused
                    url = sa.make_url(os.environ[PG_ENV]).set(database=building)
                    summary = _build(url.render_as_string(hide_password=False))
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                    conn.execute(sa.text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
                    meta.write_text(json.dumps(summary))
                with _locked(users):
                    users.write_text(users.read_text() + me + "\n" if users.exists() else me + "\n")
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": name})
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{PG_ENV} is set but the PostgreSQL server is unreachable: {exc.orig}")
    try:
        yield _Template(key, json.loads(meta.read_text()), name=name)
    finally:
        with _locked(users):
            left = users.read_text().split()
            left.remove(me)  # one use: the same worker may hold it through several test modules
            users.write_text("".join(f"{u}\n" for u in left))
            if not left and not keep:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                meta.unlink(missing_ok=True)
        admin.dispose()


@pytest.fixture
def tryton_postgres(tryton_pg_template: _Template) -> Iterator[TrytonDb]:
    """A private PostgreSQL copy of the Tryton database (``CREATE DATABASE … TEMPLATE``), dropped after."""
    admin = _admin()
    name = f"okrsync_t_tryton_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{tryton_pg_template.name}"'))
    url = sa.make_url(os.environ[PG_ENV]).set(drivername="postgresql", database=name)
    try:
        yield TrytonDb("postgresql", Target.parse(url.render_as_string(hide_password=False)),
                       tryton_pg_template.summary)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def tryton_for(request: pytest.FixtureRequest, backend: str) -> TrytonDb:
    """The private Tryton database of a test on ``backend`` (sqlite | postgresql)."""
    name = {"sqlite": "tryton_sqlite", "postgresql": "tryton_postgres"}[backend]
    db: TrytonDb = request.getfixturevalue(name)
    return db


@pytest.fixture(params=["sqlite", "postgresql"])
def tryton_db(request: pytest.FixtureRequest) -> TrytonDb:
    """A private Tryton database, on SQLite and on PostgreSQL."""
    return tryton_for(request, request.param)


__all__ = ["TrytonDb", "tryton_db", "tryton_for", "tryton_pg_template", "tryton_postgres", "tryton_sqlite",
           "tryton_sqlite_template"]
