"""Token bucket and sliding window on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from choir.auth import SlidingWindow, TokenBucket


class Ticks:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_full_bucket_allows_a_burst_of_its_capacity_then_refuses() -> None:
    clock = Ticks()
    bucket = TokenBucket(clock=clock)  # the socket's limit: burst 100, refill 100/min
    assert all(bucket.take() for _ in range(100))
    assert not bucket.take()
    assert bucket.retry_after_s() == pytest.approx(0.6)


def test_tokens_refill_at_the_rate_and_stop_at_capacity() -> None:
    clock = Ticks()
    bucket = TokenBucket(capacity=100, refill_per_s=100 / 60, clock=clock)
    for _ in range(100):
        bucket.take()
    clock.now_s += 30
    assert sum(bucket.take() for _ in range(100)) == 50
    clock.now_s += 3600
    assert bucket.tokens == 100
    assert sum(bucket.take() for _ in range(200)) == 100


def test_a_steady_rate_at_the_limit_is_never_refused() -> None:
    clock = Ticks()
    bucket = TokenBucket(capacity=100, refill_per_s=100 / 60, clock=clock)
    for _ in range(100):
        bucket.take()
    for _ in range(1000):
        clock.now_s += 0.6
        assert bucket.take()


def test_a_refused_take_spends_nothing() -> None:
    clock = Ticks()
    bucket = TokenBucket(capacity=5, refill_per_s=1, clock=clock)
    assert not bucket.take(6)
    assert bucket.tokens == 5
    assert bucket.retry_after_s(6) == float("inf")


def test_a_clock_stepping_back_does_not_drain_or_fill() -> None:
    clock = Ticks()
    bucket = TokenBucket(capacity=10, refill_per_s=1, clock=clock)
    for _ in range(10):
        bucket.take()
    clock.now_s -= 100
    assert bucket.tokens == 0
    clock.now_s += 2
    assert bucket.tokens == 2


@pytest.mark.parametrize(("capacity", "refill"), [(0, 1), (-1, 1), (1, -1)])
def test_nonsense_limits_are_refused(capacity: float, refill: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(capacity=capacity, refill_per_s=refill)


def test_sliding_window_counts_per_key_over_the_window() -> None:
    clock = Ticks()
    window = SlidingWindow(limit=3, window_s=60, clock=clock)
    assert [window.hit("a") for _ in range(4)] == [True, True, True, False]
    assert window.hit("b")
    clock.now_s += 59.9
    assert not window.hit("a")
    clock.now_s += 0.1  # the first three hits leave the window
    assert [window.hit("a") for _ in range(4)] == [True, True, True, False]


def test_refused_hits_do_not_extend_the_wait() -> None:
    clock = Ticks()
    window = SlidingWindow(limit=1, window_s=10, clock=clock)
    assert window.hit("a")
    for _ in range(9):
        clock.now_s += 1
        assert not window.hit("a")
    clock.now_s += 1
    assert window.hit("a")


def test_sliding_window_forgets_the_least_recent_keys_beyond_its_bound() -> None:
    clock = Ticks()
    window = SlidingWindow(limit=1, window_s=60, clock=clock, keys_max=2)
    assert window.hit("a") and window.hit("b")
    assert not window.hit("a")  # "a" is now the most recent
    assert window.hit("c")  # "b" is forgotten
    assert not window.hit("a")
    assert window.hit("b")
