"""Fixtures for connector tests: the same source database on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.sql import SqlConnector


@dataclass
class Db:
    """A throwaway source database: ``admin`` may write (to set data up), connectors may not."""

    backend: str  # sqlite | postgresql | mysql
    url: str  # as a project file would hold it (no password; SQLite relative to base_dir)
    admin: sa.Engine
    base_dir: Path
    opened: list[SqlConnector] = field(default_factory=list)

    def connector(self, **options: Any) -> SqlConnector:
        """A connector on this database (closed after the test)."""
        conn = SqlConnector("erp", {"url": self.url, **options}, self.base_dir)
        self.opened.append(conn)
        return conn

    def execute(self, sql: str, params: Any = None) -> None:
        with self.admin.begin() as conn:
            conn.execute(sa.text(sql), params)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """One fresh database per test, parametrized over the three backends."""
    if request.param == "sqlite":
        url = "sqlite:///data/src.db"  # relative: resolved against base_dir
        (tmp_path / "data").mkdir()
        admin = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'src.db'}")
    else:
        url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
        admin = sa.create_engine(url)
    with admin.connect():  # the SQLite file must exist before a read-only connector opens it
        pass
    database = Db(request.param, url, admin, tmp_path)
    try:
        yield database
    finally:
        for conn in database.opened:
            conn.close()
        admin.dispose()
