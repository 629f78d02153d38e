"""The embedded chain's state survives a restart: snapshot, restore, and keep settling."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import Chain, make_chain, new_address
from solders.keypair import Keypair
from solders.token.state import Mint

from choir.chain import (
    SUPPLY,
    CustodyLayout,
    FileCursorStore,
    LiteSvmBackend,
    MemoryFeed,
    SettlementWorker,
    TreasuryMultisig,
    open_embedded_chain,
    read_anchor,
    reconcile,
)
from choir.chain.cursor import Checkpoint
from choir.chain.genesis import GENESIS_BALANCES


async def test_snapshot_restore_round_trips_every_account_and_settling_continues(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    users = [f"user:{new_address()}" for _ in range(5)]
    for i, user in enumerate(users):
        feed.transfer("pool:new_messages", user, 100 + i)
    feed.transfer("treasury", "thread:t", 9)
    feed.transfer(users[0], f"withdrawn:{users[0].removeprefix('user:')}", 50)
    await chain.worker(chain.backend, feed, tmp_path).settle_until_idle(5)

    restored = Chain(
        LiteSvmBackend.restore(chain.backend.snapshot()), chain.authority, chain.treasury_keys, chain.multisig
    )
    for name in [*users, "treasury", "pool:new_messages", "thread:t", f"withdrawn:{users[0][5:]}"]:
        assert restored.balance(name) == chain.balance(name)
    mint = restored.backend.svm.get_account(restored.layout.mint)
    assert mint is not None and Mint.from_bytes(bytes(mint.data)).mint_authority is None
    assert restored.backend.svm.get_balance(chain.authority.pubkey()) == chain.backend.svm.get_balance(
        chain.authority.pubkey()
    )
    feed.transfer(users[1], "escrow:s", 10)
    assert await restored.worker(restored.backend, feed, tmp_path).settle_once() is not None
    assert await restored.drifts(feed) == []


def test_a_corrupt_snapshot_is_refused() -> None:
    with pytest.raises(ValueError):
        LiteSvmBackend.restore(b"not a snapshot")
    snapshot = LiteSvmBackend().snapshot()
    with pytest.raises(ValueError):
        LiteSvmBackend.restore(snapshot + b"\x00")


async def test_the_checkpoint_file_round_trips(tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "cp.json")
    assert await store.load() == Checkpoint()
    checkpoint = Checkpoint(position=42, chain_snapshot=b"\x01\x02")
    await store.save(checkpoint)
    assert await store.load() == checkpoint
    (tmp_path / "cp.json").write_text("{broken")
    with pytest.raises(ValueError, match="corrupt"):
        await store.load()


async def test_chain_snapshots_live_in_one_sidecar_named_by_their_hash(tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "cp.json")
    await store.save(Checkpoint(position=1, chain_snapshot=b"state one"))
    [first] = tmp_path.glob("cp.json.snapshot-*")
    written_at = first.stat().st_mtime_ns
    await store.save(Checkpoint(position=1, chain_snapshot=b"state one", last_blockhash=None))
    assert first.stat().st_mtime_ns == written_at  # the same snapshot is not written again
    await store.save(Checkpoint(position=2, chain_snapshot=b"state two"))
    [second] = tmp_path.glob("cp.json.snapshot-*")
    assert second != first and not first.exists()
    assert (await store.load()).chain_snapshot == b"state two"
    second.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="does not match"):
        await store.load()


async def test_the_embedded_chain_comes_back_from_its_store_on_start(tmp_path: Path) -> None:
    authority, keys = Keypair(), [Keypair(), Keypair()]
    treasury = TreasuryMultisig(2, tuple(k.pubkey() for k in keys))
    store = FileCursorStore(tmp_path / "cp.json")
    feed = MemoryFeed(GENESIS_BALANCES)
    user = f"user:{new_address()}"
    feed.transfer("treasury", user, 123)

    backend = await open_embedded_chain(store, authority, treasury, GENESIS_BALANCES)
    worker = SettlementWorker(backend, authority, keys, feed, store)
    await worker.start()
    assert await worker.settle_once() is not None

    # A new process: same store, nothing else.
    again = await open_embedded_chain(store, authority, treasury, GENESIS_BALANCES)
    layout = CustodyLayout(authority.pubkey())
    assert await reconcile(again, layout, feed.balances, SUPPLY) == []
    feed.transfer(user, "escrow:s", 23)
    assert await SettlementWorker(again, authority, keys, feed, store).settle_once() is not None
    assert await reconcile(again, layout, feed.balances, SUPPLY) == []


async def test_anchors_stay_readable_after_a_restore(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    feed.publish("m1", "t1", "remember me")
    [report] = await chain.worker(chain.backend, feed, tmp_path).settle_until_idle(5)
    restored = LiteSvmBackend.restore(chain.backend.snapshot())
    assert restored.svm.get_transaction(report.anchored.signature) is None  # LiteSVM's history is gone
    assert await read_anchor(restored, report.anchored.signature) == report.anchored.memo
