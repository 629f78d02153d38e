"""reward.paid reaches the recipient's open sockets live when an epoch settles."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness import Clock, Socket, User, run_server


async def reward_event(sock: Socket, timeout_s: float = 15.0) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        frame = await sock.recv(timeout_s=max(0.1, deadline - asyncio.get_running_loop().time()))
        if frame["type"] == "event" and frame["payload"]["kind"] == "reward.paid":
            payload: dict[str, object] = frame["payload"]
            return payload


def test_reward_paid_is_sent_live_to_the_author(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        with run_server(tmp_path / "data", clock=clock, epoch_seconds=60, sweep_interval_s=0.05) as server:
            alice = User(server)
            await alice.sign_in()
            tid = (await alice.create_thread("Rewarded"))["thread_id"]
            async with alice.socket() as a:
                ack = await a.request("post", {"thread_id": tid, "content": "An original observation."})
                assert ack["type"] == "ack"
                await asyncio.sleep(1.0)  # its novelty is measured
                clock.advance(60 + 600)
                event = await reward_event(a)
            data = event["data"]
            assert isinstance(data, dict) and data["reward"] == "new_message" and int(data["amount"]) > 0
            assert event["seq"] is None
            async with alice.http() as http:
                me = (await http.get("/api/me")).json()
            assert int(me["balance"]) == server.settings.welcome_grant + int(data["amount"])

    asyncio.run(scenario())
