"""Live events that arrive out of commit order, or never (their process died between COMMIT and
publication), still reach every subscriber exactly once and in seq order: a gap is filled from the
store. The broker here is the real Redis one, wrapped to lose and reorder what it publishes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import User, run_server

Publish = Callable[[str, int | None, str], Awaitable[None]]


def lossy(publish: Publish, drop: set[int], swap: tuple[int, int]) -> Publish:
    """Drops the events of `drop`; publishes event swap[0] only after swap[1]."""
    held: list[tuple[str, int | None, str]] = []

    async def wrapped(thread_id: str, seq: int | None, frame: str) -> None:
        if seq in drop:
            return
        if seq == swap[0]:
            held.append((thread_id, seq, frame))
            return
        await publish(thread_id, seq, frame)
        if seq == swap[1]:
            for item in held:
                await publish(*item)

    return wrapped


def test_lost_and_reordered_events_arrive_once_in_order(tmp_path: Path, redis_url: str) -> None:
    with run_server(tmp_path / "data", redis_url=redis_url) as server:
        runtime: Any = server.app.state.runtime

        async def scenario() -> None:
            alice, bob = User(server), User(server)
            await alice.sign_in()
            await bob.sign_in()
            tid = (await alice.create_thread("Gaps"))["thread_id"]
            async with alice.socket() as a, bob.socket() as b:
                ack = await b.request("subscribe", {"thread_id": tid})
                start = ack["payload"]["seq"]
                broker = runtime.broker
                broker.publish_thread = lossy(
                    broker.publish_thread, {start + 2, start + 7}, (start + 4, start + 5)
                )
                for n in range(10):
                    assert (await a.request("post", {"thread_id": tid, "content": f"post {n}"}))[
                        "type"
                    ] == "ack"
                events = await b.events(10)
            assert [e["seq"] for e in events] == list(range(start + 1, start + 11))
            assert [e["data"]["content"] for e in events] == [f"post {n}" for n in range(10)]

        asyncio.run(scenario())
