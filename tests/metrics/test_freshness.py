"""The freshness check on a stream's newest cursor value, including values dated in the future
(issue #12: "newest record is -18.8 h old" passed)."""

from __future__ import annotations

from datetime import datetime, timedelta

from metrics.quality import CheckSpec, freshness

NOW = datetime(2026, 12, 7, 1, 12)
CHECK = CheckSpec.model_validate({"freshness": {"max_age_hours": 24}})


def test_a_newest_record_ahead_of_the_clock_fails_instead_of_a_negative_age() -> None:
    o = freshness(CHECK, NOW + timedelta(hours=18, minutes=48), NOW)
    assert not o.success and o.observed is not None
    assert "dated in the future, 18.8 h ahead" in o.observed and "-" not in o.observed.split("UTC")[1]


def test_the_connectors_count_of_future_records_is_the_finding() -> None:
    said = "2 records dated in the future (up to 2026-12-07 20:00 UTC)"
    o = freshness(CHECK, NOW - timedelta(hours=1), NOW, said)
    assert not o.success and o.observed == said


def test_fresh_and_stale_records() -> None:
    assert freshness(CHECK, NOW - timedelta(hours=2), NOW).success
    assert freshness(CHECK, NOW + timedelta(seconds=30), NOW).success  # clocks differ a little
    stale = freshness(CHECK, NOW - timedelta(hours=30), NOW)
    assert not stale.success and stale.observed is not None and "30.0 h old" in stale.observed
