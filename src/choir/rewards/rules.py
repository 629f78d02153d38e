"""Pure reward arithmetic. Money is integer base units; weights are integer ppm.

The emission curve is transcendental, so it is evaluated in 50-digit decimal
arithmetic and floored: the result is exact to the base unit and the same on
every machine, and flooring the *cumulative* curve carries every remainder
into the next epoch, so the total paid never exceeds R.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Final

from choir.ledger import ONE_CHOIR

NOVELTY_ONE_PPM: Final = 1_000_000
# Similarity at or above this is a near-duplicate and earns nothing.
DUPLICATE_SIMILARITY: Final = 0.95

R_BASE_UNITS: Final = 2_500_000_000 * ONE_CHOIR
T_YEARS: Final = 4
K: Final = Decimal("2.04")
SECONDS_PER_YEAR: Final = Decimal(365.25 * 24 * 3600)

_CTX: Final = Context(prec=50)
_LN_DENOMINATOR: Final = _CTX.ln(1 + K * T_YEARS)


def emitted(elapsed_s: int | float) -> int:
    """F(t) = R·ln(1 + k·t)/ln(1 + k·T), floored to base units; t in years since genesis."""
    if elapsed_s <= 0:
        return 0
    years = _CTX.divide(Decimal(elapsed_s), SECONDS_PER_YEAR)
    if years >= T_YEARS:
        return R_BASE_UNITS
    value = _CTX.multiply(Decimal(R_BASE_UNITS), _CTX.divide(_CTX.ln(1 + K * years), _LN_DENOMINATOR))
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def epoch_budget(start_s: int | float, end_s: int | float) -> int:
    """New-message budget of the epoch [start, end): F(end) − F(start)."""
    return emitted(end_s) - emitted(start_s)


def novelty_ppm(max_similarity: float | None) -> int:
    """w = max(0, 1 − max_similarity), and 0 for a near-duplicate; 1 with no earlier message."""
    if max_similarity is None:
        return NOVELTY_ONE_PPM
    if max_similarity >= DUPLICATE_SIMILARITY:
        return 0
    return max(0, min(NOVELTY_ONE_PPM, round((1 - max_similarity) * NOVELTY_ONE_PPM)))


def split_new_message_rewards(
    budget: int, posts: Iterable[tuple[str, int]], author_cap_ppm: int
) -> dict[str, int]:
    """Share ``budget`` among authors by summed novelty weight, each capped; floors.

    What is not paid (floor remainders, the cap's excess, an epoch with no weight)
    stays in the pool.
    """
    weights: dict[str, int] = {}
    for author, weight in posts:
        weights[author] = weights.get(author, 0) + weight
    total = sum(weights.values())
    if budget <= 0 or total <= 0:
        return {}
    cap = budget * author_cap_ppm // 1_000_000
    shares = {a: min(budget * w // total, cap) for a, w in sorted(weights.items())}
    return {a: s for a, s in shares.items() if s > 0}


def prior_budget(treasury_balance: int, prior_rate_ppm: int) -> int:
    return treasury_balance * prior_rate_ppm // 1_000_000


def split_prior_rewards(budget: int, thread_weights: Mapping[str, int]) -> dict[str, int]:
    """Share the prior budget among cited threads by summed quality score; floors."""
    total = sum(thread_weights.values())
    if budget <= 0 or total <= 0:
        return {}
    shares = {t: budget * w // total for t, w in sorted(thread_weights.items())}
    return {t: s for t, s in shares.items() if s > 0}
