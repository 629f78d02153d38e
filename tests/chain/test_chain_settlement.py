"""Ledger transfers mirrored on chain in batches: chain = ledger after every batch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from chain_harness import Chain, RecordingBackend, make_chain, new_address
from solders.account import Account
from solders.token.state import TokenAccount

from choir.chain import (
    MemoryFeed,
    MessageRecord,
    OwnershipRecord,
    SettlementHalted,
    coherence_differences,
    read_anchor,
    verify_on_chain,
)
from choir.chain.anchor import AnchorLog
from choir.chain.genesis import GENESIS_BALANCES
from choir.chain.merkle import verify_proof
from choir.chain.wire import PACKET_DATA_SIZE

CHOIR = 10**9


async def _settle(chain: Chain, backend: RecordingBackend, feed: MemoryFeed, directory: Path) -> None:
    worker = chain.worker(backend, feed, directory)
    reports = await worker.settle_until_idle(batches_max=10)
    assert reports, "the feed had changes: a batch must have settled"
    assert await chain.drifts(feed) == []


async def test_a_thread_lifecycle_is_mirrored_with_chain_equal_to_ledger_after_every_batch(
    tmp_path: Path,
) -> None:
    chain = await make_chain()
    backend = RecordingBackend(chain.backend)
    feed = MemoryFeed(GENESIS_BALANCES)
    alice, bob, carol = new_address(), new_address(), new_address()
    thread = "thread:t1"

    # New-message rewards from the pool, a prior reward from the treasury (multisig-signed).
    feed.set_co_authors("t1", [alice])
    feed.publish("m1", "t1", "hello")
    feed.transfer("pool:new_messages", f"user:{alice}", 146 * CHOIR)
    feed.transfer("pool:new_messages", f"user:{bob}", 100 * CHOIR)
    feed.transfer("pool:new_messages", f"user:{carol}", 50 * CHOIR)
    feed.transfer("treasury", thread, 75 * CHOIR)
    await _settle(chain, backend, feed, tmp_path)

    # Bob stakes on a spec; Alice approves: the stake goes to her, Bob becomes a co-author.
    feed.transfer(f"user:{bob}", "escrow:s1", 10 * CHOIR)
    feed.transfer("escrow:s1", f"user:{alice}", 10 * CHOIR)
    feed.set_co_authors("t1", [alice, bob])
    feed.publish("m2", "t1", "bob's spec, approved")
    # Carol stakes twice: one spec denied (stake to the thread), one mixed (part to the treasury).
    feed.transfer(f"user:{carol}", "escrow:s2", 7 * CHOIR)
    feed.transfer("escrow:s2", thread, 7 * CHOIR)
    feed.transfer(f"user:{carol}", "escrow:s3", 9 * CHOIR)
    feed.transfer("escrow:s3", "treasury", 4 * CHOIR)
    feed.transfer("escrow:s3", thread, 5 * CHOIR)
    await _settle(chain, backend, feed, tmp_path)

    # Bob divests floor(balance / 2); Alice withdraws to her own wallet.
    feed.transfer(thread, f"user:{bob}", feed.balances[thread] // 2)
    feed.set_co_authors("t1", [alice])
    feed.transfer(f"user:{alice}", f"withdrawn:{alice}", 100 * CHOIR)
    await _settle(chain, backend, feed, tmp_path)

    assert chain.balance(f"withdrawn:{alice}") == 100 * CHOIR  # her wallet's associated token account
    assert chain.balance(thread) == feed.balances[thread] > 0
    assert chain.balance("escrow:s1") == chain.balance("escrow:s3") == 0
    assert backend.sent and all(len(tx.raw) <= PACKET_DATA_SIZE for tx in backend.sent)


async def test_a_message_and_an_ownership_record_are_proven_against_the_root_read_from_chain(
    tmp_path: Path,
) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    alice, bob = new_address(), new_address()
    feed.set_co_authors("t1", [alice, bob])
    for i in range(5):
        feed.publish(f"m{i}", "t1", f"message {i}")
    feed.transfer("pool:new_messages", "thread:t1", 3 * CHOIR)
    worker = chain.worker(RecordingBackend(chain.backend), feed, tmp_path)
    report = await worker.settle_once()
    assert report is not None

    anchored = report.anchored
    memo = await read_anchor(chain.backend, anchored.signature)
    assert memo == anchored.memo and (memo.first, memo.through, memo.leaves) == (1, feed.head, 6)

    message = MessageRecord("m3", "t1", hashlib.sha256(b"message 3").digest())
    ownership = OwnershipRecord.of("t1", [bob, alice], 3 * CHOIR)
    for record in (message.leaf(), ownership.leaf()):
        proof = anchored.proof(record)
        assert verify_proof(memo.root, record, proof)
        assert await verify_on_chain(chain.backend, anchored.signature, record, proof)
    # A record that was not anchored has no proof, and a tampered one fails against the chain's root.
    tampered = OwnershipRecord.of("t1", [alice], 3 * CHOIR)
    with pytest.raises(LookupError):
        anchored.proof(tampered.leaf())
    proof = anchored.proof(ownership.leaf())
    assert not await verify_on_chain(chain.backend, anchored.signature, tampered.leaf(), proof)

    # The anchor log finds it again after the fact.
    latest = AnchorLog(tmp_path / "anchors.jsonl").latest_ownership()
    assert latest["t1"][0] == ownership


async def test_a_tampered_co_author_set_fails_the_coherence_check(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    alice, bob, mallory = new_address(), new_address(), new_address()
    feed.set_co_authors("t1", [alice, bob])
    message = feed.publish("m1", "t1", "the content")
    worker = chain.worker(RecordingBackend(chain.backend), feed, tmp_path)
    assert await worker.settle_once() is not None
    log = AnchorLog(tmp_path / "anchors.jsonl")
    anchored_ownership = {t: r for t, (r, _) in log.latest_ownership().items()}
    anchored_messages = {m: r for m, (r, _) in log.anchored_messages().items()}
    honest = {"t1": [alice, bob]}
    messages = {"m1": message}

    def check(sql: dict[str, list[str]], index: dict[str, list[str]]) -> list[str]:
        return coherence_differences(
            sql_co_authors=sql,
            index_co_authors=index,
            anchored_ownership=anchored_ownership,
            sql_messages=messages,
            index_messages=messages,
            anchored_messages=anchored_messages,
        )

    assert check(honest, honest) == []
    differences = check({"t1": [alice, bob, mallory]}, honest)
    assert len(differences) == 2, differences
    assert all("thread t1" in d for d in differences)
    assert any(mallory in d and "vector index" in d for d in differences)
    assert any("anchored ownership record" in d for d in differences)

    forged = MessageRecord("m1", "t1", hashlib.sha256(b"other content").digest())
    differences = coherence_differences(
        sql_co_authors=honest,
        index_co_authors=honest,
        anchored_ownership=anchored_ownership,
        sql_messages={"m1": forged},
        index_messages=messages,
        anchored_messages=anchored_messages,
    )
    assert len(differences) == 2 and all(d.startswith("message m1: content hash") for d in differences)


async def test_identical_transactions_in_one_batch_get_a_nonce_so_none_is_dropped(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    users = [f"user:{new_address()}" for _ in range(22)]
    for user in users:  # create the accounts first, so that the next batch is pure transfers
        feed.transfer("pool:new_messages", user, 1)
    backend = RecordingBackend(chain.backend)
    await _settle(chain, backend, feed, tmp_path)
    for _ in range(2):  # the same 22 rewards twice: packed alone, two byte-identical transactions
        for user in users:
            feed.transfer("pool:new_messages", user, 5)
    before = len(backend.sent)
    await _settle(chain, backend, feed, tmp_path)
    batch = backend.sent[before:]
    assert len({bytes(tx.raw) for tx in batch}) == len(batch)
    assert all(chain.balance(user) == 11 for user in users)


async def test_a_transfer_the_chain_refuses_halts_settlement_and_keeps_the_journal(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    user = f"user:{new_address()}"
    feed.transfer("pool:new_messages", user, 10 * CHOIR)
    await _settle(chain, RecordingBackend(chain.backend), feed, tmp_path)
    # Someone drains the custody account behind the ledger's back: the chain can no longer pay.
    address = chain.layout.custody_address(user)
    account = chain.backend.svm.get_account(address)
    assert account is not None
    data = bytearray(bytes(account.data))
    data[64:72] = (0).to_bytes(8, "little")  # TokenAccount.amount
    assert TokenAccount.from_bytes(bytes(data)).amount == 0
    chain.backend.svm.set_account(address, Account(account.lamports, bytes(data), account.owner, False, 0))
    assert await chain.drifts(feed) == [f"{user}: ledger {10 * CHOIR}, chain 0"]

    feed.transfer(user, "escrow:s1", 5 * CHOIR)
    worker = chain.worker(RecordingBackend(chain.backend), feed, tmp_path)
    with pytest.raises(SettlementHalted, match="failed on chain"):
        await worker.settle_once()
    checkpoint = await worker.cursor_store.load()
    assert checkpoint.in_flight is not None and checkpoint.position == 1
    with pytest.raises(SettlementHalted):  # and it stays halted: nothing is skipped silently
        await chain.worker(RecordingBackend(chain.backend), feed, tmp_path).settle_once()


async def test_a_line_torn_by_a_crash_does_not_hide_the_anchor_log(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    feed.publish("m1", "t1", "before the crash")
    await chain.worker(chain.backend, feed, tmp_path).settle_once()
    log = AnchorLog(tmp_path / "anchors.jsonl")
    with open(log.path, "a") as out:
        out.write('{"signature": "half a li')  # the process died mid-append
    feed.publish("m2", "t1", "after the restart")
    await chain.worker(chain.backend, feed, tmp_path).settle_once()
    assert set(log.anchored_messages()) == {"m1", "m2"}
