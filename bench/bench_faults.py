"""The fault harness: two `choir serve` processes on one PostgreSQL and one Redis, under a steady
load of signed-in clients, while the services fail one after another.

Every client is connected to one of the two processes (alternately), posts in its own thread and
follows its own and its next neighbours' threads (so most deliveries cross between the processes).
A client whose connection drops (only the SIGKILLed process's clients should) reconnects and resumes
each thread from the last seq it saw. The faults, in order:

    redis-restart      Redis stopped (SIGTERM) and started again at once
    redis-kill         Redis SIGKILLed, started again after the outage
    redis-pause        Redis SIGSTOPped for the outage, then SIGCONTinued
    postgres-restart   `pg_ctl restart -m fast`
    postgres-stop      `pg_ctl stop -m fast`, started again after the outage
    choir-pause        process B SIGSTOPped for the outage, then SIGCONTinued
    choir-kill         process B SIGKILLed and started again on the same port

After each fault the harness lets the load run on, drains, and checks:

    lost        acked posts not stored at the seq their ack gave (must be 0)
    dup         events a client received twice, or out of seq order (must be 0)
    missing     posts of a followed thread a client never received (must be 0)
    refused     posts refused meanwhile, by code (store_unavailable is retryable; internal is a bug)
    down_s      the longest run of refused or unanswered posts
    back_s      from the service's return to when every client has had, across processes, a post
                acked after that return (must be <= 10 s)
    reconnects  clients that reconnected (0 except after choir-kill)
    audit       POST /api/audit as the operator (must pass)

    python -m bench faults                  every fault, 10 s outages, 40 clients
    python -m bench faults --quick          2 s outages, 8 clients (the form the test run uses)
    python -m bench.bench_faults --only redis-kill,postgres-stop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import base58
import httpx
from nacl.signing import SigningKey
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bench.bench_crash import free_port, wait_healthy
from choir.auth.client import sign_in_message

LOOPBACK: Final = "127.0.0.1"
POSTGRES_BIN: Final = Path("/usr/lib/postgresql/15/bin")
OPERATOR_KEY: Final = SigningKey(bytes(range(32)))
FAULTS: Final = (
    "redis-restart",
    "redis-kill",
    "redis-pause",
    "postgres-restart",
    "postgres-stop",
    "choir-pause",
    "choir-kill",
)
# Delivery must be back within this long of the service's return.
BACK_WITHIN_S: Final = 10.0
REPLY_TIMEOUT_S: Final = 20.0


# --- the services -----------------------------------------------------------------------------------


def _run_as_postgres() -> list[str]:
    """initdb and pg_ctl refuse root: run them as `postgres` then."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []


class Postgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.data = root / "pg"
        self.log = root / "postgres.log"

    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/postgres"

    def init(self) -> None:
        sock = self.root / "pgsock"
        sock.mkdir()
        self.data.mkdir()
        if os.geteuid() == 0:
            for path in (self.root, self.data, sock):
                shutil.chown(path, user="postgres", group="postgres")
        argv = [*_run_as_postgres(), str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync"]  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        options = f"-p {self.port} -h {LOOPBACK} -k {sock} -c fsync=off -c max_connections=200"
        (self.data / "postgresql.auto.conf").write_text("")
        self._options = options

    def ctl(self, *args: str) -> None:
        argv = [*_run_as_postgres(), str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                "-o", self._options, "-w", "-t", "60", *args]  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self.ctl("restart", "-m", "fast")


class Redis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("the fault harness needs redis-server")
        argv = [executable, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
                "--dir", str(self.root), "--loglevel", "warning"]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.port), 0.2):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        if sig in (signal.SIGTERM, signal.SIGKILL):
            self.process.wait(10)
            self.process = None


