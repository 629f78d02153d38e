"""The recommended stake (DESIGN §4), against the formula computed here independently."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choir.ledger import ONE_CHOIR, SUPPLY
from choir.program import recommended_stake

S0_CHOIR = 100
DAY_S = 86_400


def design_price_choir(balance_choir: float, message_rate: float, n: int, age_days: float) -> float:
    """P = S0·(1/2 + 1/(exp(ω/T) − 1)), straight from the design's text."""
    temperature = ((balance_choir + message_rate) / n) / (1 + math.sqrt(age_days * n))
    if temperature == 0:
        return 2 * S0_CHOIR
    omega_m = message_rate / math.sqrt(n)
    omega_v = math.log(1 + balance_choir / n)
    g = 1 / n
    omega = math.sqrt((omega_m**2 + omega_v**2) / 2 + g * n)
    return S0_CHOIR * (1 / 2 + 1 / (math.exp(omega / temperature) - 1))


@pytest.mark.parametrize(
    ("balance_choir", "messages", "n", "age_days"),
    [(100, 20, 2, 10), (1000, 500, 5, 30), (10, 3, 1, 2), (5_000, 0, 7, 100), (1, 10, 10, 400)],
)
def test_matches_the_formula(balance_choir: int, messages: int, n: int, age_days: float) -> None:
    rate_per_day = messages / age_days  # every point here is older than a day
    expected = design_price_choir(balance_choir, rate_per_day, n, age_days) * ONE_CHOIR
    got = recommended_stake(balance_choir * ONE_CHOIR, messages, n, age_days * DAY_S)
    assert got == pytest.approx(expected, rel=1e-9, abs=1)


def test_a_thread_with_no_temperature_asks_twice_s0() -> None:
    assert recommended_stake(0, 0, 1, 0) == 2 * S0_CHOIR * ONE_CHOIR
    assert recommended_stake(0, 0, 5, 30 * DAY_S) == 2 * S0_CHOIR * ONE_CHOIR


def test_a_young_thread_counts_its_rate_over_at_least_a_day() -> None:
    # Ten messages in its first hour: a rate of 10 a day, not 240.
    expected = design_price_choir(50, 10, 2, 1 / 24) * ONE_CHOIR
    assert recommended_stake(50 * ONE_CHOIR, 10, 2, 3600) == pytest.approx(expected, rel=1e-9)


def test_a_cold_thread_approaches_half_s0() -> None:
    cold = recommended_stake(1 * ONE_CHOIR, 1, 10, 3650 * DAY_S)
    assert S0_CHOIR * ONE_CHOIR // 2 <= cold < 0.51 * S0_CHOIR * ONE_CHOIR


balances = st.integers(min_value=0, max_value=SUPPLY)
counts = st.integers(min_value=0, max_value=10**9)
co_authors = st.integers(min_value=0, max_value=1_000)
ages = st.one_of(
    st.floats(min_value=0, max_value=1e12), st.just(math.inf), st.floats(max_value=0, allow_nan=False)
)


@settings(max_examples=300, deadline=None)
@given(balances, counts, co_authors, ages)
def test_never_crashes_and_never_below_half_s0(balance: int, count: int, n: int, age_s: float) -> None:
    price = recommended_stake(balance, count, n, age_s)
    assert type(price) is int
    assert price >= S0_CHOIR * ONE_CHOIR // 2


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=ONE_CHOIR, max_value=SUPPLY // 2),
    st.integers(min_value=1, max_value=SUPPLY // 2),
    counts,
    st.integers(min_value=1, max_value=10),
    st.floats(min_value=0, max_value=3650 * DAY_S),
)
def test_a_richer_thread_asks_at_least_as_much(
    balance: int, more: int, count: int, n: int, age_s: float
) -> None:
    low, high = (
        recommended_stake(balance, count, n, age_s),
        recommended_stake(balance + more, count, n, age_s),
    )
    assert high >= low * (1 - 1e-12) - 1  # float rounding aside
