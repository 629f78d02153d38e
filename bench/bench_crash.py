"""The crash harness: a real `choir serve` under a scripted load of several signed-in clients,
killed with SIGKILL at a random moment, restarted on the same data, and checked, cycle after cycle.

Each cycle: start the server on the data directory of the previous cycles; the clients post in
their threads, submit and approve specs, and withdraw, as fast as their acks come back; after a
random 0.3-2.5 s the server is killed with SIGKILL (so also inside a group commit); it is started
again (the restart time is measured to the first /health answer) and then:

    lost        every acknowledged post is stored, at the seq its ack gave (must be 0)
    audit       POST /api/audit on the restarted server: conservation, replay of every transfer
                (nothing applied twice), gap-free seqs per thread, every message against its event,
                and the live vector index against the store (must pass)

    python -m bench crash                    100 cycles on SQLite
    python -m bench.bench_crash [--quick] [--cycles N] [--database-url URL] [--seed S] [--chain litesvm]

With --chain litesvm the server settles on the embedded Solana VM, so kills also land while a
settlement batch is in flight; each cycle then also runs `choir audit --chain` (the chain against the
ledger and the anchored records) after the check.

Prints one row per cycle and a summary: cycles, acked posts, lost, audit failures, restart time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import base58
import httpx
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from choir.auth.client import sign_in_message

STARTUP_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 10.0
CLIENTS = 3
# Frames per connection and minute are limited (100): one client posts at most this often.
FRAME_INTERVAL_S = 0.65


@dataclass
class Person:
    address: str
    cookie: str
    thread_id: str = ""


@dataclass
class Cycle:
    number: int
    acked: int = 0
    lost: list[str] = field(default_factory=list)
    audit_ok: bool = False
    audit_findings: list[str] = field(default_factory=list)
    restart_s: float = 0.0
    killed_after_s: float = 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


OPERATOR_KEY = SigningKey(bytes(range(32)))


def server_env(database_url: str | None, chain: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {
        "CHOIR_LOG_LEVEL": "WARNING",
        "CHOIR_SWEEP_INTERVAL_S": "0.5",
        "CHOIR_CHAIN": chain,
        # The first client is the operator: it runs the audit after each restart.
        "CHOIR_OPERATORS": base58.b58encode(bytes(OPERATOR_KEY.verify_key)).decode(),
    }
    if database_url:
        env["CHOIR_DATABASE_URL"] = database_url
    return env


@contextlib.contextmanager
def choir_serve(
    data_dir: Path, port: int, database_url: str | None, chain: str = "none"
) -> Iterator[subprocess.Popen[bytes]]:
    env = server_env(database_url, chain)
    log_path = data_dir.parent / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def wait_healthy(base: str, process: subprocess.Popen[bytes], log_path: Path) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=2) as http:
        while time.perf_counter() - started < STARTUP_TIMEOUT_S:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
                raise RuntimeError(f"choir serve exited with {process.returncode} during start-up:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/health")).status_code == 200:
                    return time.perf_counter() - started
            await asyncio.sleep(0.05)
    raise RuntimeError("choir serve did not start")


async def sign_in(base: str, key: SigningKey | None = None) -> Person:
    async with httpx.AsyncClient(base_url=base, headers={"Origin": base}) as http:
        fields = (await http.get("/api/auth/nonce")).json()
        message, signature, address = sign_in_message(fields, key or SigningKey.generate())
        response = await http.post(
            "/api/auth/verify", json={"message": message, "signature": signature, "address": address}
        )
        response.raise_for_status()
        person = Person(address, response.cookies["choir_session"])
        created = await http.post(
            "/api/threads", json={"title": f"crash {address[:6]}"}, cookies={"choir_session": person.cookie}
        )
        person.thread_id = created.raise_for_status().json()["thread_id"]
        return person


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.counter = 0

    async def request(self, type_: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The ack's payload; None for a refusal. Raises when the connection dies (the kill)."""
        self.counter += 1
        frame_id = f"f{self.counter}"
        await self.ws.send(json.dumps({"id": frame_id, "type": type_, "payload": payload}))
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), REPLY_TIMEOUT_S))
            if frame.get("id") == frame_id:
                return frame["payload"] if frame["type"] == "ack" else None


async def load(
    base: str, people: Sequence[Person], rng: random.Random, acked: list[tuple[str, int, str]]
) -> None:
    """Every client works until its connection dies: posts mostly, a spec to a neighbour's thread
    now and then (approved by its owner), a small withdrawal."""
    ws_url = base.replace("http://", "ws://") + "/ws"

    async def work(me: Person, neighbour: Person, my_seed: int) -> None:
        mine = random.Random(my_seed)
        headers = {"Origin": base, "Cookie": f"choir_session={me.cookie}"}
        owner_headers = {"Origin": base, "Cookie": f"choir_session={neighbour.cookie}"}
        async with (
            connect(ws_url, additional_headers=headers) as ws,
            connect(ws_url, additional_headers=owner_headers) as ows,
        ):
            client, owner = Client(ws), Client(ows)
            n = 0
            while True:
                n += 1
                roll = mine.random()
                if roll < 0.8:
                    content = f"post {n} by {me.address[:8]} {mine.random():.12f}"
                    ack = await client.request("post", {"thread_id": me.thread_id, "content": content})
                    if ack is not None:
                        acked.append((me.thread_id, ack["seq"], ack["message_id"]))
                elif roll < 0.9:
                    spec = await client.request(
                        "spec.submit",
                        {
                            "thread_id": neighbour.thread_id,
                            "content": f"spec {n} {mine.random()}",
                            "stake": "1000000000",
                        },
                    )
                    if spec is not None:
                        await owner.request(
                            "spec.vote", {"spec_id": spec["spec_id"], "approve": mine.random() < 0.7}
                        )
                else:
                    await client.request("withdraw", {"amount": "1000"})
                await asyncio.sleep(FRAME_INTERVAL_S * mine.random())

    tasks = [
        asyncio.create_task(work(p, people[(i + 1) % len(people)], rng.randrange(2**32)))
        for i, p in enumerate(people)
    ]
    await asyncio.gather(*tasks, return_exceptions=True)