class Choir:
    """One `choir serve` process on a fixed port (a restart keeps it, so clients come back to it)."""

    def __init__(self, name: str, root: Path, database_url: str, redis_url: str) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.data = root / f"data-{name}"
        self.log = root / f"choir-{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {
            "CHOIR_LOG_LEVEL": "WARNING",
            "CHOIR_DATABASE_URL": database_url,
            "CHOIR_REDIS_URL": redis_url,
            "CHOIR_CHAIN": "none",
            # Two processes on one database share its vector index.
            "CHOIR_VECTOR_ENGINE": "sql",
            "CHOIR_OPERATORS": base58.b58encode(bytes(OPERATOR_KEY.verify_key)).decode(),
            "CHOIR_READS_PER_MINUTE": "0",
            "CHOIR_SEARCHES_PER_MINUTE": "0",
        }
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "choir",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await wait_healthy(self.base, self.process, self.log)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        if sig is signal.SIGKILL:
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the clients ------------------------------------------------------------------------------------


@dataclass
class Client:
    key: SigningKey
    server: Choir
    address: str = ""
    cookie: str = ""
    thread_id: str = ""
    follows: list[str] = field(default_factory=list)
    # thread -> [(seq, message_id, received at)] in arrival order
    received: dict[str, list[tuple[int, str, float]]] = field(default_factory=dict)
    reconnects: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Ack:
    thread_id: str
    seq: int
    message_id: str
    at: float
    server: str


@dataclass
class Load:
    clients: list[Client]
    interval_s: float
    acks: list[Ack] = field(default_factory=list)
    refusals: list[tuple[float, str]] = field(default_factory=list)
    # (sent at, answered at or None) of every post: the outage is the longest run without an ack
    attempts: list[tuple[float, float | None]] = field(default_factory=list)
    running: bool = True


async def sign_in(client: Client) -> None:
    base = client.server.base
    async with httpx.AsyncClient(base_url=base, headers={"Origin": base}, timeout=30) as http:
        fields = (await http.get("/api/auth/nonce")).json()
        message, signature, address = sign_in_message(fields, client.key)
        response = await http.post(
            "/api/auth/verify", json={"message": message, "signature": signature, "address": address}
        )
        response.raise_for_status()
        client.address, client.cookie = address, response.cookies["choir_session"]
        http.cookies.set("choir_session", client.cookie)
        created = await http.post("/api/threads", json={"title": f"faults {address[:6]}"})
        client.thread_id = created.raise_for_status().json()["thread_id"]


async def run_client(client: Client, load: Load, rng: random.Random) -> None:
    """Connect, follow, post until the load stops; on a dropped connection reconnect and resume."""
    ws_url = client.server.base.replace("http://", "ws://") + "/ws"
    headers = {"Origin": client.server.base, "Cookie": f"choir_session={client.cookie}"}
    first = True
    while load.running:
        try:
            async with connect(ws_url, additional_headers=headers, max_queue=None, open_timeout=5) as ws:
                if not first:
                    client.reconnects += 1
                first = False
                await session(ws, client, load, rng)
                return
        except (OSError, WebSocketException, TimeoutError):
            client.connected.clear()
            await asyncio.sleep(0.2)


