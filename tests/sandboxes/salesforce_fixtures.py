"""pytest fixtures (and a plain context manager) for the Salesforce sandbox.

Usage::

    def test_x(salesforce_sandbox):                  # 2,000 opportunities, seed 7
        sf = salesforce_sandbox.client()             # simple_salesforce.Salesforce over HTTPS
        ...

    def test_y(make_salesforce_sandbox):
        box = make_salesforce_sandbox(opportunities=5000, seed=3)   # started, stopped at teardown
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from okrsync.sandboxes.salesforce import SalesforceSandbox


@contextmanager
def running_salesforce_sandbox(**kwargs: Any) -> Iterator[SalesforceSandbox]:
    """Start a sandbox (kwargs go to :class:`SalesforceSandbox`), yield it, stop it."""
    box = SalesforceSandbox(**kwargs).start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def salesforce_sandbox() -> Iterator[SalesforceSandbox]:
    """A started sandbox with the default seeded org (seed 7, 500 accounts, 2,000 opportunities)."""
    with running_salesforce_sandbox() as box:
        yield box


@pytest.fixture
def make_salesforce_sandbox() -> Iterator[Callable[..., SalesforceSandbox]]:
    """A factory: ``make_salesforce_sandbox(opportunities=..., seed=..., org=...)``; stopped at teardown."""
    started: list[SalesforceSandbox] = []

    def make(**kwargs: Any) -> SalesforceSandbox:
        box = SalesforceSandbox(**kwargs).start()
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()
