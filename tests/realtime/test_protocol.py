"""The /ws protocol end to end: real server, real WebSocket clients, real signatures."""

from __future__ import annotations

import asyncio

from harness import Server, User

from choir.ledger import ONE_CHOIR


async def test_two_users_thread_spec_approval_seen_in_order(server: Server) -> None:
    alice, bob = User(server), User(server)
    await alice.sign_in()
    me = await bob.sign_in()
    assert int(me["balance"]) == server.settings.welcome_grant
    thread = await alice.create_thread("Birds of the valley")
    tid = thread["thread_id"]
    async with alice.socket() as a, bob.socket() as b:
        for sock in (a, b):
            ack = await sock.request("subscribe", {"thread_id": tid, "since_seq": 0})
            assert ack["type"] == "ack" and ack["payload"] == {"thread_id": tid, "seq": 1}
        posted = await a.request("post", {"thread_id": tid, "content": "Herons nest by the river."})
        assert posted["type"] == "ack" and posted["payload"]["seq"] == 2
        stake = 3 * ONE_CHOIR
        spec = await b.request(
            "spec.submit", {"thread_id": tid, "content": "Egrets too.", "stake": str(stake)}
        )
        assert spec["type"] == "ack", spec
        vote = await a.request("spec.vote", {"spec_id": spec["payload"]["spec_id"], "approve": True})
        assert vote["type"] == "ack", vote
        seen_a, seen_b = await a.events(7), await b.events(7)
    assert seen_a == seen_b
    assert [e["seq"] for e in seen_a] == list(range(1, 8))
    kinds = [e["kind"] for e in seen_a]
    assert kinds == [
        "thread.created",
        "message.posted",
        "spec.submitted",
        "spec.voted",
        "spec.settled",
        "coauthor.joined",
        "message.posted",
    ]
    settled = seen_a[4]["data"]
    assert settled["outcome"] == "approved"
    assert settled["transfers"][0]["amount"] == str(stake)
    async with alice.http() as http:
        detail = (await http.get(f"/api/threads/{tid}")).json()
        assert detail["co_authors"] == [alice.address, bob.address]
        balance = (await http.get(f"/api/accounts/{alice.address}")).json()["balance"]
        assert int(balance) == server.settings.welcome_grant + stake


async def test_resume_with_since_seq_gets_exactly_what_was_missed(server: Server) -> None:
    alice, bob = User(server), User(server)
    await alice.sign_in()
    await bob.sign_in()
    tid = (await alice.create_thread())["thread_id"]
    async with bob.socket() as b:
        ack = await b.request("subscribe", {"thread_id": tid})
        last = ack["payload"]["seq"]
        async with alice.socket() as a:
            await a.request("post", {"thread_id": tid, "content": "one"})
            (first,) = await b.events(1)
            last = first["seq"]
    # Bob is gone; Alice goes on.
    async with alice.socket() as a:
        for text in ("two", "three", "four"):
            assert (await a.request("post", {"thread_id": tid, "content": text}))["type"] == "ack"
    async with bob.socket() as b:
        ack = await b.request("subscribe", {"thread_id": tid, "since_seq": last})
        assert ack["payload"]["seq"] == last + 3
        missed = await b.events(3)
        assert [e["seq"] for e in missed] == [last + 1, last + 2, last + 3]
        assert [e["data"]["content"] for e in missed] == ["two", "three", "four"]
        # And nothing else arrives: no duplicate, no gap.
        ping = await b.request("ping", {})
        assert ping["type"] == "ack"
        assert not [f for f in b.pending if f["type"] == "event"]


async def test_live_events_during_replay_are_neither_lost_nor_doubled(sqlite_server: Server) -> None:
    alice = User(sqlite_server)
    await alice.sign_in()
    tid = (await alice.create_thread())["thread_id"]
    async with alice.socket() as a:
        for i in range(30):
            await a.send("post", {"thread_id": tid, "content": f"before {i}"})
        async with alice.socket() as reader:
            await reader.send("subscribe", {"thread_id": tid, "since_seq": 0})
            for i in range(30):
                await a.send("post", {"thread_id": tid, "content": f"during {i}"})
            events = await reader.events(61)
    assert [e["seq"] for e in events] == list(range(1, 62))


async def test_other_clients_keep_being_served_after_bad_frames(sqlite_server: Server) -> None:
    alice, bob = User(sqlite_server), User(sqlite_server)
    await alice.sign_in()
    await bob.sign_in()
    tid = (await alice.create_thread())["thread_id"]
    async with alice.socket() as a, bob.socket() as b:
        await b.request("subscribe", {"thread_id": tid})
        await a.ws.send("{not json")
        assert (await a.recv())["payload"]["code"] == "bad_json"
        posted = await a.request("post", {"thread_id": tid, "content": "still here"})
        assert posted["type"] == "ack"
        (event,) = await b.events(1)
        assert event["data"]["content"] == "still here"
    await asyncio.sleep(0)
