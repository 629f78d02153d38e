"""Many people at once: C clients over P `choir serve` processes sharing PostgreSQL, Redis and the SQL
vector index, all started here on loopback.

Each run starts a new database and P processes (each on its own port, as behind a proxy), signs in
C/5 people (5 connections each: the most one person may hold on one process), and spreads their C
connections over the processes round robin. There are C/20 threads, each with about 20 subscribers
on every process alike; each thread's creator posts to it at --rate posts/s for --duration seconds
(the offered load is threads x rate). Every client records every event of its thread it receives.

After the posts stop and the deliveries drain, each client's record is checked against the store:
every committed event of its thread after the seq it subscribed at must have arrived exactly once and
in seq order. **lost** counts committed events a client never received, **duplicated** events received
twice, **misordered** events received after a later seq. With --kill (a second row per process count
above one), process 0 is killed with SIGKILL halfway through: its clients reconnect to the next
process and resume with `since_seq` (the posts whose ack was lost with it are not timed).

Columns: processes; clients connected; posts/s offered and acked; thread events delivered/s;
post -> delivery latency p50/p99/max (from sending the post frame to each subscriber receiving its
event); lost, duplicated, misordered; reconnects; RSS (MB) and CPU (% of one core) of each server
process, and the CPU of this client process (on the same cores). The last line sums the runs:
`load: clients=C lost=L duplicated=D p99_ms=X`, C the largest client count, X the p99 of the last run
without a fault.

    python -m bench load [--quick] [--clients 1000] [--processes 1,2] [--rate 0.5] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nacl.signing import SigningKey
from sqlalchemy import create_engine, text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.bench_socket import Person, cpu_s, free_port, percentile, wait_healthy
from choir.auth.client import sign_in_message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import services  # noqa: E402  (the test suite's PostgreSQL and Redis launchers)

CONNECTIONS_PER_PERSON = 5
CLIENTS_PER_THREAD = 20
MARK = re.compile(r"load (\d+) ")
DRAIN_TIMEOUT_S = 60.0
RECONNECT_DELAY_S = 0.2
CONNECT_CONCURRENCY = 50
PEOPLE_PER_ADDRESS = 100


@dataclass
class Proc:
    number: int
    port: int
    process: subprocess.Popen[bytes]
    alive: bool = True
    rss_max_kb: int = 0
    cpu_start_s: float = 0.0
    cpu_end_s: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Client:
    number: int
    person: Person
    thread_id: str
    proc: int
    start_seq: int = -1
    last_seq: int = -1
    seqs: list[int] = field(default_factory=list)
    reconnects: int = 0
    poster: bool = False


@dataclass
class Run:
    processes: int
    clients: int
    kill: bool
    offered_per_s: float
    acked: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    misordered: int = 0
    reconnects: int = 0
    delivered: int = 0
    rss_mb: list[float] = field(default_factory=list)
    cpu_pct: list[float] = field(default_factory=list)
    client_cpu_pct: float = 0.0
    notified: int = 0  # notification frames received (--follow)

    def cells(self) -> list[str]:
        lat = sorted(self.latencies_ms) or [math.nan]
        return [
            f"{self.processes}{' kill' if self.kill else ''}",
            str(self.clients),
            f"{self.offered_per_s:.1f}",
            f"{self.acked / self.duration_s:.1f}",
            f"{self.delivered / self.duration_s:.0f}",
            f"{percentile(lat, 50):.0f}",
            f"{percentile(lat, 99):.0f}",
            f"{lat[-1]:.0f}",
            str(self.lost),
            str(self.duplicated),
            str(self.misordered),
            str(self.reconnects),
            "/".join(f"{r:.0f}" for r in self.rss_mb),
            "/".join(f"{c:.0f}" for c in self.cpu_pct),
            f"{self.client_cpu_pct:.0f}",
        ]


HEADER = [
    "procs", "clients", "offered/s", "acked/s", "deliv/s", "p50 ms", "p99 ms", "max ms",
    "lost", "dup", "misord", "reconn", "RSS MB", "CPU %", "client CPU %",
]  # fmt: skip


# -- the servers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(count: int, database_url: str, redis_url: str, tmp: Path) -> Iterator[list[Proc]]:
    ports = [free_port() for _ in range(count)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {
        "CHOIR_DATABASE_URL": database_url,
        "CHOIR_REDIS_URL": redis_url,
        "CHOIR_VECTOR_ENGINE": "sql",
        "CHOIR_LOG_LEVEL": "WARNING",
        "CHOIR_ALLOWED_ORIGINS": ",".join(f"http://127.0.0.1:{p}" for p in ports),
        "CHOIR_HOST": "127.0.0.1",
    }
    procs = []
    for n, port in enumerate(ports):
        log = (tmp / f"serve-{n}.log").open("wb")
        cmd = [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(tmp / f"d{n}")]
        procs.append(Proc(n, port, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)))
    try:
        for proc in procs:
            wait_healthy(proc.process, proc.base, tmp / f"serve-{proc.number}.log")
        yield procs
    finally:
        for proc in procs:
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def sample_rss(procs: list[Proc], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for proc in procs:
            if proc.alive:
                proc.rss_max_kb = max(proc.rss_max_kb, rss_kb(proc.process.pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


# -- the clients -------------------------------------------------------------------------------------


async def sign_in_retrying(http: httpx.AsyncClient) -> Person:
    """Sign in, waiting out the per-address sign-in limit (240 requests a minute per process, the
    nonce and the verification each counting) when this loopback address reaches it."""
    key = SigningKey.generate()
    while True:
        nonce = await http.get("/api/auth/nonce")
        if nonce.status_code == 429:
            await asyncio.sleep(2.0)
            continue
        message, signature, address = sign_in_message(nonce.raise_for_status().json(), key)
        body = {"message": message, "signature": signature, "address": address}
        verified = await http.post("/api/auth/verify", json=body)
        if verified.status_code == 429:
            await asyncio.sleep(2.0)
            continue
        verified.raise_for_status()
        return Person(verified.cookies["choir_session"], address)


class Load:
    def __init__(
        self,
        procs: list[Proc],
        clients: int,
        rate: float,
        duration_s: float,
        kill: bool,
        follow: bool = False,
    ) -> None:
        self.procs = procs
        # Every reader follows its thread: each post then notifies the thread's other people too.
        self.follow = follow
        self.notified = 0
        self.count = clients
        self.rate = rate
        self.duration_s = duration_s
        self.kill = kill
        self.threads = max(1, clients // CLIENTS_PER_THREAD)
        self.clients: list[Client] = []
        self.sent_at: dict[int, float] = {}
        self.latencies_ms: list[float] = []
        self.acked = 0
        self.posting = True
        # Posting starts once every client is connected and subscribed (not during the handshakes).
        self.go = asyncio.Event()
        self.stopped = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.next_post = 0

    def live_proc(self, start: int) -> Proc:
        for step in range(len(self.procs)):
            proc = self.procs[(start + step) % len(self.procs)]
            if proc.alive:
                return proc
        raise RuntimeError("no server process is alive")

    async def setup(self) -> None:
        people_count = math.ceil(self.count / CONNECTIONS_PER_PERSON)
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        # A server allows 240 sign-in requests a minute from one address: the people come from
        # several loopback addresses (127.0.0.2, .3, ...), as many people do from many.
        sources = [f"127.0.0.{2 + n}" for n in range(math.ceil(people_count / PEOPLE_PER_ADDRESS))]
        https = [
            httpx.AsyncClient(
                base_url=p.base,
                timeout=60,
                headers={"Origin": p.base},
                transport=httpx.AsyncHTTPTransport(local_address=source),
            )
            for source in sources
            for p in self.procs
        ]

        async def one(n: int) -> Person:
            async with limit:
                address = n // PEOPLE_PER_ADDRESS
                return await sign_in_retrying(https[address * len(self.procs) + n % len(self.procs)])

        people = await asyncio.gather(*(one(n) for n in range(people_count)))
        thread_ids = []
        for t in range(self.threads):  # each thread's creator is its poster
            http = https[t % len(https)]
            created = await http.post(
                "/api/threads",
                json={"title": f"load {t}"},
                headers={"Cookie": f"choir_session={people[t].cookie}"},
            )
            thread_ids.append(created.raise_for_status().json()["thread_id"])
        for http in https:
            await http.aclose()
        for n in range(self.count):
            person = people[n // CONNECTIONS_PER_PERSON]
            client = Client(n, person, thread_ids[n % self.threads], n % len(self.procs))
            self.clients.append(client)
        # The poster of thread t is person t's first connection.
        self.posters = {
            self.clients[t * CONNECTIONS_PER_PERSON].number: thread_ids[t] for t in range(self.threads)
        }
        ready = [asyncio.get_running_loop().create_future() for _ in self.clients]
        for client, future in zip(self.clients, ready, strict=True):
            self.tasks.append(asyncio.create_task(self.connection(client, future, limit)))
        await asyncio.gather(*ready)

    async def connection(self, client: Client, ready: asyncio.Future[None], limit: asyncio.Semaphore) -> None:
        """One client's life: connect, subscribe (or resume), read; reconnect elsewhere when cut."""
        while not self.stopped.is_set():
            proc = self.live_proc(client.proc)
            client.proc = proc.number
            try:
                async with limit if not ready.done() else contextlib.nullcontext():
                    ws = await connect(
                        proc.base.replace("http://", "ws://") + "/ws",
                        additional_headers={
                            "Cookie": f"choir_session={client.person.cookie}",
                            "Origin": proc.base,
                        },
                        compression=None,
                        max_queue=None,
                        open_timeout=60,
                    )
                async with ws:
                    await self.session(client, ws, ready)
            except (ConnectionClosed, OSError, TimeoutError):
                pass
            if self.stopped.is_set():
                return
            client.reconnects += 1
            if not self.procs[client.proc].alive or self.procs[client.proc].process.poll() is not None:
                self.procs[client.proc].alive = False
                client.proc += 1
            await asyncio.sleep(RECONNECT_DELAY_S * random.random())

    async def session(self, client: Client, ws: ClientConnection, ready: asyncio.Future[None]) -> None:
        payload: dict[str, Any] = {"thread_id": client.thread_id}
        if client.last_seq >= 0:
            payload["since_seq"] = client.last_seq
        await ws.send(json.dumps({"id": "sub", "type": "subscribe", "payload": payload}))
        poster: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                now = time.perf_counter()
                frame = json.loads(message)
                kind = frame["type"]
                if kind == "event":
                    if frame["payload"]["kind"] == "notification":
                        self.notified += 1
                    self.on_event(client, frame["payload"], now)
                elif kind == "ack" and frame["id"] == "sub":
                    if client.start_seq < 0:
                        client.start_seq = client.last_seq = frame["payload"]["seq"]
                        if self.follow:
                            follow = {"thread_id": client.thread_id, "follow": True}
                            await ws.send(
                                json.dumps({"id": "follow", "type": "thread.follow", "payload": follow})
                            )
                    if not ready.done():
                        ready.set_result(None)
                    if client.number in self.posters and poster is None:
                        poster = asyncio.create_task(self.post(ws, self.posters[client.number]))
                elif kind == "ack" and frame["id"].startswith("p"):
                    self.acked += 1
                elif kind == "error":
                    print(f"client {client.number}: {frame['payload']}", file=sys.stderr)
        finally:
            if poster is not None:
                poster.cancel()

    def on_event(self, client: Client, payload: dict[str, Any], now: float) -> None:
        seq = payload.get("seq")
        if payload.get("thread_id") != client.thread_id or seq is None:
            return
        client.seqs.append(seq)
        client.last_seq = max(client.last_seq, seq)
        match = MARK.match(str((payload.get("data") or {}).get("content", "")))
        if match is not None:
            sent = self.sent_at.get(int(match.group(1)))
            if sent is not None:
                self.latencies_ms.append((now - sent) * 1000)

    async def post(self, ws: ClientConnection, thread_id: str) -> None:
        interval_s = 1.0 / self.rate
        await self.go.wait()
        await asyncio.sleep(random.random() * interval_s)  # posters out of phase
        next_at = time.perf_counter()
        while self.posting:
            n = self.next_post
            self.next_post += 1
            content = f"load {n} " + "words " * 12
            self.sent_at[n] = time.perf_counter()
            frame = {"id": f"p{n}", "type": "post", "payload": {"thread_id": thread_id, "content": content}}
            try:
                await ws.send(json.dumps(frame))
            except ConnectionClosed:
                return  # the connection's reader reconnects, and a new poster starts there
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def drive(self) -> float:
        self.go.set()
        started = time.perf_counter()
        if self.kill:
            await asyncio.sleep(self.duration_s / 2)
            victim = self.procs[0]
            victim.cpu_end_s = cpu_s(victim.process.pid)
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            victim.alive = False
            await asyncio.sleep(self.duration_s / 2)
        else:
            await asyncio.sleep(self.duration_s)
        self.posting = False
        return time.perf_counter() - started

    async def drain(self, last_seqs: dict[str, int]) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(c.last_seq >= last_seqs.get(c.thread_id, 0) for c in self.clients):
                return
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self.stopped.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def committed_last_seqs(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT thread_id, max(seq) FROM events GROUP BY thread_id")).all()
    engine.dispose()
    return {thread_id: int(seq) for thread_id, seq in rows}


def check(clients: Sequence[Client], last_seqs: dict[str, int], run: Run) -> None:
    for client in clients:
        expected = set(range(client.start_seq + 1, last_seqs.get(client.thread_id, 0) + 1))
        got = client.seqs
        run.lost += len(expected - set(got))
        run.duplicated += len(got) - len(set(got))
        run.misordered += sum(1 for a, b in itertools.pairwise(got) if b < a)
        run.reconnects += client.reconnects
        run.delivered += len(got)


async def one_run(
    pg: services.PostgresServer,
    redis_url: str,
    processes: int,
    clients: int,
    args: argparse.Namespace,
    kill: bool,
) -> Run:
    with (
        tempfile.TemporaryDirectory(prefix="choir-load-") as tmp,
        pg.fresh_database() as url,
        servers(processes, url, redis_url, Path(tmp)) as procs,
    ):
        load = Load(procs, clients, args.rate, args.duration, kill, args.follow)
        await load.setup()
        run = Run(processes, clients, kill, load.threads * args.rate)
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(procs, stop_sampling))
        for proc in procs:
            proc.cpu_start_s = cpu_s(proc.process.pid)
        client_cpu_start = time.process_time()
        run.duration_s = await load.drive()
        for proc in procs:
            if proc.alive:
                proc.cpu_end_s = cpu_s(proc.process.pid)
        run.client_cpu_pct = 100 * (time.process_time() - client_cpu_start) / run.duration_s
        await asyncio.sleep(2.0)  # the posts in flight commit (or are refused) before the count
        last_seqs = await asyncio.to_thread(committed_last_seqs, url)
        await load.drain(last_seqs)
        stop_sampling.set()
        await sampler
        await load.stop()
        check(load.clients, last_seqs, run)
        run.acked = load.acked
        run.notified = load.notified
        run.latencies_ms = load.latencies_ms
        run.rss_mb = [p.rss_max_kb / 1024 for p in procs]
        run.cpu_pct = [100 * (p.cpu_end_s - p.cpu_start_s) / run.duration_s for p in procs]
        return run


