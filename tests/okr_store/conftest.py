from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from okr_store.store import Store
from tests.store_templates import migrated, template_store_url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both supported store backends: SQLite and PostgreSQL."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store on the backend (no schema yet): a SQLite file, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def migrated_store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store at the current schema on the backend: a private copy of the session's migrated template."""
    if "store_url" in request.fixturenames:  # the two would be different databases
        pytest.fail("a test asks for both store_url (empty) and store (a migrated copy): pick one")
    with template_store_url(request, backend, "migrated", migrated, tmp_path / "store.db") as url:
        yield url


@pytest.fixture
def store(migrated_store_url: str) -> Iterator[Store]:
    s = Store(migrated_store_url)  # opening a current store still runs (and checks) the migrations
    yield s
    s.close()
