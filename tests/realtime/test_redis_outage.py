"""A Redis outage does not end live delivery: the broker resubscribes when Redis is back, and every
subscription's gap (what was posted meanwhile, stored but never published) is filled from the store,
with no client reconnecting. /health says "degraded" while fan-out is down. A process also starts
while Redis is unreachable, and connects when it returns."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from harness import User, run_server

import services


@contextmanager
def redis_on(port: int, root: Path) -> Iterator[subprocess.Popen[bytes]]:
    executable = services.require_executable(shutil.which("redis-server"), "redis-server")
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(root), "--loglevel", "warning"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_connect_timeout=0.5) as client:
                    client.ping()
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


async def _until(check: Any, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_delivery_comes_back_after_redis_is_killed_and_started_again(tmp_path: Path) -> None:
    port = services.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with redis_on(port, tmp_path) as first, run_server(tmp_path / "data", redis_url=url) as server:
        runtime: Any = server.app.state.runtime

        async def scenario() -> None:
            alice, bob = User(server), User(server)
            await alice.sign_in()
            await bob.sign_in()
            tid = (await alice.create_thread("Outage"))["thread_id"]
            async with alice.socket() as a, bob.socket() as b:
                await b.request("subscribe", {"thread_id": tid})
                assert (await a.request("post", {"thread_id": tid, "content": "before"}))["type"] == "ack"
                assert [e["data"]["content"] for e in await b.events(1)] == ["before"]
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                await _until(lambda: not runtime.broker.connected)
                health = httpx.get(f"{server.base_url}/health").json()
                assert health["status"] == "degraded" and health["dependencies"]["fan_out"] == "degraded"
                for n in range(3):  # stored and acked while fan-out is down
                    assert (await a.request("post", {"thread_id": tid, "content": f"during {n}"}))[
                        "type"
                    ] == "ack"
                with redis_on(port, tmp_path):
                    await _until(lambda: runtime.broker.connected)
                    assert (await a.request("post", {"thread_id": tid, "content": "after"}))["type"] == "ack"
                    events = await b.events(4)
                    assert [e["data"]["content"] for e in events] == [
                        "during 0",
                        "during 1",
                        "during 2",
                        "after",
                    ]
                    seqs = [e["seq"] for e in events]
                    assert seqs == sorted(set(seqs))  # once each, in order
                    assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"

        asyncio.run(scenario())


def test_a_process_starts_while_redis_is_down_and_connects_when_it_returns(tmp_path: Path) -> None:
    port = services.free_port()
    with run_server(tmp_path / "data", redis_url=f"redis://127.0.0.1:{port}/0") as server:
        runtime: Any = server.app.state.runtime
        assert httpx.get(f"{server.base_url}/health").json()["status"] == "degraded"
        with redis_on(port, tmp_path):

            async def connected() -> None:
                await _until(lambda: runtime.broker.connected)

            asyncio.run(connected())
            assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"
