"""The sign-in throttle and the drill-down rate limit, on a clock the test moves (no sleeping)."""

from __future__ import annotations

from okrsync.throttle import RateLimit, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_close_one_name_from_one_address_only() -> None:
    clock = Clock()
    t = Throttle(attempts=5, window=300, clock=clock)
    closed = [t.failed("lea", "203.0.113.9") for _ in range(5)]
    assert closed == [False, False, False, False, True]  # the fifth closes the pair (and is logged)
    assert t.blocked_for("lea", "203.0.113.9") == 300
    assert t.blocked_for("lea", "127.0.0.1") == 0  # the real user, elsewhere, is not locked out
    assert t.blocked_for("ada", "203.0.113.9") == 0
    clock.now += 300
    assert t.blocked_for("lea", "203.0.113.9") == 0


def test_one_address_guessing_across_names_is_closed_too() -> None:
    t = Throttle(attempts=5, per_address=20, clock=Clock())
    for i in range(20):
        t.failed(f"name{i}", "203.0.113.9")
    assert t.blocked_for("someone-else", "203.0.113.9") > 0
    assert t.blocked_for("someone-else", "198.51.100.4") == 0


def test_the_throttle_stays_bounded_whatever_the_flood() -> None:
    clock = Clock()
    t = Throttle(keys=100, clock=clock)
    for i in range(5000):
        t.failed(f"made-up-{i}", f"10.0.{i // 250}.{i % 250}")
        clock.now += 0.01
    assert t.size() <= 200


def test_a_success_clears_the_pair() -> None:
    t = Throttle(attempts=3, clock=Clock())
    t.failed("lea", "127.0.0.1")
    t.failed("lea", "127.0.0.1")
    t.succeeded("lea", "127.0.0.1")
    assert not t.failed("lea", "127.0.0.1")


def test_rate_limit_counts_per_key_and_says_how_long_to_wait() -> None:
    clock = Clock()
    r = RateLimit(3, 60, clock=clock)
    assert [r.take("lea") for _ in range(3)] == [0, 0, 0]
    clock.now += 10
    assert r.take("lea") == 50  # the first of the three leaves the window in 50 s
    assert r.take("ada") == 0
    clock.now += 50
    assert r.take("lea") == 0
