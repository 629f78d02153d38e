"""Fan-out between server processes: in-process by default, Redis pub/sub at scale.

A broker carries already-serialized frames, so each event is encoded once however
many processes and sockets receive it. Publishing happens only after commit.
"""

from __future__ import annotations

import asyncio
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


class Broker(Protocol):
    async def start(self, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink) -> None: ...
    async def publish_thread(self, thread_id: str, seq: int | None, frame: str) -> None: ...
    async def publish_user(self, address: str, frame: str) -> None: ...
    async def publish_logout(self, address: str, session: str) -> None: ...
    async def close(self) -> None: ...


class LocalBroker:
    """One process: publishing is delivering."""

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
    """Every process subscribes to one channel and delivers to its own sockets."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, on_thread: ThreadSink, on_user: UserSink, on_logout: LogoutSink) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        self._task = asyncio.get_running_loop().create_task(
            self._listen(pubsub, on_thread, on_user, on_logout)
        )

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
