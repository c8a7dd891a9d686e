"""Store templates: a store built once per test session (per xdist worker) and copied for each test.

Migrating a store costs about 0.4 s on SQLite and 1.2 s on PostgreSQL on a loaded 2-core machine, and
some fixtures also sync the same rows into it for every case. A template is built the first time a test
asks for it, by the same code a test would run (``Store(url)`` migrates; a fixture's own builder syncs),
and each test then gets a private copy: a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on
PostgreSQL. A test that writes writes to its own copy only, so tests stay independent.

PostgreSQL refuses to clone a database while anyone is connected to it, so a builder must close every
engine it opened (``Store.close()``); a clone that finds the template in use fails with PostgreSQL's
own message rather than waiting. Templates are dropped when the session ends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from okr_store.store import Store

Builder = Callable[[str], None]  # fills the (empty) store at this URL and closes every engine it opened

POSTGRES_ENV = "OKRSYNC_TEST_POSTGRES_URL"


def migrated(url: str) -> None:
    """The plain template: an empty store at the current schema."""
    Store(url).close()


@contextmanager
def store_at_revision(url: str, revision: str) -> Iterator[sa.Connection]:
    """A store as an older okrsync left it: migrated up to ``revision`` only, in a transaction the test
    fills with that version's rows; committed and closed on leaving, so ``Store(url)`` upgrades it."""
    from alembic import command
    from alembic.config import Config

    from okr_store.store import MIGRATIONS, create_engine

    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            yield conn
    finally:
        engine.dispose()


class StoreTemplates:
    """One process's templates, by name: SQLite files under ``root``, PostgreSQL template databases."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, Path] = {}
        self._databases: dict[str, str] = {}
        self._admin: sa.Engine | None = None

    # ---- SQLite --------------------------------------------------------------------------------
    def sqlite_url(self, name: str, build: Builder, dest: Path) -> str:
        """The URL of a private copy (at ``dest``) of the SQLite template ``name``."""
        src = self._files.get(name)
        if src is None:
            src = self.root / f"{name}.db"
            src.unlink(missing_ok=True)  # a build that failed before: start again from nothing
            build(f"sqlite:///{src}")
            leftovers = [p.name for p in src.parent.glob(f"{src.name}-*")]  # WAL/journal left open
            assert not leftovers, f"template {name}: an engine of its builder is still open ({leftovers})"
            self._files[name] = src
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)  # copy2 keeps the owner-only mode the store gives its file
        return f"sqlite:///{dest}"

    # ---- PostgreSQL ----------------------------------------------------------------------------
    def _admin_engine(self) -> sa.Engine:
        admin_url = os.environ.get(POSTGRES_ENV)
        if not admin_url:
            pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server for this test (.ci/run sets it)")
        if self._admin is None:
            self._admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        return self._admin

    def _create(self, name: str, template: str | None = None) -> str:
        admin = self._admin_engine()
        sql = f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(sql))
        except sa.exc.OperationalError as exc:  # the variable is set: an unreachable server is a failure
            pytest.fail(f"{POSTGRES_ENV} is set but the PostgreSQL server is unreachable: {exc.orig}")
        return admin.url.set(database=name).render_as_string(hide_password=False)

    def _drop(self, name: str) -> None:
        with self._admin_engine().connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def postgres_url(self, name: str, build: Builder) -> Iterator[str]:
        """The URL of a fresh PostgreSQL database cloned from the template ``name`` (dropped afterwards)."""
        template = self._databases.get(name)
        if template is None:
            template = f"okrsync_tpl_{uuid.uuid4().hex[:12]}"
            url = self._create(template)
            try:
                build(url)
            except BaseException:
                self._drop(template)  # never clone a half-built template: the next test builds again
                raise
            self._databases[name] = template
        clone = f"okrsync_t_{uuid.uuid4().hex[:12]}"
        url = self._create(clone, template)
        try:
            yield url
        finally:
            self._drop(clone)

    def close(self) -> None:
        if self._admin is None:
            return
        for template in self._databases.values():
            self._drop(template)
        self._admin.dispose()


def store_templates_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreTemplates]:
    templates = StoreTemplates(tmp_path_factory.mktemp("store-templates"))
    try:
        yield templates
    finally:
        templates.close()


@contextmanager
def template_store_url(
    request: pytest.FixtureRequest, backend: str, name: str, build: Builder, dest: Path
) -> Iterator[str]:
    """A private copy of the template ``name`` on ``backend`` ("sqlite" or "postgres")."""
    templates: StoreTemplates = request.getfixturevalue("store_templates")
    if backend == "sqlite":
        yield templates.sqlite_url(name, build, dest)
    else:
        assert backend == "postgres", backend
        yield from templates.postgres_url(name, build)