async def bench(args: argparse.Namespace) -> list[Run]:
    runs = []
    with services.start_postgres() as pg, services.start_redis() as redis:
        for clients in args.clients:
            for processes in args.processes:
                runs.append(await one_run(pg, redis.url(), processes, clients, args, kill=False))
                print_row(runs[-1])
                if args.kill and processes > 1:
                    redis.flush()
                    runs.append(await one_run(pg, redis.url(), processes, clients, args, kill=True))
                    print_row(runs[-1])
                redis.flush()
    return runs


def print_row(run: Run) -> None:
    print(" | ".join(run.cells()), flush=True)


def print_table(runs: list[Run], args: argparse.Namespace) -> None:
    rows = [HEADER] + [r.cells() for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    print()
    print(
        f"{args.duration:.0f} s of posting per run, {args.rate} posts/s per thread, "
        f"{CLIENTS_PER_THREAD} clients per thread, {os.cpu_count()} cores shared by servers, "
        "PostgreSQL, Redis and clients"
    )
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    clean = [r for r in runs if not r.kill] or runs
    p99 = percentile(sorted(clean[-1].latencies_ms) or [math.nan], 99)
    lost = sum(r.lost + r.misordered for r in runs)
    duplicated = sum(r.duplicated for r in runs)
    if args.follow:
        print("notifications received per run: " + ", ".join(str(r.notified) for r in runs))
    print(f"load: clients={max(args.clients)} lost={lost} duplicated={duplicated} p99_ms={p99:.0f}")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 clients, 2 processes, 10 s, with a kill")
    parser.add_argument("--clients", default=None, help="client counts, comma-separated (default 1000)")
    parser.add_argument("--processes", default=None, help="process counts, comma-separated (default 1,2)")
    parser.add_argument("--rate", type=float, default=0.5, help="posts/s per thread (at most 1.5)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of posting per run (60)")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="no SIGKILL run")
    parser.add_argument(
        "--follow", action="store_true", help="every reader follows its thread: each post notifies its people"
    )
    args = parser.parse_args(argv)
    try:
        args.clients = [int(c) for c in (args.clients or ("100" if args.quick else "1000")).split(",")]
        args.processes = [int(p) for p in (args.processes or ("2" if args.quick else "1,2")).split(",")]
    except ValueError:
        parser.error("--clients and --processes take comma-separated integers")
    if not all(c >= CONNECTIONS_PER_PERSON for c in args.clients) or not all(
        1 <= p <= 16 for p in args.processes
    ):
        parser.error(f"--clients must be >= {CONNECTIONS_PER_PERSON}, --processes in 1..16")
    if not 0 < args.rate <= 1.5:
        parser.error("--rate must be in (0, 1.5]: one connection may send 100 frames a minute")
    args.duration = args.duration or (10.0 if args.quick else 60.0)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    print(" | ".join(HEADER), flush=True)
    runs = asyncio.run(bench(args))
    print_table(runs, args)


if __name__ == "__main__":
    main()
