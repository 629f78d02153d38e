"""Scale-out on real engines: two `choir serve` processes sharing one PostgreSQL and
fanning out through one Redis. A client on either sees every event of a thread in
order; epochs are settled exactly once, even when a process is killed and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import Server, User
from sqlalchemy import create_engine, text

import services
from choir.config import Settings
from choir.ledger import ONE_CHOIR, SUPPLY

EPOCH_S = 2


@contextlib.contextmanager
def choir_process(port: int, data_dir: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    log = open(data_dir.parent / f"serve-{port}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir.parent / f"serve-{port}.log").read_text()[-3000:])
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def server_env(postgres_url: str, redis_url: str, ports: list[int]) -> dict[str, str]:
    origins = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    return os.environ | {
        "CHOIR_DATABASE_URL": postgres_url,
        "CHOIR_REDIS_URL": redis_url,
        "CHOIR_VECTOR_ENGINE": "sql",
        "CHOIR_ALLOWED_ORIGINS": origins,
        "CHOIR_EPOCH_SECONDS": str(EPOCH_S),
        "CHOIR_SWEEP_INTERVAL_S": "0.3",
        "CHOIR_HOST": "127.0.0.1",
        "CHOIR_LOG_LEVEL": "WARNING",
    }


def as_server(port: int) -> Server:
    base = f"http://127.0.0.1:{port}"
    return Server(base, Settings(port=port, public_url=base))


def payouts_are_exact(url: str) -> int:
    """Σ balances = supply; each settled epoch paid what its record says, once; returns epochs settled."""
    engine = create_engine(url)
    with engine.connect() as conn:
        balances = [int(a) for (a,) in conn.execute(text("SELECT amount FROM balances"))]
        assert sum(balances) == SUPPLY
        epochs = conn.execute(text("SELECT epoch, new_message_paid FROM epochs")).all()
        rewards = conn.execute(
            text("SELECT ref, credit, amount FROM transfers WHERE kind = 'new_message_reward'")
        ).all()
        ids = conn.execute(text("SELECT count(*), count(DISTINCT id) FROM transfers")).one()
    engine.dispose()
    assert ids[0] == ids[1]
    pairs = [(ref, credit) for ref, credit, _ in rewards]
    assert len(pairs) == len(set(pairs)), "an author was paid twice for one epoch"
    for epoch, paid in epochs:
        assert sum(int(a) for ref, _, a in rewards if ref == f"epoch:{epoch}") == int(paid)
    return len(epochs)


@pytest.mark.timeout(180)
def test_two_processes_share_postgres_and_redis(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    ports = [services.free_port(), services.free_port()]
    env = server_env(postgres_url, redis_url, ports)
    with choir_process(ports[0], tmp_path / "a", env) as proc_a, choir_process(ports[1], tmp_path / "b", env):
        asyncio.run(conversation(as_server(ports[0]), as_server(ports[1])))
        time.sleep(EPOCH_S * 2 + 1)
        settled = payouts_are_exact(postgres_url)
        assert settled >= 1
        # Kill one process mid-epoch and start it again: nothing is paid twice or lost.
        proc_a.kill()
        proc_a.wait(10)
    with choir_process(ports[0], tmp_path / "a", env), choir_process(ports[1], tmp_path / "b", env):
        asyncio.run(post_more(as_server(ports[0])))
        time.sleep(EPOCH_S * 2 + 1)
        assert payouts_are_exact(postgres_url) > settled


async def conversation(a: Server, b: Server) -> None:
    alice, bob = User(a), User(b)
    await alice.sign_in()
    await bob.sign_in()
    tid = (await alice.create_thread("Across processes"))["thread_id"]
    async with alice.socket() as sa, bob.socket() as sb:
        assert (await sb.request("subscribe", {"thread_id": tid, "since_seq": 0}))["type"] == "ack"
        assert (await sa.request("subscribe", {"thread_id": tid, "since_seq": 0}))["type"] == "ack"
        await sa.request("post", {"thread_id": tid, "content": "hello from process A"})
        spec = await sb.request(
            "spec.submit", {"thread_id": tid, "content": "B joins", "stake": str(ONE_CHOIR)}
        )
        assert spec["type"] == "ack", spec
        vote = await sa.request("spec.vote", {"spec_id": spec["payload"]["spec_id"], "approve": True})
        assert vote["type"] == "ack", vote
        await sb.request("post", {"thread_id": tid, "content": "hello from process B"})
        seen_a, seen_b = await sa.events(8), await sb.events(8)
    assert seen_a == seen_b
    assert [e["seq"] for e in seen_a] == list(range(1, 9))
    assert seen_a[-1]["data"]["content"] == "hello from process B"


async def post_more(a: Server) -> None:
    carol = User(a)
    await carol.sign_in()
    tid = (await carol.create_thread("After the restart"))["thread_id"]
    async with carol.socket() as sc:
        for i in range(3):
            assert (await sc.request("post", {"thread_id": tid, "content": f"after restart {i}"}))[
                "type"
            ] == "ack"
