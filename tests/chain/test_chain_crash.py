"""Crashes mid-batch, lost transactions and expired blockhashes: nothing is ever paid twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import (
    Chain,
    CrashingBackend,
    DroppingBackend,
    RecordingBackend,
    SimulatedCrash,
    make_chain,
    new_address,
)
from solders.hash import Hash
from solders.signature import Signature

from choir.chain import Checkpoint, FileCursorStore, LiteSvmBackend, MemoryFeed, RetryPolicy, SettlementConfig
from choir.chain.cursor import InFlightBatch, InFlightTx
from choir.chain.feed import ChainTransfer, FeedBatch
from choir.chain.genesis import GENESIS_BALANCES
from choir.chain.settlement import waves

FAST = SettlementConfig(retry=RetryPolicy(poll_interval_s=0.001, backoff_initial_s=0.001))


def _feed_paying_new_users(count: int) -> MemoryFeed:
    """Distinct users and amounts: a transfer paid twice would show in some balance."""
    feed = MemoryFeed(GENESIS_BALANCES)
    for i in range(count):
        feed.transfer("pool:new_messages", f"user:{new_address()}", 1_000 + i)
    feed.publish("m1", "t1", "anchored too")
    return feed


class CrashOnFinalSave(FileCursorStore):
    """Dies after the batch landed, just before the cursor would have advanced."""

    async def save(self, checkpoint: Checkpoint) -> None:
        if checkpoint.in_flight is None and checkpoint.position > 0:
            raise SimulatedCrash("crash before the cursor is persisted")
        await super().save(checkpoint)


@pytest.mark.parametrize(
    ("users", "crash_after_send"),
    # 200 new users make a batch of ~50 transactions: more than LiteSVM's default history of 32.
    [(30, 1), (30, 2), (30, 5), (200, 45)],
)
async def test_crash_mid_batch_then_restart_against_the_same_chain_pays_nothing_twice(
    tmp_path: Path, users: int, crash_after_send: int
) -> None:
    chain = await make_chain()
    feed = _feed_paying_new_users(users)
    crashing = CrashingBackend(chain.backend, crash_after=crash_after_send)
    with pytest.raises(SimulatedCrash):
        await chain.worker(crashing, feed, tmp_path, FAST).settle_once()
    landed_before = {tx.signature for tx in crashing.sent}

    restarted = RecordingBackend(chain.backend)
    report = await chain.worker(restarted, feed, tmp_path, FAST).settle_once()
    assert report is not None and report.recovered and report.through == feed.head
    assert not landed_before & {tx.signature for tx in restarted.sent}, "a landed transaction was sent again"
    assert await chain.drifts(feed) == []
    assert (await FileCursorStore(tmp_path / "checkpoint.json").load()).position == feed.head


async def test_crash_after_the_batch_landed_but_before_the_cursor_moved(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = _feed_paying_new_users(30)
    first = chain.worker(RecordingBackend(chain.backend), feed, tmp_path, FAST)
    first.cursor_store = CrashOnFinalSave(tmp_path / "checkpoint.json")
    with pytest.raises(SimulatedCrash):
        await first.settle_once()
    assert await chain.drifts(feed) == []  # it all landed ...
    restarted = RecordingBackend(chain.backend)
    report = await chain.worker(restarted, feed, tmp_path, FAST).settle_once()
    assert report is not None and report.recovered
    assert restarted.sent == []  # ... so the restart only looks, and sends nothing
    assert await chain.drifts(feed) == []


@pytest.mark.parametrize("crash_after_send", [1, 4])
async def test_embedded_crash_restores_the_chain_saved_with_the_cursor(
    tmp_path: Path, crash_after_send: int
) -> None:
    chain = await make_chain()
    feed = _feed_paying_new_users(30)
    await chain.worker(chain.backend, feed, tmp_path, FAST).start()  # genesis saved with the cursor
    with pytest.raises(SimulatedCrash):
        await chain.worker(
            CrashingBackend(chain.backend, crash_after_send), feed, tmp_path, FAST
        ).settle_once()

    # The process is gone, and with it the in-memory chain: restart from what was saved.
    saved = await FileCursorStore(tmp_path / "checkpoint.json").load()
    assert saved.chain_snapshot is not None and saved.in_flight is not None
    restored = Chain(
        LiteSvmBackend.restore(saved.chain_snapshot), chain.authority, chain.treasury_keys, chain.multisig
    )
    report = await restored.worker(RecordingBackend(restored.backend), feed, tmp_path, FAST).settle_once()
    assert report is not None and report.recovered
    assert await restored.drifts(feed) == []

    # Settling goes on from there, and a second restart sees the same state again.
    feed.transfer("pool:new_messages", "thread:t1", 77)
    assert await restored.worker(restored.backend, feed, tmp_path, FAST).settle_once() is not None
    again = await FileCursorStore(tmp_path / "checkpoint.json").load()
    assert again.chain_snapshot is not None and again.position == feed.head
    reborn = Chain(
        LiteSvmBackend.restore(again.chain_snapshot), chain.authority, chain.treasury_keys, chain.multisig
    )
    assert await reborn.drifts(feed) == []


async def test_a_lost_transaction_is_re_signed_only_after_its_blockhash_expired(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = _feed_paying_new_users(30)  # one wave: no transaction touches an account another credits
    dropping = DroppingBackend(chain.backend, drop=3)
    report = await chain.worker(dropping, feed, tmp_path, FAST).settle_once()
    assert report is not None
    [lost] = dropping.dropped
    first_pass = dropping.sent[: len(report.signatures)]
    assert await chain.backend.statuses([lost.signature]) == [None]
    # Only the lost one was signed again; the others of its wave landed and were kept.
    assert set(report.signatures) - {tx.signature for tx in first_pass} == {report.signatures[2]}
    assert lost.signature not in report.signatures
    assert await chain.drifts(feed) == []


def test_waves_keep_a_debit_after_the_credit_that_funds_it() -> None:
    transfers = (
        ChainTransfer(1, 1, "pool:new_messages", "user:a", 5),
        ChainTransfer(2, 2, "pool:new_messages", "user:b", 5),
        ChainTransfer(3, 3, "user:a", "escrow:s", 5),  # spends what transfer 1 brought
        ChainTransfer(4, 4, "treasury", "thread:t", 5),
    )
    batch = FeedBatch(0, 4, transfers, (), ())
    txs = tuple(InFlightTx(Signature.default(), b"", i, i + 1, False) for i in range(4))
    anchor = InFlightTx(Signature.default(), b"", 4, 4, True)
    in_flight = InFlightBatch(batch, "", Hash.default(), 0, (*txs, anchor))
    assert waves(in_flight) == [[0, 1], [2, 3, 4]]


async def test_a_journal_whose_blockhash_lives_is_resent_as_the_same_bytes(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = _feed_paying_new_users(10)
    worker = chain.worker(chain.backend, feed, tmp_path, FAST)

    class CrashBeforeFirstSend(FileCursorStore):
        async def save(self, checkpoint: Checkpoint) -> None:
            await super().save(checkpoint)
            if checkpoint.in_flight is not None:
                raise SimulatedCrash("crash right after the journal was written")

    worker.cursor_store = CrashBeforeFirstSend(tmp_path / "checkpoint.json")
    with pytest.raises(SimulatedCrash):
        await worker.settle_once()
    journal = (await FileCursorStore(tmp_path / "checkpoint.json").load()).in_flight
    assert journal is not None
    restarted = RecordingBackend(chain.backend)
    report = await chain.worker(restarted, feed, tmp_path, FAST).settle_once()
    assert report is not None
    assert [tx.raw for tx in restarted.sent] == [tx.raw for tx in journal.txs]
    assert await chain.drifts(feed) == []
