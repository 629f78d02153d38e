"""The recommended stake (DESIGN §4): a hint shown to a would-be co-author, not enforced.

P = S0·(1/2 + 1/(exp(ω/T) − 1)), a Bose–Einstein-like price: a hot thread (high T)
asks more, a cold one approaches S0/2. Floats are fine here: this is advice, and the
result is rounded to base units once, at the end.
"""

from __future__ import annotations

import math
from typing import Final

from choir.ledger import ONE_CHOIR

S0_BASE_UNITS: Final = 100 * ONE_CHOIR
# exp() overflows past ~709; beyond this ratio the second term is 0 to double precision.
_MAX_EXPONENT: Final = 700.0
SECONDS_PER_DAY: Final = 86_400


def temperature(balance_choir: float, message_rate_per_day: float, co_authors: int, age_days: float) -> float:
    n = max(co_authors, 1)
    return ((balance_choir + message_rate_per_day) / n) / (1 + math.sqrt(max(age_days, 0.0) * n))


def frequency(balance_choir: float, message_rate_per_day: float, co_authors: int) -> float:
    n = max(co_authors, 1)
    omega_m = message_rate_per_day / math.sqrt(n)
    omega_v = math.log1p(balance_choir / n)
    g = 1 / n
    return math.sqrt((omega_m**2 + omega_v**2) / 2 + g * n)


def recommended_stake(balance: int, message_count: int, co_authors: int, age_s: float) -> int:
    """In base units. ``message_rate`` is messages per day over the thread's life,
    counted over at least one day so that a brand-new thread is not infinitely hot."""
    age_days = max(age_s, 0.0) / SECONDS_PER_DAY
    rate = message_count / max(age_days, 1.0)
    balance_choir = balance / ONE_CHOIR
    t = temperature(balance_choir, rate, co_authors, age_days)
    if t <= 0:
        return 2 * S0_BASE_UNITS
    ratio = frequency(balance_choir, rate, co_authors) / t
    occupancy = 0.0 if ratio > _MAX_EXPONENT else 1 / math.expm1(ratio)
    return round(S0_BASE_UNITS * (0.5 + occupancy))
