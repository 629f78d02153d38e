"""The emission schedule F(t) = R·ln(1 + k·t)/ln(1 + k·T) and epoch budgets (DESIGN §5)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choir.ledger import GENESIS_BALANCES, ONE_CHOIR, POOL_NEW_MESSAGES
from choir.rewards import emitted, epoch_budget

R = 2_500_000_000 * ONE_CHOIR
YEAR_S = 365.25 * 86_400
T_S = 4 * YEAR_S
HOUR_S = 3600


def float_f(t_s: float) -> float:
    return R * math.log1p(2.04 * t_s / YEAR_S) / math.log1p(2.04 * 4)


def test_nothing_is_emitted_at_genesis_or_before() -> None:
    assert emitted(0) == 0
    assert emitted(-1) == 0
    assert emitted(-1e9) == 0


def test_everything_is_emitted_at_t_and_no_more_after() -> None:
    assert emitted(T_S) == R
    assert emitted(T_S - 1) < R
    assert emitted(T_S + 1) == R
    assert emitted(100 * T_S) == R
    assert GENESIS_BALANCES[POOL_NEW_MESSAGES] == R  # the pool holds exactly what the curve emits


@pytest.mark.parametrize("t_s", [1, 2, 60, HOUR_S, 86_400, YEAR_S, 2 * YEAR_S, 3.5 * YEAR_S])
def test_matches_the_formula(t_s: float) -> None:
    assert emitted(t_s) == pytest.approx(float_f(t_s), rel=1e-12, abs=1)  # floored to base units


def test_an_early_two_second_epoch_pays_about_146_choir() -> None:
    budget = epoch_budget(0, 2)
    assert budget == pytest.approx(146 * ONE_CHOIR, rel=0.005)
    assert epoch_budget(2, 4) < budget  # the curve is concave: later epochs pay less


@pytest.mark.parametrize("epoch_s", [2, 60, HOUR_S, 86_400])
def test_consecutive_epoch_budgets_sum_to_what_was_emitted(epoch_s: int) -> None:
    n = 500
    total = sum(epoch_budget(e * epoch_s, (e + 1) * epoch_s) for e in range(n))
    assert total == emitted(n * epoch_s)


def test_epochs_that_straddle_the_end_pay_out_exactly_r() -> None:
    epoch_s = 30 * 86_400
    n = math.ceil(T_S / epoch_s) + 3
    budgets = [epoch_budget(e * epoch_s, (e + 1) * epoch_s) for e in range(n)]
    assert sum(budgets) == R
    assert budgets[-1] == budgets[-2] == 0
    assert all(b > 0 for b in budgets[: n - 3])


times = st.one_of(
    st.integers(min_value=-10, max_value=int(T_S) + 10), st.floats(min_value=0, max_value=5 * T_S)
)


@settings(max_examples=300, deadline=None)
@given(times, times)
def test_emission_is_monotone_and_bounded(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert 0 <= emitted(lo) <= emitted(hi) <= R
    assert epoch_budget(lo, hi) >= 0


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=30 * 86_400), st.integers(min_value=1, max_value=200), times)
def test_budgets_telescope_from_any_start(epoch_s: int, n: int, start: float) -> None:
    total = sum(epoch_budget(start + e * epoch_s, start + (e + 1) * epoch_s) for e in range(n))
    assert total == emitted(start + n * epoch_s) - emitted(start)
