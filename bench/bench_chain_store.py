"""Settlement from the SQL store, as `choir serve` runs it with CHOIR_CHAIN=litesvm.

Catch-up: a store written by the simulator (real Solana addresses as actors) is settled from position 0
by `ChainService` end to end (the change log read in one snapshot per batch, planning, signing, the
journal and checkpoint saved in SQLite with synchronous=FULL, LiteSVM, the snapshot saved with the
cursor), then `choir audit --chain` runs on it. Live: single posts committed one by one, each waited for
until settled; the latency includes the 0.2 s pause that lets close commits share a batch.

    python bench/bench_chain_store.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from solders.keypair import Keypair

from choir.chain.audit_checks import find_chain_source
from choir.chain.keys import ChainKeys
from choir.chain.service import ChainService
from choir.engine.coordinator import Coordinator
from choir.ops.audit import audit
from choir.ops.simulate import Simulator
from choir.program import PostMessage
from choir.store.sql import Store

LIVE_POSTS = 20


def simulated_store(path: Path, steps: int) -> None:
    sim = Simulator(seed=7, actors=50, database_url=f"sqlite:///{path}")
    sim.actors = [str(Keypair().pubkey()) for _ in sim.actors]
    sim.run(steps)
    sim.coordinator.store.close()


def counts(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT kind, count(*) FROM changes GROUP BY kind").fetchall())


async def catch_up(path: Path) -> tuple[float, int, float, int]:
    store = Store(f"sqlite:///{path}")
    service = ChainService(store.engine, "litesvm", ChainKeys.generate())
    started = time.perf_counter()
    service.start()
    await service.wait_settled(timeout_s=600)
    elapsed = time.perf_counter() - started
    batches = sum(1 for _ in service.anchors.batches())
    checkpoint = await service.cursor.load()
    await service.stop()
    started = time.perf_counter()
    report = audit(store, chain=find_chain_source(store, "litesvm", None))
    audit_s = time.perf_counter() - started
    assert report.ok, report.lines()
    store.close()
    return elapsed, batches, audit_s, len(checkpoint.chain_snapshot or b"")


async def live_latency(path: Path) -> list[float]:
    store = Store(f"sqlite:///{path}")
    coordinator = Coordinator.open(store)
    service = ChainService(store.engine, "litesvm", ChainKeys.generate())
    coordinator.feed.subscribe("chain", lambda _commit: service.wake())
    service.start()
    await service.wait_settled(timeout_s=600)
    thread = next(iter(coordinator.state.threads.values()))
    latencies_ms: list[float] = []
    for i in range(LIVE_POSTS):
        started = time.perf_counter()
        coordinator.execute(
            PostMessage(thread.co_authors[0], thread.thread_id, f"bench-{i}", f"live post {i}")
        )
        await service.wait_settled(timeout_s=30)
        latencies_ms.append((time.perf_counter() - started) * 1000)
    await service.stop()
    store.close()
    return latencies_ms


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller store")
    args = parser.parse_args(argv)
    sizes = [1_500] if args.quick else [2_500, 10_000]
    print(
        f"{'sim steps':>10}{'transfers':>11}{'messages':>10}{'batches':>9}{'catch-up s':>12}"
        f"{'transfers/s':>13}{'snapshot KiB':>14}{'audit s':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for steps in sizes:
            path = Path(tmp) / f"sim-{steps}.db"
            simulated_store(path, steps)
            n = counts(path)
            elapsed, batches, audit_s, snapshot_bytes = asyncio.run(catch_up(path))
            print(
                f"{steps:>10}{n.get('t', 0):>11}{n.get('m', 0):>10}{batches:>9}{elapsed:>12.2f}"
                f"{n.get('t', 0) / elapsed:>13,.0f}{snapshot_bytes / 1024:>14,.0f}{audit_s:>9.2f}"
            )
        latencies = asyncio.run(live_latency(Path(tmp) / f"sim-{sizes[0]}.db"))
    ordered = sorted(latencies)
    print(
        f"\nlive: {LIVE_POSTS} posts, commit to settled: median {statistics.median(ordered):.0f} ms, "
        f"max {ordered[-1]:.0f} ms (0.2 s of it is the coalescing pause)"
    )


if __name__ == "__main__":
    main()
