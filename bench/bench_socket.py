"""/ws fan-out: one author posting, N subscribers of one thread, the real server on loopback.

The server is `choir serve` (SQLite in a temporary directory, every background service on, the
indexer included) in its own process, so that the clients' work does not land on its core. Every
client is a real websockets connection signed in with SIWS; one user may hold 5 connections, so
the subscribers are spread over users.

For 1, 10 and 100 subscribers, two ways of posting (and, in the same run, the raw anchor: a plain
`websockets` server that parses each post, commits it to SQLite (WAL) and broadcasts it, in
bench/raw_anchor.py, with the same clients posting one by one; the last lines give the ratio):
  one by one   the next post is sent when the previous one is acked (latency with the server idle)
  pipelined    up to --window posts in flight, round robin over the author's connections (the
               server handles one connection's frames one at a time): throughput, and latency then
Columns: posts acked per second; thread events delivered per second (posts x subscribers);
post -> delivery latency, from sending the post frame to each subscriber receiving its event; the
server's CPU per post in its event loop (parsing, commit hand-off, fan-out) and in all its threads
(with the indexer's embeddings and the SQL writer), measured until it is idle again.

    python bench/bench_socket.py [--quick] [--subscribers 1,10,100] [--posts 300] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from choir.auth.client import sign_in_message

CONNECTIONS_PER_USER = 5
# Each connection may send 100 frames a minute (a burst of 100): a poster connection posts at most this.
POSTS_PER_CONNECTION = 95
STARTUP_TIMEOUT_S = 120.0
# The server counts as idle when it used less than IDLE_CPU_S of CPU over IDLE_PROBE_S.
IDLE_PROBE_S = 0.3
IDLE_CPU_S = 0.02
DELIVERY_TIMEOUT_S = 60.0
# The post's content carries its number; a subscriber finds it without parsing the whole event.
MARK = re.compile(r'"content":"bench (\d+) ')


def cpu_s(pid: int, thread: int | None = None) -> float:
    """CPU time (user + system) used so far by the process (every thread), or by one of its threads."""
    path = Path(f"/proc/{pid}/stat") if thread is None else Path(f"/proc/{pid}/task/{thread}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of the whole server and of its event loop (the main thread: the fan-out runs
    there; the indexer's embeddings and the SQL writer run in other threads)."""

    total_s: float
    loop_s: float

    @classmethod
    def of(cls, pid: int) -> Cpu:
        return cls(cpu_s(pid), cpu_s(pid, pid))

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.total_s - other.total_s, self.loop_s - other.loop_s)


@dataclass
class Row:
    subscribers: int
    mode: str
    posts: int
    elapsed_s: float
    latencies_ms: list[float] = field(default_factory=list)
    server_cpu: Cpu = Cpu(0.0, 0.0)

    def cells(self) -> list[str]:
        lat = sorted(self.latencies_ms)
        return [
            str(self.subscribers),
            self.mode,
            str(self.posts),
            f"{self.posts / self.elapsed_s:,.0f}",
            f"{self.posts * self.subscribers / self.elapsed_s:,.0f}",
            f"{percentile(lat, 50):.1f}",
            f"{percentile(lat, 99):.1f}",
            f"{lat[-1]:.1f}",
            f"{self.server_cpu.loop_s * 1000 / self.posts:.1f}",
            f"{self.server_cpu.total_s * 1000 / self.posts:.1f}",
        ]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    index = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[index]