async def session(ws: Any, client: Client, load: Load, rng: random.Random) -> None:
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
    counter = 0

    async def request(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        frame_id = f"f{counter}"
        waiting[frame_id] = asyncio.get_running_loop().create_future()
        await ws.send(json.dumps({"id": frame_id, "type": type_, "payload": payload}))
        try:
            return await asyncio.wait_for(waiting[frame_id], REPLY_TIMEOUT_S)
        finally:
            waiting.pop(frame_id, None)

    async def reader() -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] in ("ack", "error"):
                future = waiting.get(frame.get("id") or "")
                if future is not None and not future.done():
                    future.set_result(frame)
            elif frame["type"] == "event" and frame["payload"]["kind"] == "message.posted":
                p = frame["payload"]
                client.received.setdefault(p["thread_id"], []).append(
                    (p["seq"], p["data"]["message_id"], time.monotonic())
                )

    reading = asyncio.create_task(reader())
    try:
        for thread_id in client.follows:
            seen = client.received.get(thread_id)
            payload: dict[str, Any] = {"thread_id": thread_id}
            payload["since_seq"] = seen[-1][0] if seen else 0
            await request("subscribe", payload)
        client.connected.set()
        n = 0
        while load.running:
            if reading.done():
                reading.result()  # the connection died: raise, so the client reconnects
                raise OSError("connection closed")
            n += 1
            sent = time.monotonic()
            index = len(load.attempts)
            load.attempts.append((sent, None))
            content = f"fault load {n} by {client.address[:8]} {rng.random():.12f}"
            try:
                frame = await request("post", {"thread_id": client.thread_id, "content": content})
            except TimeoutError:
                load.refusals.append((sent, "timeout"))
                continue
            now = time.monotonic()
            if frame["type"] == "ack":
                load.attempts[index] = (sent, now)
                p = frame["payload"]
                load.acks.append(Ack(client.thread_id, p["seq"], p["message_id"], now, client.server.name))
            else:
                load.refusals.append((sent, frame["payload"]["code"]))
            await asyncio.sleep(load.interval_s * (0.5 + rng.random()))
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


# --- the checks -------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    acked: int = 0
    lost: int = 0
    dup: int = 0
    missing: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    down_s: float = 0.0
    back_s: float | None = None
    reconnects: int = 0
    audit_ok: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.audit_ok
            and not (self.lost or self.dup or self.missing)
            and self.refused["internal"] == 0
            and self.back_s is not None
            and self.back_s <= BACK_WITHIN_S
            and (self.fault == "choir-kill" or self.reconnects == 0)
        )


async def stored(base: str, cookie: str, thread_ids: Sequence[str]) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    async with httpx.AsyncClient(base_url=base, cookies={"choir_session": cookie}, timeout=60) as http:
        for thread_id in thread_ids:
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
            out[thread_id] = seqs
    return out


def delivery(clients: Sequence[Client], acks: Sequence[Ack]) -> tuple[int, int]:
    """(duplicates or out of order, missing) over every client and every thread it follows."""
    by_thread: dict[str, set[str]] = {}
    for ack in acks:
        by_thread.setdefault(ack.thread_id, set()).add(ack.message_id)
    dup = missing = 0
    for client in clients:
        for thread_id in client.follows:
            got = client.received.get(thread_id, [])
            seqs = [seq for seq, _, _ in got]
            dup += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
            missing += len(by_thread.get(thread_id, set()) - {m for _, m, _ in got})
    return dup, missing


def back_after(clients: Sequence[Client], acks: Sequence[Ack], returned_at: float) -> float | None:
    """How long after ``returned_at`` every client had received, from the other process, a post
    acked after ``returned_at``: delivery across processes is back for everyone."""
    acked_after = {a.message_id: a for a in acks if a.at >= returned_at}
    latest = 0.0
    for client in clients:
        crossing = [
            at
            for thread_id in client.follows
            for _, message_id, at in client.received.get(thread_id, [])
            if message_id in acked_after and acked_after[message_id].server != client.server.name
        ]
        if not crossing:
            return None
        latest = max(latest, min(crossing) - returned_at)
    return latest


def longest_outage(attempts: Sequence[tuple[float, float | None]], since: float) -> float:
    """The longest time without an answered post, from the posts sent since ``since``."""
    answered = sorted(done for sent, done in attempts if done is not None and sent >= since)
    points = [since, *answered]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


