"""The RPC backend drives solana-py's real AsyncClient over loopback HTTP against a LiteSVM-backed server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chain_harness import FEE_PAYER_LAMPORTS, new_address
from loopback_cluster import BLOCKHASH_LIFETIME_BLOCKS, LoopbackCluster
from solders.keypair import Keypair

pytest.importorskip("solana")

from choir.chain import (
    GENESIS_BALANCES,
    SUPPLY,
    AnchorLog,
    BlockhashExpired,
    CustodyLayout,
    FileCursorStore,
    LiteSvmBackend,
    MemoryFeed,
    RetryPolicy,
    SettlementConfig,
    SettlementWorker,
    TransactionRejected,
    TransientChainError,
    TreasuryMultisig,
    ensure_genesis,
    read_anchor,
    reconcile,
)
from choir.chain.backend import TxStatus, land
from choir.chain.instructions import mint_to
from choir.chain.rpc_backend import RpcBackend
from choir.chain.wire import build_transaction

FAST = RetryPolicy(poll_interval_s=0.001, backoff_initial_s=0.001, polls_per_send_max=3)


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[LoopbackCluster, RpcBackend]]:
    server = LoopbackCluster(LiteSvmBackend())
    url = await server.start()
    rpc = RpcBackend.connect(url, timeout_s=5.0)
    yield server, rpc
    await rpc.close()
    await server.stop()


async def test_genesis_settlement_anchor_and_reconciliation_over_rpc(
    cluster: tuple[LoopbackCluster, RpcBackend], tmp_path: Path
) -> None:
    server, rpc = cluster
    authority = Keypair()
    server.svm.airdrop(authority.pubkey(), FEE_PAYER_LAMPORTS)
    keys = [Keypair(), Keypair()]
    await ensure_genesis(
        rpc, authority, TreasuryMultisig(2, tuple(k.pubkey() for k in keys)), GENESIS_BALANCES
    )

    feed = MemoryFeed(GENESIS_BALANCES)
    user = new_address()
    feed.set_co_authors("t1", [user])
    feed.publish("m1", "t1", "over the wire")
    feed.transfer("treasury", "thread:t1", 5)
    feed.transfer("pool:new_messages", f"user:{user}", 7)
    worker = SettlementWorker(
        rpc,
        authority,
        keys,
        feed,
        FileCursorStore(tmp_path / "cp.json"),
        config=SettlementConfig(retry=FAST),
        anchor_log=AnchorLog(tmp_path / "anchors.jsonl"),
    )
    report = await worker.settle_once()
    assert report is not None
    assert await reconcile(rpc, CustodyLayout(authority.pubkey()), feed.balances, SUPPLY) == []
    memo = await read_anchor(rpc, report.anchored.signature)
    assert memo == report.anchored.memo
    assert {"sendTransaction", "getSignatureStatuses", "getMultipleAccounts", "getTransaction"} <= set(
        server.methods
    )


async def test_rpc_failures_map_to_chain_errors(cluster: tuple[LoopbackCluster, RpcBackend]) -> None:
    server, rpc = cluster
    authority = Keypair()
    server.svm.airdrop(authority.pubkey(), FEE_PAYER_LAMPORTS)
    keys = [Keypair()]
    await ensure_genesis(rpc, authority, TreasuryMultisig(1, (keys[0].pubkey(),)), GENESIS_BALANCES)
    layout = CustodyLayout(authority.pubkey())

    # A transaction the program refuses fails preflight: rejected, with the program's error.
    recent = await rpc.latest_blockhash()
    mint_again = mint_to(layout.mint, layout.custody_address("treasury"), authority.pubkey(), 1)
    with pytest.raises(TransactionRejected, match="Custom"):
        await land(rpc, build_transaction(authority, [mint_again], recent.blockhash), recent, FAST)

    # Sending a landed transaction again is no error: the cluster processed it once, and says so.
    recent = await rpc.latest_blockhash()
    noop = build_transaction(authority, [], recent.blockhash)
    assert (await land(rpc, noop, recent, FAST)).ok
    assert await rpc.send_raw(noop) is None
    assert await rpc.statuses([noop.signature]) == [TxStatus(noop.signature)]

    # A transaction that never landed while its blockhash lived is reported expired, never resent blindly.
    recent = await rpc.latest_blockhash()
    server.advance(BLOCKHASH_LIFETIME_BLOCKS + 1)
    assert not await rpc.is_blockhash_valid(recent)
    memo_only = build_transaction(authority, [], recent.blockhash)
    with pytest.raises(BlockhashExpired):
        await land(rpc, memo_only, recent, FAST)


async def test_an_unreachable_cluster_is_a_transient_error() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rpc = RpcBackend.connect(f"http://127.0.0.1:{port}", timeout_s=1.0)
    try:
        with pytest.raises(TransientChainError):
            await rpc.latest_blockhash()
    finally:
        await rpc.close()
