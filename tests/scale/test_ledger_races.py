"""Concurrency attacks on the ledger: one person spending the same balance at once over several
sockets on two servers sharing one PostgreSQL (staking, withdrawing), voting twice at once, and two
co-authors divesting at once from both servers. Balances never go negative, nothing is spent twice,
and the audit of the shared store is clean."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from harness import Clock, Server, Socket, User, run_server

from choir.ledger import ONE_CHOIR
from choir.ops.audit import audit
from choir.store.sql import Store

WELCOME = 10 * ONE_CHOIR
SPEND = 6 * ONE_CHOIR  # more than half the balance: at most one of two such spends can succeed
SOCKETS_PER_SERVER = 2


async def balance(user: User) -> int:
    async with user.http() as http:
        return int((await http.get("/api/me")).json()["balance"])


async def all_at_once(
    sockets: list[Socket], frames: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    sent = [await sock.send(type_, payload) for sock, (type_, payload) in zip(sockets, frames, strict=True)]
    return list(await asyncio.gather(*(sock.reply(i) for sock, i in zip(sockets, sent, strict=True))))


async def race(servers: list[Server], clock: Clock) -> None:
    owner, spender = User(servers[0]), User(servers[1])
    for user in (owner, spender):
        await user.sign_in()
    thread_id = (await owner.create_thread("Raced"))["thread_id"]
    async with contextlib.AsyncExitStack() as stack:
        # The spender on both servers, two sockets each.
        spenders = []
        for server in servers:
            user = User(server, key=spender.key)
            await user.sign_in()
            for _ in range(SOCKETS_PER_SERVER):
                spenders.append(await stack.enter_async_context(user.socket()))
        assert await balance(spender) == WELCOME
        # 1. Four withdrawals of 6 CHOIR from 10 at once: one succeeds.
        replies = await all_at_once(spenders, [("withdraw", {"amount": str(SPEND)})] * len(spenders))
        assert [r["type"] for r in replies].count("ack") == 1, replies
        assert {r["payload"]["code"] for r in replies if r["type"] == "error"} == {"insufficient_funds"}
        assert await balance(spender) == WELCOME - SPEND
        # 2. Four stakes of 3 CHOIR from the 4 left, each its own spec, at once: at most one.
        stakes = [
            ("spec.submit", {"thread_id": thread_id, "content": f"spec {n}", "stake": str(3 * ONE_CHOIR)})
            for n in range(len(spenders))
        ]
        replies = await all_at_once(spenders, stakes)
        acked = [r for r in replies if r["type"] == "ack"]
        assert len(acked) == 1, replies
        assert await balance(spender) == WELCOME - SPEND - 3 * ONE_CHOIR >= 0
        spec_id = acked[0]["payload"]["spec_id"]
        # 3. The owner approves from two sockets on two servers at once: one vote counts.
        voters = []
        for server in servers:
            user = User(server, key=owner.key)
            await user.sign_in()
            voters.append(await stack.enter_async_context(user.socket()))
        votes = await all_at_once(voters, [("spec.vote", {"spec_id": spec_id, "approve": True})] * 2)
        assert sorted(r["type"] for r in votes) == ["ack", "error"], votes
        refused = next(r for r in votes if r["type"] == "error")["payload"]["code"]
        assert refused in {"already_voted", "spec_not_pending"}
        # 4. Eight days on, the new co-author divests from four sockets at once: one pays.
        clock.advance(8 * 24 * 3600)
        replies = await all_at_once(spenders, [("thread.divest", {"thread_id": thread_id})] * len(spenders))
        assert [r["type"] for r in replies].count("ack") == 1, replies
        assert {r["payload"]["code"] for r in replies if r["type"] == "error"} == {"not_co_author"}


def test_the_same_balance_spent_at_once_on_two_servers_is_spent_once(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    # Two processes on one database share their fan-out and their vector index (server.preflight).
    shared = {"redis_url": redis_url, "vector_engine": "sql", "sweep_interval_s": 3600}
    with (
        run_server(tmp_path / "one", postgres_url, clock=clock, **shared) as one,
        run_server(tmp_path / "two", postgres_url, clock=clock, **shared) as two,
    ):
        asyncio.run(race([one, two], clock))
    store = Store(postgres_url)
    try:
        report = audit(store)
    finally:
        store.close()
    assert report.ok, report.lines()
    assert report.checked["transfers"] >= 5