async def audit(base: str, cookie: str) -> tuple[bool, list[str]]:
    async with httpx.AsyncClient(
        base_url=base, headers={"Origin": base}, cookies={"choir_session": cookie}, timeout=300
    ) as http:
        response = await http.post("/api/audit")
        if response.status_code != 200:
            return False, [f"audit answered {response.status_code}: {response.text[:200]}"]
        report = response.json()
        return bool(report["ok"]), [f"{f['kind']}: {f['detail']}" for f in report["findings"]][:5]


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class World:
    postgres: Postgres
    redis: Redis
    a: Choir
    b: Choir
    load: Load
    outage_s: float


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def inject(fault: str, world: World) -> None:
    """Cause ``fault`` and undo it; returns when the service is back (the moment ``back_s`` counts from)."""
    outage = world.outage_s
    redis, postgres, b = world.redis, world.postgres, world.b
    if fault == "redis-restart":
        redis.signal(signal.SIGTERM)
        redis.start()
    elif fault == "redis-kill":
        redis.signal(signal.SIGKILL)
        await _sleep(outage)
        redis.start()
    elif fault == "redis-pause":
        redis.signal(signal.SIGSTOP)
        await _sleep(outage)
        redis.signal(signal.SIGCONT)
    elif fault == "postgres-restart":
        await asyncio.to_thread(postgres.restart)
    elif fault == "postgres-stop":
        await asyncio.to_thread(postgres.stop)
        await _sleep(outage)
        await asyncio.to_thread(postgres.start)
    elif fault == "choir-pause":
        b.signal(signal.SIGSTOP)
        await _sleep(outage)
        b.signal(signal.SIGCONT)
    elif fault == "choir-kill":
        b.signal(signal.SIGKILL)
        await b.start()
    else:
        raise ValueError(f"unknown fault {fault!r}")


async def until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def phase(fault: str, world: World, operator: Client, settle_s: float) -> Row:
    load, clients = world.load, world.load.clients
    row = Row(fault)
    first_ack = len(load.acks)
    first_refusal = len(load.refusals)
    reconnects_before = sum(c.reconnects for c in clients)
    await asyncio.sleep(settle_s)
    started = time.monotonic()
    await inject(fault, world)
    returned = time.monotonic()
    await until(lambda: back_after(clients, load.acks, returned) is not None, BACK_WITHIN_S + 10)
    row.back_s = back_after(clients, load.acks, returned)
    await asyncio.sleep(settle_s)
    row.down_s = longest_outage(load.attempts, started)
    acks = load.acks[first_ack:]
    row.acked = len(acks)
    row.refused = Counter(code for _, code in load.refusals[first_refusal:])
    # Drain: whatever was acked is delivered everywhere before the counts are taken.
    await until(lambda: delivery(clients, load.acks)[1] == 0, 15)
    row.dup, row.missing = delivery(clients, load.acks)
    held = await stored(world.a.base, operator.cookie, sorted({a.thread_id for a in acks}))
    row.lost = sum(1 for a in acks if held.get(a.thread_id, {}).get(a.seq) != a.message_id)
    row.reconnects = sum(c.reconnects for c in clients) - reconnects_before
    row.audit_ok, row.notes = await audit(world.a.base, operator.cookie)
    return row


async def run(args: argparse.Namespace) -> list[Row]:
    rng = random.Random(args.seed)
    rows: list[Row] = []
    # CHOIR_FAULTS_KEEP=1 keeps the run's directory (the servers' logs) and prints where it is.
    keep = os.environ.get("CHOIR_FAULTS_KEEP") == "1"
    root = Path(tempfile.mkdtemp(prefix="choir-faults-"))
    if keep:
        print(f"faults: keeping {root}", flush=True)
    try:
        await _run_in(root, args, rng, rows)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return rows


