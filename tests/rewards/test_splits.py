"""Novelty weights and the epoch splits (DESIGN §5): integer, floored, capped, never more
than the budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choir.ledger import ONE_CHOIR
from choir.rewards import (
    NOVELTY_ONE_PPM,
    novelty_ppm,
    prior_budget,
    split_new_message_rewards,
    split_prior_rewards,
)

CAP_PPM = 200_000  # 20%


@pytest.mark.parametrize(
    ("similarity", "weight"),
    [
        (None, 1_000_000),  # nothing earlier to compare with: fully new
        (0.0, 1_000_000),
        (-0.3, 1_000_000),  # cosine can be negative; the weight stays at most 1
        (0.25, 750_000),
        (0.5, 500_000),
        (0.9, 100_000),
        (0.9499, 50_100),
        (0.95, 0),  # a near-duplicate earns nothing
        (0.99, 0),
        (1.0, 0),
    ],
)
def test_novelty_weight(similarity: float | None, weight: int) -> None:
    assert novelty_ppm(similarity) == weight
    assert NOVELTY_ONE_PPM == 1_000_000


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1, max_value=1))
def test_novelty_is_within_zero_and_one_and_decreasing(similarity: float) -> None:
    w = novelty_ppm(similarity)
    assert 0 <= w <= NOVELTY_ONE_PPM
    assert novelty_ppm(min(similarity + 0.01, 1.0)) <= w


def test_shares_follow_summed_weights_by_floor() -> None:
    posts = [("a", 1_000_000), ("b", 1_000_000), ("b", 500_000), ("c", 0)] + [
        (f"x{i}", 1_000_000) for i in range(4)
    ]
    # total weight 6.5M; b has 1.5M → 23% would exceed the cap; a has 1M → 15.38%
    shares = split_new_message_rewards(1_000, posts, CAP_PPM)
    assert shares["a"] == 1_000 * 1_000_000 // 6_500_000 == 153
    assert shares["b"] == 200  # capped at 20%
    assert "c" not in shares  # zero weight earns nothing
    assert sum(shares.values()) == 153 * 5 + 200


def test_a_lone_author_is_capped_and_the_rest_is_not_paid() -> None:
    assert split_new_message_rewards(146 * ONE_CHOIR, [("a", 1), ("a", 1)], CAP_PPM) == {"a": 29_200_000_000}


def test_nothing_to_share() -> None:
    assert split_new_message_rewards(0, [("a", 1_000_000)], CAP_PPM) == {}
    assert split_new_message_rewards(100, [], CAP_PPM) == {}
    assert split_new_message_rewards(100, [("a", 0), ("b", 0)], CAP_PPM) == {}
    assert split_prior_rewards(0, {"t": 5}) == {}
    assert split_prior_rewards(100, {}) == {}
    assert split_prior_rewards(100, {"t": 0}) == {}


def test_prior_budget_is_a_thousandth_of_a_percent_of_the_treasury() -> None:
    treasury = 7_500_000_000 * ONE_CHOIR
    assert prior_budget(treasury, 10) == 75_000 * ONE_CHOIR == treasury // 100_000
    assert prior_budget(99_999, 10) == 0  # floored
    assert prior_budget(0, 10) == 0


def test_prior_shares_follow_summed_scores_by_floor() -> None:
    assert split_prior_rewards(100, {"t1": 900_000 + 600_000, "t2": 300_000}) == {"t1": 83, "t2": 16}


posts = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), st.integers(min_value=0, max_value=1_000_000)
    ),
    max_size=40,
)
budgets = st.one_of(st.integers(min_value=0, max_value=1_000), st.integers(min_value=0, max_value=10**19))


@settings(max_examples=500, deadline=None)
@given(budgets, posts, st.integers(min_value=0, max_value=1_000_000))
def test_new_message_split_never_overpays(
    budget: int, post_list: list[tuple[str, int]], cap_ppm: int
) -> None:
    shares = split_new_message_rewards(budget, post_list, cap_ppm)
    weights: dict[str, int] = {}
    for author, w in post_list:
        weights[author] = weights.get(author, 0) + w
    assert sum(shares.values()) <= budget
    assert all(s > 0 for s in shares.values())
    assert all(s * 1_000_000 <= budget * cap_ppm for s in shares.values())  # the cap holds
    assert set(shares) <= {a for a, w in weights.items() if w > 0}
    total = sum(weights.values())
    for author, share in shares.items():
        # Proportional, floored: never more than the author's exact part.
        assert share * total <= budget * weights[author]
        # And where the cap does not bind, within one base unit of it.
        if share < budget * cap_ppm // 1_000_000:
            assert (share + 1) * total > budget * weights[author]


@settings(max_examples=500, deadline=None)
@given(
    budgets,
    st.dictionaries(st.sampled_from(["t1", "t2", "t3", "t4"]), st.integers(min_value=0, max_value=10**8)),
)
def test_prior_split_never_overpays(budget: int, weights: dict[str, int]) -> None:
    shares = split_prior_rewards(budget, weights)
    total = sum(weights.values())
    assert sum(shares.values()) <= budget
    assert all(s > 0 for s in shares.values())
    for thread_id, share in shares.items():
        assert share * total <= budget * weights[thread_id] < (share + 1) * total
    if total:
        assert budget - sum(shares.values()) < len(weights) or budget == 0  # only floor remainders stay