# -- the server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def choir_serve(data_dir: Path) -> Iterator[tuple[str, int]]:
    """`choir serve` in its own process on a free loopback port; yields its base URL and pid."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {"CHOIR_LOG_LEVEL": "WARNING"}
    log_path = data_dir.parent / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, base, log_path)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def raw_anchor(tmp: Path) -> Iterator[tuple[str, int]]:
    """bench/raw_anchor.py in its own process on a free loopback port; yields its ws URL and pid."""
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.raw_anchor", "--port", str(port), "--db", str(tmp / "anchor.db")],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the raw anchor did not start")
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}", process.pid
    finally:
        process.kill()
        process.wait()


async def settle(pid: int, timeout_s: float = 60.0) -> Cpu:
    """Wait until the server is idle (its background indexing done); its CPU time by then."""
    deadline = time.monotonic() + timeout_s
    before = Cpu.of(pid)
    while True:
        await asyncio.sleep(IDLE_PROBE_S)
        now = Cpu.of(pid)
        if (now - before).total_s < IDLE_CPU_S or time.monotonic() > deadline:
            return now
        before = now


def wait_healthy(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"choir serve exited with {process.returncode}:\n{log_path.read_text()[-2000:]}"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/health", timeout=2, verify=False).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"choir serve did not answer within {STARTUP_TIMEOUT_S} s")


# -- clients -----------------------------------------------------------------------------------------


@dataclass
class Person:
    cookie: str
    address: str


async def sign_in(http: httpx.AsyncClient) -> Person:
    fields = (await http.get("/api/auth/nonce")).json()
    message, signature, address = sign_in_message(fields, SigningKey.generate())
    response = await http.post(
        "/api/auth/verify", json={"message": message, "signature": signature, "address": address}
    )
    response.raise_for_status()
    return Person(response.cookies["choir_session"], address)


@contextlib.asynccontextmanager
async def open_socket(base: str, person: Person, compression: bool) -> AsyncIterator[ClientConnection]:
    headers = {"Cookie": f"choir_session={person.cookie}", "Origin": base}
    async with connect(
        base.replace("http://", "ws://") + "/ws",
        additional_headers=headers,
        compression="deflate" if compression else None,
        max_queue=None,
    ) as ws:
        yield ws


EventHandler = Callable[[str, float], None]


class Client:
    """One signed-in connection: requests resolved by their replies, events handed to ``on_event``
    as raw text with their arrival time (parsing each of them would time the client, not the server)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.on_event: EventHandler | None = None
        self.reader = asyncio.create_task(self._read())

    async def request(self, type_: str, payload: dict[str, Any], frame_id: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[frame_id] = future
        await self.ws.send(json.dumps({"id": frame_id, "type": type_, "payload": payload}))
        return await future

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            text = message if isinstance(message, str) else message.decode()
            if text.startswith('{"type":"event"'):
                if self.on_event is not None:
                    self.on_event(text, now)
                continue
            frame = json.loads(text)
            future = self.waiting.pop(frame.get("id") or "", None)
            if future is None or future.done():
                continue
            if frame["type"] == "error":
                future.set_exception(RuntimeError(f"refused: {frame['payload']}"))
            else:
                future.set_result(frame["payload"])


def time_deliveries(
    client: Client, sent_at: dict[int, float], latencies_ms: list[float], expected: int
) -> asyncio.Event:
    """Record the latency of each post's event at ``client``; the event is set once all arrived."""
    done = asyncio.Event()
    got = 0

    def on_event(text: str, now: float) -> None:
        nonlocal got
        match = MARK.search(text)
        if match is None:
            return
        latencies_ms.append((now - sent_at[int(match.group(1))]) * 1000)
        got += 1
        if got == expected:
            done.set()

    client.on_event = on_event
    return done


@dataclass
class Target:
    """The server under test and a signed-out HTTP client for it."""

    base: str
    pid: int
    http: httpx.AsyncClient
    compression: bool


async def run_once(
    target: Target, subscribers: list[Client], mode: str, args: argparse.Namespace, ids: Iterator[int]
) -> Row:
    """Post ``args.posts`` messages to a new thread that ``subscribers`` follow; time every delivery."""
    base, http, posts = target.base, target.http, args.posts
    author = await sign_in(http)
    created = await http.post(
        "/api/threads", json={"title": "bench"}, headers={"Cookie": f"choir_session={author.cookie}"}
    )
    thread = created.raise_for_status().json()
    thread_id = thread["thread_id"]
    for i, sub in enumerate(subscribers):
        await sub.request("subscribe", {"thread_id": thread_id}, f"s{next(ids)}-{i}")
    sent_at: dict[int, float] = {}
    latencies_ms: list[float] = []
    waits = [time_deliveries(sub, sent_at, latencies_ms, posts) for sub in subscribers]
    connections = min(CONNECTIONS_PER_USER, math.ceil(posts / POSTS_PER_CONNECTION))
    if posts > connections * POSTS_PER_CONNECTION:
        raise ValueError(f"at most {CONNECTIONS_PER_USER * POSTS_PER_CONNECTION} posts per run")
    async with contextlib.AsyncExitStack() as stack:
        posters = [
            Client(await stack.enter_async_context(open_socket(base, author, target.compression)))
            for _ in range(connections)
        ]
        numbers = iter(range(posts))
        in_flight = args.window if mode == "pipelined" else 1

        async def post_some() -> None:
            for n in numbers:
                content = f"bench {n} " + "words " * 20
                sent_at[n] = time.perf_counter()
                await posters[n % connections].request(
                    "post", {"thread_id": thread_id, "content": content}, f"p{n}"
                )

        cpu_before = await settle(target.pid)
        if mode == BURST_MODE:
            # Committed at once, embedded over the next seconds: the posts below meet the indexer busy.
            await index_burst(target, BURST_MESSAGES)
        started = time.perf_counter()
        await asyncio.gather(*(post_some() for _ in range(in_flight)))
        elapsed_s = time.perf_counter() - started
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in waits)), DELIVERY_TIMEOUT_S)
        server_cpu = await settle(target.pid) - cpu_before
        for p in posters:
            p.reader.cancel()
    for i, sub in enumerate(subscribers):
        await sub.request("unsubscribe", {"thread_id": thread_id}, f"u{next(ids)}-{i}")
    return Row(len(subscribers), mode, posts, elapsed_s, latencies_ms, server_cpu)