async def _run_in(root: Path, args: argparse.Namespace, rng: random.Random, rows: list[Row]) -> None:
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres", group="postgres")
    postgres, redis = Postgres(root), Redis(root)
    postgres.init()
    postgres.start()
    redis.start()
    a = Choir("a", root, postgres.url(), redis.url())
    b = Choir("b", root, postgres.url(), redis.url())
    try:
        await a.start()
        await b.start()
        clients = [
            Client(OPERATOR_KEY if i == 0 else SigningKey.generate(), a if i % 2 == 0 else b)
            for i in range(args.clients)
        ]
        for client in clients:
            await sign_in(client)
        for i, client in enumerate(clients):
            client.follows = [clients[(i + k) % len(clients)].thread_id for k in range(args.follows)]
        interval_s = len(clients) / args.posts_per_s
        load = Load(clients, interval_s)
        tasks = [asyncio.create_task(run_client(c, load, random.Random(rng.random()))) for c in clients]
        await until(lambda: all(c.connected.is_set() for c in clients), 30)
        world = World(postgres, redis, a, b, load, args.outage_s)
        for fault in args.only or FAULTS:
            row = await phase(fault, world, clients[0], args.settle_s)
            rows.append(row)
            print(line(row), flush=True)
        load.running = False
        await asyncio.wait(tasks, timeout=REPLY_TIMEOUT_S + 5)
        for task in tasks:
            task.cancel()
    finally:
        a.stop()
        b.stop()
        with contextlib.suppress(Exception):
            redis.signal(signal.SIGKILL)
        with contextlib.suppress(Exception):
            postgres.stop()


def line(row: Row) -> str:
    refused = ",".join(f"{code}={n}" for code, n in sorted(row.refused.items())) or "-"
    back = f"{row.back_s:.2f}" if row.back_s is not None else "never"
    status = "ok" if row.ok else "FAILED"
    text = (
        f"| {row.fault:<16} | {row.acked:>6} | {row.lost:>4} | {row.dup:>3} | {row.missing:>7} | {refused:<28} "
        f"| {row.down_s:>6.2f} | {back:>6} | {row.reconnects:>10} | {'passed' if row.audit_ok else 'FAILED':<6} "
        f"| {status:<6} |"
    )
    return text + "".join(f"\n      {note}" for note in row.notes)


HEADER: Final = (
    "| fault            | acked  | lost | dup | missing | refused                      "
    "| down_s | back_s | reconnects | audit  | result |\n"
    "|------------------|--------|------|-----|---------|------------------------------"
    "|--------|--------|------------|--------|--------|"
)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s outages, 8 clients")
    parser.add_argument("--clients", type=int, default=None, help="signed-in clients (default 40; quick 8)")
    parser.add_argument("--posts-per-s", type=float, default=None, help="posts a second over all clients")
    parser.add_argument("--outage-s", type=float, default=None, help="how long a service stays away")
    parser.add_argument("--follows", type=int, default=3, help="threads each client follows (its own first)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", type=lambda s: [f for f in s.split(",") if f], default=None,
                        help=f"comma-separated faults, of {', '.join(FAULTS)}")  # fmt: skip
    args = parser.parse_args(argv)
    for name in args.only or ():
        if name not in FAULTS:
            parser.error(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
    args.clients = args.clients or (8 if args.quick else 40)
    args.posts_per_s = args.posts_per_s or (8.0 if args.quick else 15.0)
    args.outage_s = args.outage_s if args.outage_s is not None else (2.0 if args.quick else 10.0)
    args.settle_s = 1.0 if args.quick else 3.0
    if args.clients < 2 or args.posts_per_s <= 0 or args.outage_s < 0 or args.follows < 1:
        parser.error("--clients >= 2, --posts-per-s > 0, --outage-s >= 0 and --follows >= 1")
    if not (POSTGRES_BIN / "pg_ctl").exists():
        raise SystemExit(f"the fault harness needs PostgreSQL 15 in {POSTGRES_BIN}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    print(
        f"faults: 2 processes on PostgreSQL and Redis, {args.clients} clients, "
        f"{args.posts_per_s:g} posts/s, outages of {args.outage_s:g} s\n{HEADER}",
        flush=True,
    )
    rows = asyncio.run(run(args))
    failed = [r.fault for r in rows if not r.ok]
    print(f"faults: {len(rows)} run, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
