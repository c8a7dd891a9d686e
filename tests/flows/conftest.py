"""The session's Prefect API for the flow tests, and a demo ERP + project per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.prefect_shared import shared_server, use_api

TODAY = date(2026, 11, 20)


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Flows of this process report to the session's one Prefect server (tests/prefect_shared.py)."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        }
    )
    with use_api(shared_server(tmp_path_factory).url):
        yield


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from okrsync import demo

    d = tmp_path_factory.mktemp("demo-template") / "demo"
    demo.build(d, today=TODAY)
    return d


@pytest.fixture
def demo_dir(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo (ERP + project file) for one test."""
    d = tmp_path / "demo"
    shutil.copytree(demo_template, d)
    return d
