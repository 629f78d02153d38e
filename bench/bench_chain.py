"""Settlement throughput on LiteSVM (real SPL Token program, signature verification on).

End to end per batch: read the feed, plan and pack (22 transfers per legacy transaction from one source,
13 between distinct pairs), compile and sign, write the journal (fsync), send and confirm each
transaction in order, write the checkpoint (fsync), and in embedded mode snapshot the chain with it.
The last row keeps the checkpoint in memory (still serialized) to show what the disk's fsyncs cost.

    python bench/bench_chain.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from choir.chain import (
    GENESIS_BALANCES,
    SUPPLY,
    Checkpoint,
    FileCursorStore,
    LiteSvmBackend,
    MemoryFeed,
    SettlementConfig,
    SettlementWorker,
    TreasuryMultisig,
    ensure_genesis,
    reconcile,
)
from choir.chain.backend import RecentBlockhash, TxStatus
from choir.chain.wire import PACKET_DATA_SIZE, SignedTx

USERS = 2_000
AMOUNT = 1_000


class SizedBackend:
    """Delegates to LiteSVM; records wire sizes; hides `snapshot` when the chain is not embedded."""

    def __init__(self, inner: LiteSvmBackend) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    async def latest_blockhash(self) -> RecentBlockhash:
        return await self.inner.latest_blockhash()

    async def is_blockhash_valid(self, recent: RecentBlockhash) -> bool:
        return await self.inner.is_blockhash_valid(recent)

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        self.sizes.append(len(tx.raw))
        return await self.inner.send_raw(tx)

    async def statuses(self, signatures: Sequence[Signature]) -> list[TxStatus | None]:
        return await self.inner.statuses(signatures)

    async def get_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        return await self.inner.get_accounts(addresses)

    async def transaction_logs(self, signature: Signature) -> list[str] | None:
        return await self.inner.transaction_logs(signature)

    async def rent_exempt_lamports(self, data_size: int) -> int:
        return await self.inner.rent_exempt_lamports(data_size)


class MemoryCursorStore:
    """Serializes each checkpoint as the file store does, without touching the disk: isolates fsync."""

    def __init__(self) -> None:
        self._saved = json.dumps(Checkpoint().to_json())

    async def load(self) -> Checkpoint:
        return Checkpoint.from_json(json.loads(self._saved))

    async def save(self, checkpoint: Checkpoint) -> None:
        self._saved = json.dumps(checkpoint.to_json(), separators=(",", ":"))


class EmbeddedBackend(SizedBackend):
    def snapshot(self) -> bytes:
        return self.inner.snapshot()


@dataclass
class Row:
    scenario: str
    transfers: int
    transactions: int
    seconds: float
    cpu_seconds: float
    max_bytes: int

    @property
    def per_second(self) -> float:
        return self.transfers / self.seconds


async def _scenario(name: str, pattern: str, count: int, embedded: bool, on_disk: bool = True) -> Row:
    backend = LiteSvmBackend()
    authority = Keypair()
    backend.fund(authority.pubkey(), 10**14)
    keys = [Keypair() for _ in range(3)]
    await ensure_genesis(
        backend, authority, TreasuryMultisig(2, tuple(k.pubkey() for k in keys)), GENESIS_BALANCES
    )
    feed = MemoryFeed(GENESIS_BALANCES)
    users = [f"user:{Keypair().pubkey()}" for _ in range(USERS)]
    for user in users:  # warm-up: create every custody account (not measured)
        feed.transfer("pool:new_messages", user, 10**12)
    wrapped = EmbeddedBackend(backend) if embedded else SizedBackend(backend)
    with tempfile.TemporaryDirectory() as directory:
        worker = SettlementWorker(
            wrapped,
            authority,
            keys[:2],
            feed,
            FileCursorStore(Path(directory) / "checkpoint.json") if on_disk else MemoryCursorStore(),
            config=SettlementConfig(transfers_per_batch_max=1408),
        )
        await worker.start()
        await worker.settle_until_idle(batches_max=10_000)
        for i in range(count):
            if pattern == "one source":
                feed.transfer("pool:new_messages", users[i % USERS], AMOUNT)
            else:  # distinct pairs: no account repeats within a transaction
                feed.transfer(users[(2 * i) % USERS], users[(2 * i + 1) % USERS], AMOUNT)
        wrapped.sizes.clear()
        started, cpu_started = time.perf_counter(), time.process_time()
        await worker.settle_until_idle(batches_max=10_000)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    drifts = await reconcile(backend, worker.layout, feed.balances, SUPPLY)
    if drifts:
        raise SystemExit(f"{name}: chain differs from the ledger: {drifts[:3]}")
    if max(wrapped.sizes) > PACKET_DATA_SIZE:
        raise SystemExit(f"{name}: a transaction of {max(wrapped.sizes)} bytes")
    return Row(name, count, len(wrapped.sizes), seconds, cpu_seconds, max(wrapped.sizes))


async def run(quick: bool) -> list[Row]:
    count = 22 * 64 * (3 if quick else 30)
    return [
        await _scenario("one source, embedded (snapshot per batch)", "one source", count, embedded=True),
        await _scenario("one source, cursor only", "one source", count, embedded=False),
        await _scenario("distinct pairs, cursor only", "pairs", count, embedded=False),
        await _scenario("one source, cursor in memory (no fsync)", "one source", count, False, on_disk=False),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few thousand transfers instead of ~42k")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.quick))
    # Wall time is what settlement achieves; CPU time (this process, all threads) is what it costs, and
    # stays meaningful when other work shares the machine's two cores.
    print(
        f"{'scenario':<44} {'transfers':>9} {'txs':>6} {'per tx':>6} {'max B':>6} "
        f"{'wall s':>7} {'cpu s':>6} {'transfers/s':>12} {'per cpu-s':>10}"
    )
    for row in rows:
        print(
            f"{row.scenario:<44} {row.transfers:>9} {row.transactions:>6} "
            f"{row.transfers / row.transactions:>6.1f} {row.max_bytes:>6} {row.seconds:>7.2f} "
            f"{row.cpu_seconds:>6.2f} {row.per_second:>12,.0f} {row.transfers / row.cpu_seconds:>10,.0f}"
        )


if __name__ == "__main__":
    main()
