"""Shared fixtures: throwaway databases on the real servers of this machine.

PostgreSQL tests read ``OKRSYNC_TEST_POSTGRES_URL`` (an admin URL such as
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and MariaDB tests read
``OKRSYNC_TEST_MARIADB_URL``; each test gets a database of its own, dropped afterwards. Without the
variable the tests are skipped with a reason; ``.ci/run`` sets them and fails if a server is down.

Tests marked ``slow`` (end-to-end cases of minutes each) run when ``OKRSYNC_TEST_SLOW`` is set, as
``.ci/run`` does; README command 2 skips them with that reason, to stay within its time budget.

Order: pytest-xdist hands each worker whole files (``--dist loadfile``) in collection order
(``--no-loadscope-reorder``), and the files below, the longest, go first: longest-first keeps every
worker busy to the end instead of leaving one to finish a Tryton build or a Prefect server test
alone. The list is ordered by measured time (``--durations``); a file missing from it only runs later.

Four workers on two cores (``-n 4``): much of the suite waits on other processes (the Prefect server's
scheduler and workers, Chromium, the sandboxes, subprocess CLIs), so two workers left the cores a
third idle. Measured on 2 cores, the whole `.ci/run`: ``-n 2`` 15:09, ``-n 4`` 12:44, ``-n 6`` 13:14.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

SLOW_ENV = "OKRSYNC_TEST_SLOW"
LONGEST_FIRST = [
    # each builds a Tryton database through Tryton's API (minutes of CPU, unless cached), then the pack
    "tests/flows/test_tryton_pack_postgresql.py",
    "tests/flows/test_tryton_pack_sqlite.py",
    # then by measured time (`--durations=0` summed per file, 2026-12-07), longest first
    "tests/okrsync/test_cli.py",
    "tests/okr_store/test_drill.py",
    "tests/web/test_browser.py",  # Chromium
    "tests/okrsync/test_first_steps.py",
    "tests/flows/test_leases.py",
    "tests/prefect_server/test_cancel.py",  # a real `prefect server start`, shared by the workers
    "tests/okrsync/test_reconcile.py",
    "tests/flows/test_hr_pack.py",
    "tests/flows/test_run.py",
    "tests/web/test_api.py",
    "tests/flows/test_checks.py",
    "tests/okrsync/test_plan.py",
    "tests/prefect_server/test_dask.py",
    "tests/flows/test_salesforce_sync.py",
    "tests/connectors/test_sql_key_digests.py",
    "tests/prefect_server/test_schedule.py",
    "tests/prefect_server/test_failed_state.py",
    # the connector on both Tryton builds: late, so each build is done by then (without PostgreSQL,
    # one worker builds SQLite while the other runs the files above)
    "tests/connectors/test_tryton_sql_postgresql.py",
    "tests/connectors/test_tryton_sql_sqlite.py",
    "tests/prefect_server/test_pull_step.py",
]


def _longest_first(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _longest_first(items)
    if os.environ.get(SLOW_ENV):
        return
    skip = pytest.mark.skip(reason=f"a slow end-to-end case: .ci/run runs it ({SLOW_ENV}=1 runs it here)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The session's Prefect server (tests/prefect_shared.py) stops when the whole session is done:
    in the xdist controller (its temporary root is the one the workers share), or the only process."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from tests.prefect_shared import stop_shared_server

    factory = getattr(session.config, "_tmp_path_factory", None)
    root = getattr(factory, "_basetemp", None)  # None: no temporary folder, so no server either
    if root is not None:
        stop_shared_server(root)


def _server_database(env: str, what: str) -> Iterator[str]:
    admin_url = os.environ.get(env)
    if not admin_url:
        pytest.skip(f"{env} is not set: no {what} server for this test (.ci/run sets it)")
    admin = sa.make_url(admin_url)
    name = f"okrsync_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:  # the variable is set: an unreachable server is a failure
        pytest.fail(f"{env} is set but the {what} server is unreachable: {exc.orig}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            if admin.get_backend_name() == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    yield from _server_database("OKRSYNC_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreTemplates]:
    """Stores built once per session (per worker) and copied per test (tests/store_templates.py)."""
    yield from store_templates_fixture(tmp_path_factory)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """The URL of a fresh, empty MariaDB database (dropped after the test)."""
    yield from _server_database("OKRSYNC_TEST_MARIADB_URL", "MariaDB")


# The loopback Salesforce sandbox, for connector, flow and CLI tests alike.
from tests.sandboxes.bamboohr_fixtures import bamboohr_sandbox, make_bamboohr_sandbox  # noqa: E402
from tests.sandboxes.salesforce_fixtures import make_salesforce_sandbox, salesforce_sandbox  # noqa: E402
from tests.store_templates import StoreTemplates, store_templates_fixture  # noqa: E402

__all__ = ["bamboohr_sandbox", "make_bamboohr_sandbox", "make_salesforce_sandbox", "mariadb_url", "pg_url",
           "salesforce_sandbox", "store_templates"]
