"""Rate limits, pure: time comes from an injected monotonic clock (seconds).

``TokenBucket`` is the socket's frame limit (burst ``capacity``, then ``refill_per_s``).
``SlidingWindow`` counts events per key over the last ``window_s`` seconds (e.g. sign-in attempts per
client address), with a bound on how many keys it remembers.
Neither locks: each belongs to one thread (the event loop), which is where the server checks limits.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

Clock = Callable[[], float]
# Float rounding (0.6 s x 100/60 per s = 0.99999...) must not refuse a client sending exactly at the rate.
TOKENS_EPSILON = 1e-9


class TokenBucket:
    def __init__(
        self, capacity: float = 100, refill_per_s: float = 100 / 60, clock: Clock = time.monotonic
    ) -> None:
        if capacity <= 0 or refill_per_s < 0:
            raise ValueError("capacity must be positive and refill_per_s not negative")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self.clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        # max(): a clock that steps back must not drain the bucket.
        elapsed_s = max(0.0, now - self._at)
        self._tokens = min(self.capacity, self._tokens + elapsed_s * self.refill_per_s)
        self._at = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def take(self, n: float = 1) -> bool:
        """Spend ``n`` tokens if there are that many; False (and nothing spent) otherwise."""
        self._refill()
        if self._tokens + TOKENS_EPSILON < n:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def retry_after_s(self, n: float = 1) -> float:
        """Seconds until ``take(n)`` would succeed (0 if it would now; inf if it never will)."""
        missing = n - self.tokens
        if missing <= TOKENS_EPSILON:
            return 0.0
        if self.refill_per_s == 0 or n > self.capacity:
            return float("inf")
        return missing / self.refill_per_s


class SlidingWindow:
    """At most ``limit`` events per key in any ``window_s`` seconds. Remembers at most ``keys_max``
    keys, forgetting the least recently seen first (a flood of new keys cannot grow memory)."""

    def __init__(
        self, limit: int, window_s: float, clock: Clock = time.monotonic, keys_max: int = 100_000
    ) -> None:
        if limit <= 0 or window_s <= 0 or keys_max <= 0:
            raise ValueError("limit, window_s and keys_max must be positive")
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.keys_max = keys_max
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> bool:
        """Record one event for ``key`` if it is within the limit; False (nothing recorded) otherwise."""
        now = self.clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        self._hits[key] = hits
        while len(self._hits) > self.keys_max:
            self._hits.popitem(last=False)
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True