async def check(base: str, cookie: str, acked: list[tuple[str, int, str]], cycle: Cycle) -> None:
    async with httpx.AsyncClient(
        base_url=base, headers={"Origin": base}, cookies={"choir_session": cookie}, timeout=60
    ) as http:
        stored: dict[str, dict[int, str]] = {}
        for thread_id in {t for t, _, _ in acked}:
            seqs: dict[int, str] = {}
            before: int | None = None
            while True:
                params: dict[str, Any] = {"limit": 200} | ({"before": before} if before else {})
                page = (await http.get(f"/api/threads/{thread_id}/messages", params=params)).json()
                for m in page["messages"]:
                    seqs[m["seq"]] = m["message_id"]
                if not page["has_more"] or not page["messages"]:
                    break
                before = page["messages"][0]["seq"]
            stored[thread_id] = seqs
        cycle.lost = [f"{t}#{s} {m}" for t, s, m in acked if stored.get(t, {}).get(s) != m]
        report = (await http.post("/api/audit")).json()
        cycle.audit_ok = bool(report["ok"])
        cycle.audit_findings = [f"{f['kind']}: {f['detail']}" for f in report["findings"]][:5]


async def run(args: argparse.Namespace) -> list[Cycle]:
    rng = random.Random(args.seed)
    cycles: list[Cycle] = []
    with tempfile.TemporaryDirectory(prefix="choir-crash-") as tmp:
        data_dir = Path(tmp) / "data"
        people: list[Person] = []
        for number in range(1, args.cycles + 1):
            cycle = Cycle(number)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            acked: list[tuple[str, int, str]] = []
            with choir_serve(data_dir, port, args.database_url, args.chain) as process:
                await wait_healthy(base, process, data_dir.parent / "server.log")
                if not people:
                    people = [await sign_in(base, OPERATOR_KEY if i == 0 else None) for i in range(CLIENTS)]
                worker = asyncio.create_task(load(base, people, rng, acked))
                cycle.killed_after_s = rng.uniform(0.3, 2.5)
                await asyncio.sleep(cycle.killed_after_s)
                process.send_signal(signal.SIGKILL)
                process.wait()
                await worker
            cycle.acked = len(acked)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with choir_serve(data_dir, port, args.database_url, args.chain) as process:
                cycle.restart_s = await wait_healthy(
                    base, process, data_dir.parent / "server.log"
                )  # after the kill: recovery included
                await check(base, people[0].cookie, acked, cycle)
            if args.chain != "none":
                # The server stopped cleanly above (its settlement journal completed what the kill
                # interrupted); the chain is now checked against the ledger and the anchored records.
                audited = subprocess.run(
                    [sys.executable, "-m", "choir", "audit", "--chain", "--data-dir", str(data_dir)],
                    env=server_env(args.database_url, args.chain),
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if audited.returncode != 0 or "checked the chain" not in audited.stdout:
                    cycle.audit_ok = False
                    cycle.audit_findings += (
                        audited.stdout.splitlines()[-5:] + audited.stderr.splitlines()[-3:]
                    )
            cycles.append(cycle)
            status = "ok" if cycle.audit_ok and not cycle.lost else "FAILED"
            print(
                f"  cycle {number:>4}: killed after {cycle.killed_after_s:.2f} s, acked {cycle.acked:>4}, "
                f"lost {len(cycle.lost)}, audit {'passed' if cycle.audit_ok else 'FAILED'}, "
                f"restart {cycle.restart_s:.2f} s  {status}",
                flush=True,
            )
            for line in cycle.lost[:5] + cycle.audit_findings:
                print(f"      {line}", flush=True)
    return cycles


def summary(cycles: Sequence[Cycle], database: str, chain: str = "none") -> str:
    restarts = sorted(c.restart_s for c in cycles) or [0.0]
    failures = sum(1 for c in cycles if not c.audit_ok)
    return (
        f"crash: database={database} chain={chain} cycles={len(cycles)} acked={sum(c.acked for c in cycles)} "
        f"lost={sum(len(c.lost) for c in cycles)} audit_failures={failures} "
        f"restart_p50_s={restarts[len(restarts) // 2]:.2f} restart_max_s={restarts[-1]:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 cycles")
    parser.add_argument("--cycles", type=int, default=None, help="kill-and-restart cycles (default 100)")
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (default: SQLite in the data dir)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--chain",
        choices=["none", "litesvm"],
        default="none",
        help="settle on the embedded chain (killed mid-batch too)",
    )
    args = parser.parse_args(argv)
    if args.cycles is None:
        args.cycles = 3 if args.quick else 100
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    cycles = asyncio.run(run(args))
    print(summary(cycles, "postgresql" if args.database_url else "sqlite", args.chain))
    if any(c.lost or not c.audit_ok for c in cycles):
        sys.exit(1)


if __name__ == "__main__":
    main()
