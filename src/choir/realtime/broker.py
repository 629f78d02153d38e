"""Fan-out between server processes: in-process by default, Redis pub/sub at scale.

A broker carries already-serialized frames, so each event is encoded once however
many processes and sockets receive it. Publishing happens only after commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

ThreadSink = Callable[[str, int | None, str], None]
UserSink = Callable[[str, str], None]
# (address, session): close that session's sockets.
LogoutSink = Callable[[str, str], object]
CHANNEL: Final = "choir:fanout"
# Resubscribing after Redis went away: from this wait, doubling, to at most that one.
RESUBSCRIBE_MIN_S: Final = 0.2
RESUBSCRIBE_MAX_S: Final = 2.0
CONNECT_TIMEOUT_S: Final = 2.0
FIRST_SUBSCRIBE_WAIT_S: Final = 3.0


class Broker(Protocol):
    connected: bool  # False while fan-out between processes is down (the store still takes every write)

    async def start(self, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink) -> None: ...
    async def publish_thread(self, thread_id: str, seq: int | None, frame: str) -> None: ...
    async def publish_user(self, address: str, frame: str) -> None: ...
    async def publish_logout(self, address: str, session: str) -> None: ...
    async def close(self) -> None: ...


class LocalBroker:
    """One process: publishing is delivering."""

    connected = True

    def __init__(self) -> None:
        self._on_thread: ThreadSink | None = None
        self._on_user: UserSink | None = None
        self._on_logout: LogoutSink | None = None

    async def start(self, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink) -> None:
        self._on_thread, self._on_user, self._on_logout = on_thread, on_user, on_logout

    def deliver(self, item: tuple[str, str, int | None, str]) -> None:
        """Deliver at once, without awaiting: ("t", thread_id, seq, frame) or ("u", address, None, frame)."""
        kind, target, seq, frame = item
        if kind == "t":
            if self._on_thread:
                self._on_thread(target, seq, frame)
        elif self._on_user:
            self._on_user(target, frame)

    async def publish_thread(self, thread_id: str, seq: int | None, frame: str) -> None:
        self.deliver(("t", thread_id, seq, frame))

    async def publish_user(self, address: str, frame: str) -> None:
        self.deliver(("u", address, None, frame))

    async def publish_logout(self, address: str, session: str) -> None:
        if self._on_logout:
            self._on_logout(address, session)

    async def close(self) -> None:
        return None


class RedisBroker:
    """Every process subscribes to one channel and delivers to its own sockets.

    The subscription is kept, not just made: when Redis goes away (a restart, a kill, a network cut)
    the listener resubscribes with backoff until it is back, and then calls ``on_resubscribed`` so
    that the hub fills every subscription's gap from the store (what was published meanwhile is
    lost to pub/sub, never to the store). A process also starts while Redis is down, its fan-out
    degraded (``connected`` is False, and /health says so) until the first subscription holds."""

    def __init__(self, url: str, on_resubscribed: Callable[[], object] | None = None) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        self._task: asyncio.Task[None] | None = None
        self.on_resubscribed = on_resubscribed
        self.connected = False
        self.resubscriptions = 0

    async def start(self, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink) -> None:
        subscribed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._keep(on_thread, on_user, on_logout, subscribed), name="redis-fanout"
        )
        # Wait a little for the first subscription, not forever: a supervisor restarting this process
        # during a Redis outage must get a server that answers (degraded), not a failed start.
        try:
            await asyncio.wait_for(subscribed.wait(), FIRST_SUBSCRIBE_WAIT_S)
        except TimeoutError:
            log.warning("Redis is unreachable: serving with fan-out between processes degraded")

    async def _keep(
        self, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink, subscribed: asyncio.Event
    ) -> None:
        backoff_s = RESUBSCRIBE_MIN_S
        lost = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.connected = True
                subscribed.set()
                backoff_s = RESUBSCRIBE_MIN_S
                if lost:
                    self.resubscriptions += 1
                    log.warning(
                        "Redis is back: resubscribed; filling every subscription's gap from the store"
                    )
                    if self.on_resubscribed is not None:
                        self.on_resubscribed()
                await self._listen(pubsub, on_thread, on_user, on_logout)
                raise ConnectionError("the Redis subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected or not lost:
                    log.warning("Redis fan-out lost (%s); resubscribing", exc)
                self.connected = False
                lost = True
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, RESUBSCRIBE_MAX_S)

    async def _listen(
        self, pubsub: Any, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink
    ) -> None:
        async for message in pubsub.listen():
            try:
                item = json.loads(message["data"])
                if "t" in item:
                    on_thread(item["t"], item["s"], item["f"])
                elif "u" in item:
                    on_user(item["u"], item["f"])
                elif "logout" in item:
                    on_logout(item["logout"], item["session"])
            except Exception:  # one bad message must not stop the fan-out
                log.exception("bad fan-out message")

    async def publish_thread(self, thread_id: str, seq: int | None, frame: str) -> None:
        await self._redis.publish(CHANNEL, json.dumps({"t": thread_id, "s": seq, "f": frame}))

    async def publish_user(self, address: str, frame: str) -> None:
        await self._redis.publish(CHANNEL, json.dumps({"u": address, "f": frame}))

    async def publish_logout(self, address: str, session: str) -> None:
        await self._redis.publish(CHANNEL, json.dumps({"logout": address, "session": session}))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._redis.aclose()
