"""pytest fixtures (and a plain context manager) for the BambooHR sandbox.

Usage::

    def test_x(bamboohr_sandbox):                    # 300 employees, seed 7
        options = bamboohr_sandbox.source_options()  # set BAMBOOHR_API_KEY to bamboohr_sandbox.api_key
        ...

    def test_y(make_bamboohr_sandbox):
        box = make_bamboohr_sandbox(employees=10_000, seed=3)   # started, stopped at teardown
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from okrsync.sandboxes.bamboohr import BambooHrSandbox


@contextmanager
def running_bamboohr_sandbox(**kwargs: Any) -> Iterator[BambooHrSandbox]:
    """Start a sandbox (kwargs go to :class:`BambooHrSandbox`), yield it, stop it."""
    box = BambooHrSandbox(**kwargs).start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def bamboohr_sandbox() -> Iterator[BambooHrSandbox]:
    """A started sandbox with the default seeded company (seed 7, 300 employees, 3 deleted)."""
    with running_bamboohr_sandbox() as box:
        yield box


@pytest.fixture
def make_bamboohr_sandbox() -> Iterator[Callable[..., BambooHrSandbox]]:
    """A factory: ``make_bamboohr_sandbox(employees=..., seed=..., org=...)``; stopped at teardown."""
    started: list[BambooHrSandbox] = []

    def make(**kwargs: Any) -> BambooHrSandbox:
        box = BambooHrSandbox(**kwargs).start()
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()
