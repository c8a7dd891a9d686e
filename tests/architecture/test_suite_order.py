"""The suite's longest-first order (tests/conftest.py) names files that exist: a renamed file would
otherwise drop to the end of the queue quietly, and the suite would again end on one busy worker."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LONGEST_FIRST

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_of_the_longest_first_order_exists() -> None:
    missing = [path for path in LONGEST_FIRST if not (ROOT / path).is_file()]
    assert not missing, f"tests/conftest.py LONGEST_FIRST names files that do not exist: {missing}"
