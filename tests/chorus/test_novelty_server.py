"""Novelty from real embeddings: measured after publication against the public messages
before it, stored with the message; a near-duplicate gets weight 0."""

from __future__ import annotations

import asyncio

from harness import Server, User
from sqlalchemy import create_engine, text


async def novelty_of(server: Server, message_id: str, timeout_s: float = 15.0) -> int:
    engine = create_engine(server.settings.sql_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            with engine.connect() as conn:
                value = conn.execute(
                    text("SELECT novelty_ppm FROM messages WHERE message_id = :m"), {"m": message_id}
                ).scalar()
            if value is not None:
                return int(value)
            await asyncio.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"novelty of {message_id} not measured within {timeout_s} s")


async def test_a_near_duplicate_earns_nothing(sqlite_server: Server) -> None:
    alice, bob = User(sqlite_server), User(sqlite_server)
    await alice.sign_in()
    await bob.sign_in()
    ta = (await alice.create_thread("Rivers"))["thread_id"]
    tb = (await bob.create_thread("Streams"))["thread_id"]
    text_ = "Salmon swim upstream every autumn to spawn in the gravel beds where they hatched."
    async with alice.socket() as a, bob.socket() as b:
        first = (await a.request("post", {"thread_id": ta, "content": text_}))["payload"]["message_id"]
        assert await novelty_of(sqlite_server, first) == 1_000_000  # nothing public before it
        copy = (await b.request("post", {"thread_id": tb, "content": text_ + " "}))["payload"]["message_id"]
        other = await b.request("post", {"thread_id": tb, "content": "Bake bread at 230 degrees."})
        other_id = other["payload"]["message_id"]
    assert await novelty_of(sqlite_server, copy) == 0
    assert 300_000 < await novelty_of(sqlite_server, other_id) <= 1_000_000
