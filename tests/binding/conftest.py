"""A demo (ERP + project file) built once per session; each test gets a private copy."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

TODAY = date(2026, 11, 20)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from okrsync import demo

    d = tmp_path_factory.mktemp("binding-demo") / "demo"
    demo.build(d, today=TODAY)
    return d


@pytest.fixture
def demo_dir(demo_template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "demo"
    shutil.copytree(demo_template, d)
    return d
