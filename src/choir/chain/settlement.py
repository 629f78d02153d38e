"""The settlement worker: committed ledger transfers → batched SPL Token transfers, exactly once.

One batch = the ledger changes after the checkpoint's position (at most `transfers_per_batch_max`
transfers), packed into as few legacy transactions as fit, the last one carrying the anchor memo.

    load checkpoint ─ in flight? ─ yes ──────────────────────────────┐
          │ no                                                         │
    read feed → plan → sign (fresh blockhash) → journal (save) ──→ land wave by wave
                                                                       │ blockhash expired?
                                                                       ├─ yes: re-sign the unknown ones
                                                                       │       (same instructions), journal
                                                                       ▼
                                    save checkpoint(position = through, no journal, chain snapshot)

Nothing is paid twice: a transaction is only ever re-signed once the chain has said that its
blockhash expired while it was unknown, so it can never land; until then only its same bytes (same
signature, processed at most once) are resent. See `cursor.py` for the journal and `waves` for order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from choir.chain.anchor import AnchoredBatch, AnchorLog, AnchorMemo, anchor_memo_for
from choir.chain.backend import (
    DEFAULT_RETRY,
    ChainBackend,
    RecentBlockhash,
    RetryPolicy,
    SnapshottingBackend,
    land_all,
)
from choir.chain.cursor import Checkpoint, CursorStore, InFlightBatch, InFlightTx
from choir.chain.errors import BlockhashExpired, SettlementHalted, TransactionRejected, TransientChainError
from choir.chain.feed import FeedBatch, SettlementFeed
from choir.chain.layout import CustodyLayout
from choir.chain.plan import BatchPlanner
from choir.chain.programs import TOKEN_ACCOUNT_SIZE
from choir.chain.wire import SignedTx, compile_message, resign_with_blockhash, sign_message, signer_map

_KNOWN_ACCOUNTS_MAX: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    # 64 full transactions of 22 transfers: a batch lands in well under a second on a cluster.
    transfers_per_batch_max: int = 1408
    records_per_batch_max: int = 10_000
    rebuilds_per_batch_max: int = 5
    fresh_blockhash_attempts_max: int = 50
    fresh_blockhash_wait_s: float = 0.1
    idle_wait_s: float = 1.0
    retry: RetryPolicy = DEFAULT_RETRY

    def __post_init__(self) -> None:
        if self.transfers_per_batch_max < 1 or self.records_per_batch_max < 1:
            raise ValueError("a batch must hold at least one transfer and one record")


@dataclass(frozen=True, slots=True)
class BatchReport:
    after: int
    through: int
    transfers: int
    transactions: int
    anchored: AnchoredBatch
    recovered: bool
    signatures: tuple[Signature, ...] = field(default=())


class SettlementWorker:
    """Mirrors the ledger on chain; one instance per chain, in exactly one process."""

    def __init__(
        self,
        backend: ChainBackend,
        authority: Keypair,
        treasury_signers: Sequence[Keypair],
        feed: SettlementFeed,
        cursor_store: CursorStore,
        *,
        config: SettlementConfig | None = None,
        anchor_log: AnchorLog | None = None,
    ) -> None:
        self.backend = backend
        self.layout = CustodyLayout(authority.pubkey())
        self.feed = feed
        self.cursor_store = cursor_store
        self.config = config or SettlementConfig()
        self.anchor_log = anchor_log
        self._signers = signer_map([authority, *treasury_signers])
        self._payer = bytes(self.layout.authority)
        self._treasury_signers = [k.pubkey() for k in treasury_signers]
        self._planner: BatchPlanner | None = None
        self._known: set[Pubkey] = set()
        # The last checkpoint this worker saved or loaded: it is the store's only writer.
        self._checkpoint: Checkpoint | None = None

    async def start(self) -> Checkpoint:
        """Load the checkpoint; with nothing in flight, save the chain's current state with it.

        Call once after genesis: an in-process chain's genesis is then part of the saved state.
        """
        checkpoint = await self.cursor_store.load()
        self._checkpoint = checkpoint
        if checkpoint.in_flight is None and isinstance(self.backend, SnapshottingBackend):
            checkpoint = checkpoint.with_snapshot(self.backend.snapshot())
            await self._save(checkpoint)
        return checkpoint

    async def settle_once(self) -> BatchReport | None:
        """Finish the batch in flight, or settle the next one; None when the ledger has nothing new."""
        checkpoint = self._checkpoint
        if checkpoint is None:
            checkpoint = self._checkpoint = await self.cursor_store.load()
        if checkpoint.in_flight is not None:
            return await self._finish(checkpoint, checkpoint.in_flight, recovered=True)
        cfg = self.config
        batch = await self.feed.read_after(
            checkpoint.position, cfg.transfers_per_batch_max, cfg.records_per_batch_max
        )
        if batch.through < checkpoint.position:
            raise SettlementHalted(f"feed went back from {checkpoint.position} to {batch.through}")
        if batch.empty:
            return None
        memo = anchor_memo_for(batch)
        in_flight = await self._sign(batch, memo.text(), previous=checkpoint.last_blockhash)
        checkpoint = Checkpoint(
            checkpoint.position, in_flight, checkpoint.chain_snapshot, in_flight.blockhash
        )
        await self._save(checkpoint)
        return await self._finish(checkpoint, in_flight, recovered=False)

    async def settle_until_idle(self, batches_max: int) -> list[BatchReport]:
        reports: list[BatchReport] = []
        for _ in range(batches_max):
            report = await self.settle_once()
            if report is None:
                break
            reports.append(report)
        return reports

    async def run(self, stop: asyncio.Event) -> None:
        """Settle until `stop` is set, waiting `idle_wait_s` when idle or after a transient failure."""
        while not stop.is_set():
            try:
                report = await self.settle_once()
            except TransientChainError:
                report = None
            if report is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.idle_wait_s)

    # -- one batch ----------------------------------------------------------------------------

    async def _finish(self, checkpoint: Checkpoint, in_flight: InFlightBatch, recovered: bool) -> BatchReport:
        for _ in range(self.config.rebuilds_per_batch_max):
            try:
                await self._land_all(in_flight)
                break
            except BlockhashExpired:
                in_flight = await self._resign_unlanded(in_flight)
                checkpoint = Checkpoint(
                    checkpoint.position, in_flight, checkpoint.chain_snapshot, in_flight.blockhash
                )
                await self._save(checkpoint)
        else:
            raise SettlementHalted(
                f"batch through {in_flight.batch.through} expired {self.config.rebuilds_per_batch_max} times"
            )
        batch = in_flight.batch
        anchor_tx = in_flight.txs[-1]
        anchored = AnchoredBatch.of(anchor_tx.signature, AnchorMemo.parse(in_flight.memo), batch)
        if self.anchor_log is not None:
            self.anchor_log.append(anchored)
        self._remember(self.layout.token_address(t.credit) for t in batch.transfers)
        snapshot = self.backend.snapshot() if isinstance(self.backend, SnapshottingBackend) else None
        await self._save(Checkpoint(batch.through, None, snapshot, in_flight.blockhash))
        return BatchReport(
            batch.after,
            batch.through,
            len(batch.transfers),
            len(in_flight.txs),
            anchored,
            recovered,
            tuple(t.signature for t in in_flight.txs),
        )

    async def _land_all(self, in_flight: InFlightBatch) -> None:
        """Land the batch wave by wave; a transaction that landed (from an earlier run) is never sent."""
        recent = RecentBlockhash(in_flight.blockhash, in_flight.last_valid_block_height)
        statuses = await self.backend.statuses([t.signature for t in in_flight.txs])
        for wave in waves(in_flight):
            unknown = [i for i in wave if statuses[i] is None]
            try:
                landed = await land_all(
                    self.backend, [_signed(in_flight.txs[i]) for i in unknown], recent, self.config.retry
                )
            except TransactionRejected as exc:
                # Refused before execution (preflight): sending it again would be refused again.
                raise SettlementHalted(f"a settlement transaction was refused: {exc.error}") from exc
            for i, result in zip(unknown, landed, strict=True):
                statuses[i] = result
            for i in wave:
                outcome = statuses[i]
                if outcome is not None and not outcome.ok:
                    tx = in_flight.txs[i]
                    raise SettlementHalted(
                        f"settlement transaction {tx.signature} (transfers {tx.first}..{tx.end} of the batch "
                        f"through {in_flight.batch.through}) failed on chain: {outcome.error}"
                    )

    async def _resign_unlanded(self, in_flight: InFlightBatch) -> InFlightBatch:
        """Sign every transaction the chain does not know again, same instructions, fresh blockhash.

        Only called once the chain said the old blockhash expired: those transactions can never land.
        Same instructions keep each transaction's transfers and account creations; the new blockhash
        (never used by an earlier plan) makes each a new transaction.
        """
        statuses = await self.backend.statuses([t.signature for t in in_flight.txs])
        recent = await self._fresh_blockhash(in_flight.blockhash)
        blockhash = bytes(recent.blockhash)
        txs = []
        for tx, status in zip(in_flight.txs, statuses, strict=True):
            if status is None:
                signed = resign_with_blockhash(tx.raw, blockhash, self._signers)
                tx = InFlightTx(signed.signature, signed.raw, tx.first, tx.end, tx.anchor)
            txs.append(tx)
        return replace(
            in_flight,
            blockhash=recent.blockhash,
            last_valid_block_height=recent.last_valid_block_height,
            txs=tuple(txs),
        )

    async def _sign(self, batch: FeedBatch, memo: str, previous: Hash | None) -> InFlightBatch:
        planner = await self._ensure_planner()
        await self._learn_existing({planner.token_address(t.credit) for t in batch.transfers})
        planned = planner.plan(batch.transfers, self._known, memo)
        recent = await self._fresh_blockhash(previous)
        blockhash = bytes(recent.blockhash)
        txs = []
        for p in planned:
            signed = sign_message(compile_message(self._payer, p.ixs, blockhash), self._signers)
            txs.append(InFlightTx(signed.signature, signed.raw, p.first, p.end, p.anchor))
        return InFlightBatch(batch, memo, recent.blockhash, recent.last_valid_block_height, tuple(txs))

    async def _save(self, checkpoint: Checkpoint) -> None:
        self._checkpoint = None  # if the save fails, its outcome is unknown: load again next time
        await self.cursor_store.save(checkpoint)
        self._checkpoint = checkpoint

    async def _fresh_blockhash(self, previous: Hash | None) -> RecentBlockhash:
        for _ in range(self.config.fresh_blockhash_attempts_max):
            recent = await self.backend.latest_blockhash()
            if recent.blockhash != previous:
                return recent
            await asyncio.sleep(self.config.fresh_blockhash_wait_s)
        raise TransientChainError("the cluster produced no new blockhash")

    async def _learn_existing(self, addresses: set[Pubkey]) -> None:
        unknown = [a for a in addresses if a not in self._known]
        if unknown:
            accounts = await self.backend.get_accounts(unknown)
            self._remember(a for a, account in zip(unknown, accounts, strict=True) if account is not None)

    def _remember(self, addresses: Iterable[Pubkey]) -> None:
        if len(self._known) >= _KNOWN_ACCOUNTS_MAX:
            self._known.clear()  # a cache: anything forgotten is looked up again
        self._known.update(addresses)

    async def _ensure_planner(self) -> BatchPlanner:
        if self._planner is None:
            rent = await self.backend.rent_exempt_lamports(TOKEN_ACCOUNT_SIZE)
            self._planner = BatchPlanner(self.layout, self._treasury_signers, rent)
        return self._planner


def _signed(tx: InFlightTx) -> SignedTx:
    return SignedTx(tx.raw, tx.signature)


def waves(in_flight: InFlightBatch) -> list[list[int]]:
    """Group the batch's transactions, in order, into waves whose members may land in any order.

    A transaction joins the current wave unless it touches an account that an earlier transaction of
    the wave credits: then a debit cannot run before the credit funding it, and no transfer reaches an
    account before the transaction that creates it. Within a wave every account's debits precede its
    credits in ledger order, so the ledger's own non-negative balances make any order safe.
    """
    transfers = in_flight.batch.transfers
    out: list[list[int]] = []
    credited: set[str] = set()
    for index, tx in enumerate(in_flight.txs):
        touched = {name for t in transfers[tx.first : tx.end] for name in (t.debit, t.credit)}
        if not out or touched & credited:
            out.append([])
            credited = set()
        out[-1].append(index)
        credited.update(t.credit for t in transfers[tx.first : tx.end])
    return out