BURST_MODE = "one by one, indexing burst"
BURST_MESSAGES = 1000
BURST_PER_CONNECTION = 90  # under the 100-frame burst a connection may send


async def index_burst(target: Target, messages: int) -> None:
    """Post `messages` messages to threads nobody follows, as fast as the rate limits allow, and
    return once all are committed (their embedding is still to come)."""
    connections_needed = math.ceil(messages / BURST_PER_CONNECTION)
    authors = [
        await sign_in(target.http) for _ in range(math.ceil(connections_needed / CONNECTIONS_PER_USER))
    ]
    numbers = iter(range(messages))
    async with contextlib.AsyncExitStack() as stack:
        posters = []
        for i in range(connections_needed):
            author = authors[i // CONNECTIONS_PER_USER]
            if i % CONNECTIONS_PER_USER == 0:
                created = await target.http.post(
                    "/api/threads",
                    json={"title": "burst"},
                    headers={"Cookie": f"choir_session={author.cookie}"},
                )
                thread_id = created.raise_for_status().json()["thread_id"]
            ws = await stack.enter_async_context(open_socket(target.base, author, target.compression))
            posters.append((Client(ws), thread_id))

        async def post_from(client: Client, thread_id: str) -> None:
            for n in itertools.islice(numbers, BURST_PER_CONNECTION):
                text = f"burst {n}: notes on {['soil', 'bread', 'tyres', 'flights'][n % 4]} and {n * 7919 % 1000}"
                await client.request("post", {"thread_id": thread_id, "content": text}, f"b{n}")

        await asyncio.gather(*(post_from(c, t) for c, t in posters))
        for client, _ in posters:
            client.reader.cancel()


async def run_anchor(url: str, pid: int, counts: list[int], args: argparse.Namespace) -> list[Row]:
    """The same clients and the same posting against the raw anchor (one by one only: its latency
    with the server idle is the yardstick)."""
    rows: list[Row] = []
    ids = itertools.count()
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [
            Client(await stack.enter_async_context(connect(url, compression=None, max_queue=None)))
            for _ in range(max(counts))
        ]
        poster = Client(await stack.enter_async_context(connect(url, compression=None, max_queue=None)))
        for count in counts:
            thread_id = f"t{count}"
            for i, sub in enumerate(subscribers[:count]):
                await sub.request("subscribe", {"thread_id": thread_id}, f"s{next(ids)}-{i}")
            sent_at: dict[int, float] = {}
            latencies_ms: list[float] = []
            waits = [time_deliveries(sub, sent_at, latencies_ms, args.posts) for sub in subscribers[:count]]
            cpu_before = await settle(pid)
            started = time.perf_counter()
            for n in range(args.posts):
                sent_at[n] = time.perf_counter()
                content = f"bench {n} " + "words " * 20
                await poster.request("post", {"thread_id": thread_id, "content": content}, f"p{n}")
            elapsed_s = time.perf_counter() - started
            await asyncio.wait_for(asyncio.gather(*(w.wait() for w in waits)), DELIVERY_TIMEOUT_S)
            cpu = await settle(pid) - cpu_before
            for i, sub in enumerate(subscribers[:count]):
                await sub.request("unsubscribe", {"thread_id": thread_id}, f"u{next(ids)}-{i}")
            row = Row(count, "raw anchor", args.posts, elapsed_s, latencies_ms, cpu)
            rows.append(row)
            print("  " + "  ".join(row.cells()), file=sys.stderr, flush=True)
    return rows


async def bench(args: argparse.Namespace) -> tuple[list[Row], bool]:
    """The rows of the table, and whether the server accepted permessage-deflate."""
    counts = sorted({int(c) for c in args.subscribers.split(",")})
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="choir-bench-") as tmp,
        choir_serve(Path(tmp) / "data") as (base, pid),
    ):
        async with httpx.AsyncClient(
            base_url=base, headers={"Origin": base}, timeout=30, verify=False
        ) as http:
            users = [await sign_in(http) for _ in range(math.ceil(max(counts) / CONNECTIONS_PER_USER))]
            async with contextlib.AsyncExitStack() as stack:
                subscribers = []
                for i in range(max(counts)):
                    ws = await stack.enter_async_context(
                        open_socket(base, users[i // CONNECTIONS_PER_USER], args.compression)
                    )
                    subscribers.append(Client(ws))
                response = subscribers[0].ws.response
                extensions = response.headers.get("Sec-WebSocket-Extensions", "") if response else ""
                deflate = "permessage-deflate" in extensions
                target = Target(base, pid, http, args.compression)
                ids = itertools.count()
                for count in counts:
                    modes = ["one by one", "pipelined"] + (
                        [BURST_MODE] if args.burst and count == max(counts) else []
                    )
                    for mode in modes:
                        row = await run_once(target, subscribers[:count], mode, args, ids)
                        rows.append(row)
                        print("  " + "  ".join(row.cells()), file=sys.stderr, flush=True)
    if args.anchor:
        with tempfile.TemporaryDirectory(prefix="choir-anchor-") as tmp, raw_anchor(Path(tmp)) as (url, pid):
            rows += await run_anchor(url, pid, counts, args)
    return rows, deflate


def print_table(rows: list[Row], args: argparse.Namespace, deflate: bool) -> None:
    head = [
        "subscribers",
        "mode",
        "posts",
        "posts/s",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "loop cpu ms/post",
        "all cpu ms/post",
    ]
    table = [head] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    offered = "offered" if args.compression else "not offered"
    accepted = "accepted" if deflate else "declined"
    print("/ws fan-out to the subscribers of one thread; `choir serve` (SQLite) in its own process")
    print(f"permessage-deflate: {offered} by the clients, {accepted} by the server")
    print(f"pipelined window: {args.window} posts in flight; latency = post frame sent -> event received")
    for line in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
    choir = {r.subscribers: r for r in rows if r.mode == "one by one"}
    for burst in (r for r in rows if r.mode == BURST_MODE):
        calm = sorted(choir[burst.subscribers].latencies_ms)
        busy = sorted(burst.latencies_ms)
        print(
            f"indexing burst of {BURST_MESSAGES} messages at {burst.subscribers} subscribers: "
            f"p99 {percentile(busy, 99):.1f} ms vs {percentile(calm, 99):.1f} ms "
            f"({percentile(busy, 99) / percentile(calm, 99):.2f}x)"
        )
    for anchor in (r for r in rows if r.mode == "raw anchor" and r.subscribers in choir):
        ours, raw = sorted(choir[anchor.subscribers].latencies_ms), sorted(anchor.latencies_ms)
        p50 = percentile(ours, 50) / percentile(raw, 50)
        p99 = percentile(ours, 99) / percentile(raw, 99)
        print(
            f"choir / raw anchor at {anchor.subscribers} subscribers, one by one: p50 {p50:.2f}x, p99 {p99:.2f}x"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer posts per run, for a smoke run")
    parser.add_argument("--subscribers", default="1,10,100", help="comma-separated subscriber counts")
    parser.add_argument(
        "--posts", type=int, default=None, help="posts per run (default 300; 30 with --quick)"
    )
    parser.add_argument("--window", type=int, default=8, help="posts in flight when pipelined")
    parser.add_argument(
        "--no-burst",
        dest="burst",
        action="store_false",
        help=f"skip the run during an indexing burst ({BURST_MESSAGES} messages committed just before it)",
    )
    parser.add_argument(
        "--no-anchor", dest="anchor", action="store_false", help="skip the raw anchor (bench/raw_anchor.py)"
    )
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_false",
        help="clients do not offer permessage-deflate (browsers do, so it is on by default)",
    )
    args = parser.parse_args(argv)
    if args.posts is None:
        args.posts = 30 if args.quick else 300
    rows, deflate = asyncio.run(bench(args))
    print_table(rows, args, deflate)


if __name__ == "__main__":
    main()
