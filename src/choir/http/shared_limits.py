"""Read and search limits shared by every process through Redis (when CHOIR_REDIS_URL is set).

A client spread over several processes (a load balancer's round robin, `--workers N`) must not get N
times its limit. Each limit is a GCRA cell (the token bucket's equivalent, one number per client:
its theoretical arrival time), kept in Redis and advanced by one Lua script that reads Redis's own
clock, so processes whose clocks differ still agree. While Redis cannot be reached a process falls
back on its own buckets (the limit then holds per process) and tries Redis again after a pause."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import redis.asyncio as aredis

log = logging.getLogger(__name__)

# KEYS[1] the client's cell; ARGV: the interval between requests (us) and the burst (requests).
# Returns 0 when the request may go, else the microseconds to wait.
_GCRA: Final = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
if now < allow_at then return allow_at - now end
local next_tat = tat + interval
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return 0
"""
KEY_PREFIX: Final = "choir:limit:"
# After Redis failed, the local buckets serve this long before Redis is tried again.
RETRY_AFTER_FAILURE_S: Final = 2.0
TIMEOUT_S: Final = 0.25


class SharedLimits:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._client: aredis.Redis = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )
        self._script: Any = self._client.register_script(_GCRA)
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def take(self, kind: str, client: str, burst: float, per_minute: float) -> float | None:
        """0 when the client may go on, else the seconds to wait; None when Redis cannot answer
        (the caller uses its own bucket)."""
        if not self.available:
            return None
        interval_us = int(60_000_000 / per_minute)
        try:
            wait_us = await self._script(
                keys=[f"{KEY_PREFIX}{kind}:{client}"], args=[interval_us, int(burst)]
            )
        except Exception as exc:  # any Redis failure: fall back, never refuse nor fail the request
            log.warning("shared rate limits unavailable (%s); limiting per process meanwhile", exc)
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            return None
        return int(wait_us) / 1_000_000
