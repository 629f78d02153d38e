"""Divest and withdraw over the protocol, end to end, on a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from harness import Clock, Server, User, run_server

from choir.ledger import ONE_CHOIR


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[Server, Clock]]:
    clock = Clock()
    # No background duties: an 8-day jump would settle epochs and pay rewards mid-test.
    with run_server(tmp_path / "data", clock=clock, sweep_interval_s=3600) as server:
        yield server, clock


async def scenario(server: Server, clock: Clock) -> None:
    alice, bob, carol = User(server), User(server), User(server)
    for user in (alice, bob, carol):
        await user.sign_in()
    tid = (await alice.create_thread("Divesting"))["thread_id"]
    async with alice.socket() as a, bob.socket() as b, carol.socket() as c:
        # The last co-author cannot leave.
        refused = await a.request("thread.divest", {"thread_id": tid})
        assert refused["payload"]["code"] == "last_co_author"
        joined = await b.request(
            "spec.submit", {"thread_id": tid, "content": "let me in", "stake": str(ONE_CHOIR)}
        )
        await a.request("spec.vote", {"spec_id": joined["payload"]["spec_id"], "approve": True})
        # Carol's spec is denied by both: her 4 CHOIR stay with the thread.
        stake = str(4 * ONE_CHOIR)
        denied = await c.request("spec.submit", {"thread_id": tid, "content": "me too", "stake": stake})
        spec_id = denied["payload"]["spec_id"]
        await a.request("spec.vote", {"spec_id": spec_id, "approve": False})
        await b.request("spec.vote", {"spec_id": spec_id, "approve": False})
        too_soon = await b.request("thread.divest", {"thread_id": tid})
        assert too_soon["payload"]["code"] == "divest_too_soon"
        clock.now += timedelta(days=8)
        left = await b.request("thread.divest", {"thread_id": tid})
        assert left["type"] == "ack", left
        assert left["payload"]["amount"] == str(2 * ONE_CHOIR)  # floor(4 CHOIR / 2 co-authors)
        assert (await b.request("thread.divest", {"thread_id": tid}))["payload"]["code"] == "not_co_author"
        # Withdraw to the wallet: validated, then moved out of the in-app balance.
        for bad, code in (("abc", "invalid_amount"), ("-1", "invalid_amount"), ("0", "invalid_amount")):
            assert (await b.request("withdraw", {"amount": bad}))["payload"]["code"] == code
        huge = await b.request("withdraw", {"amount": str(10**18)})
        assert huge["payload"]["code"] == "insufficient_funds"
        async with bob.http() as http:
            before = int((await http.get("/api/me")).json()["balance"])
        done = await b.request("withdraw", {"amount": str(ONE_CHOIR)})
        assert done["type"] == "ack" and done["payload"]["amount"] == str(ONE_CHOIR)
    async with bob.http() as http:
        assert int((await http.get("/api/me")).json()["balance"]) == before - ONE_CHOIR
        ledger = (await http.get("/api/ledger")).json()
        assert int(ledger["by_class"]["withdrawn"]) == ONE_CHOIR
        detail = (await http.get(f"/api/threads/{tid}")).json()
        assert detail["co_authors"] == [alice.address] and int(detail["balance"]) == 2 * ONE_CHOIR


def test_divest_and_withdraw_over_the_socket(clocked: tuple[Server, Clock]) -> None:
    asyncio.run(scenario(*clocked))


def test_leaving_a_private_thread_ends_its_subscription(clocked: tuple[Server, Clock]) -> None:
    server, clock = clocked

    async def run() -> None:
        alice, bob = User(server), User(server)
        await alice.sign_in()
        await bob.sign_in()
        tid = (await alice.create_thread("Inner circle", visibility="private"))["thread_id"]
        async with alice.socket() as a, bob.socket() as b:
            spec = await b.request(
                "spec.submit", {"thread_id": tid, "content": "in", "stake": str(ONE_CHOIR)}
            )
            await a.request("spec.vote", {"spec_id": spec["payload"]["spec_id"], "approve": True})
            assert (await b.request("subscribe", {"thread_id": tid}))["type"] == "ack"
            clock.advance(8 * 24 * 3600)
            assert (await b.request("thread.divest", {"thread_id": tid}))["type"] == "ack"
            (left,) = await b.events(1)
            assert left["kind"] == "coauthor.left" and left["data"]["address"] == bob.address
            revoked = await b.recv()
            assert revoked["type"] == "error" and revoked["payload"]["code"] == "forbidden"
            await a.request("post", {"thread_id": tid, "content": "after bob left"})
            # Bob hears nothing more of the private thread, and cannot subscribe again.
            again = await b.request("subscribe", {"thread_id": tid})
            assert again["payload"]["code"] == "thread_not_found"
            assert not [f for f in b.pending if f["type"] == "event"]

    asyncio.run(run())
