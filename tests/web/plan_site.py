"""The small project of tests/okrsync/test_plan.py (an ERP of ten orders, run as of T1 and T2), served
on loopback with one user per role, for the ``/plan`` page and its API (``plan_server``: a private
copy per test). The revenue metric's filter is changed by the tests (``change_revenue_filter``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from okr_store import users as stored
from okr_store.store import Store
from okrsync import users
from okrsync.project import load_project
from tests.okrsync.test_plan import sqlite_built  # noqa: F401 (fixture: the project, built once)
from tests.web.conftest import Site, serving

USERS = {"viewer": "vera", "leadership": "lea", "editor": "eddie", "admin": "ada"}


def password(role: str) -> str:
    return f"{USERS[role]}-secret-pw-1"


@pytest.fixture
def plan_server(sqlite_built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:  # noqa: F811
    for name in ("OKRSYNC_PROJECT", "OKRSYNC_ROLE", "PREFECT_API_URL", "OKRSYNC_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    template = Site(sqlite_built, users={r: (n, password(r)) for r, n in USERS.items()})
    with serving(template, tmp_path / "project") as site:
        store = Store(load_project(site.project_file).store_url())
        with store.engine.begin() as conn:
            for role, name in USERS.items():
                stored.add_user(conn, name, role, users.hash_password(password(role)), users.utcnow())
        store.close()
        yield site
