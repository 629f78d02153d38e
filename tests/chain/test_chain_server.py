"""Chain settlement in the running server (CHOIR_CHAIN=litesvm): a thread's life over /ws settles on
LiteSVM, every message and ownership record is provable against the root read back from the chain,
a restart restores the chain from its snapshot and settles nothing twice, and `choir audit --chain`
passes on the store, then names a tampered co-author set.

The chain is read from the outside, as an auditor would: the checkpoint the server saved in the store
(with the LiteSVM snapshot taken after its last batch) and the anchored records in the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import shutil
import sqlite3
import stat
import struct
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from harness import Clock, Server, User, run_server
from solders.account import Account
from solders.keypair import Keypair
from solders.signature import Signature
from sqlalchemy import select
from typer.testing import CliRunner

from choir.chain import (
    SUPPLY,
    ChainError,
    CustodyLayout,
    LiteSvmBackend,
    MessageRecord,
    OwnershipRecord,
    RetryPolicy,
    SettlementConfig,
    SettlementHalted,
    read_anchor,
)
from choir.chain import reconcile as reconcile_chain
from choir.chain.audit_checks import find_chain_source
from choir.chain.cursor import Checkpoint
from choir.chain.keys import KEYS_FILE_MODE, ChainKeys, load_or_create_keys
from choir.chain.merkle import verify_proof
from choir.chain.service import ChainService, ChainServiceConfig
from choir.chain.sqlfeed import head_position
from choir.chain.sqlstate import SqlAnchorLog, SqlCursorStore, load_checkpoint
from choir.cli import app as cli
from choir.engine.coordinator import Coordinator
from choir.ledger import ONE_CHOIR
from choir.ops.audit import audit
from choir.program import CreateThread, Grant, PostMessage, SubmitSpec, Vote
from choir.store import schema
from choir.store.sql import Store, read_snapshot

CATCH_UP_TIMEOUT_S = 20.0
POLL_S = 0.05


@dataclass
class Settled:
    """The store and its chain at one moment when the chain had settled everything."""

    position: int
    checkpoint: Checkpoint
    balances: dict[str, int]

    def chain(self) -> LiteSvmBackend:
        assert self.checkpoint.chain_snapshot is not None
        return LiteSvmBackend.restore(self.checkpoint.chain_snapshot)


@dataclass
class Life:
    data_dir: Path
    chain_name: str
    layout: CustodyLayout
    thread_id: str
    co_authors: set[str]
    contents: dict[str, str] = field(default_factory=dict)  # message id -> content
    first: Settled | None = None
    after_restart: Settled | None = None
    anchors_before_restart: list[tuple[int, int]] = field(default_factory=list)


def wait_settled(url: str, chain_name: str) -> Settled:
    """Poll the store until the saved checkpoint covers every change, read in one snapshot."""
    store = Store(url)
    try:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while True:
            with read_snapshot(store.engine) as conn:
                head = head_position(conn)
                checkpoint = load_checkpoint(conn, chain_name)
                if checkpoint.position == head and checkpoint.in_flight is None:
                    b = schema.balances
                    balances = {a: int(v) for a, v in conn.execute(select(b.c.account, b.c.amount))}
                    return Settled(head, checkpoint, balances)
            assert time.monotonic() < deadline, f"settled {checkpoint.position} of {head}"
            time.sleep(POLL_S)
    finally:
        store.close()


def anchor_ranges(url: str, chain_name: str) -> list[tuple[int, int]]:
    store = Store(url)
    try:
        return [(a.memo.first, a.memo.through) for a in SqlAnchorLog(store.engine, chain_name).batches()]
    finally:
        store.close()


def read_keys(data_dir: Path) -> ChainKeys:
    path = data_dir / "chain" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == KEYS_FILE_MODE
    return ChainKeys.from_json(json.loads(path.read_text()))


async def thread_life(server: Server, clock: Clock) -> tuple[list[User], str, dict[str, str]]:
    """Posts, a spec approved with its stake split, one denied, a withdrawal, a divest, paid epochs."""
    alice, bob, carol = User(server), User(server), User(server)
    for user in (alice, bob, carol):
        await user.sign_in()  # each gets the welcome grant, out of the multisig treasury
    tid = (await alice.create_thread("Settled on chain"))["thread_id"]
    contents: dict[str, str] = {}
    async with alice.socket() as a, bob.socket() as b, carol.socket() as c:
        for text in ("Herons nest in tall trees.", "Glaciers carve U-shaped valleys."):
            ack = await a.request("post", {"thread_id": tid, "content": text})
            contents[ack["payload"]["message_id"]] = text
        joined = await b.request(
            "spec.submit", {"thread_id": tid, "content": "Owls fly silently.", "stake": str(2 * ONE_CHOIR)}
        )
        await a.request("spec.vote", {"spec_id": joined["payload"]["spec_id"], "approve": True})
        denied = await c.request(
            "spec.submit", {"thread_id": tid, "content": "Buy my course!", "stake": str(3 * ONE_CHOIR)}
        )
        for voter in (a, b):
            vote = await voter.request(
                "spec.vote", {"spec_id": denied["payload"]["spec_id"], "approve": False}
            )
            assert vote["type"] == "ack", vote
        withdrawn = await b.request("withdraw", {"amount": str(ONE_CHOIR)})
        assert withdrawn["type"] == "ack", withdrawn
        clock.advance(timedelta(days=8).total_seconds())  # past the divest lock; ended epochs get paid
        left = await b.request("thread.divest", {"thread_id": tid})
        assert left["type"] == "ack", left
        text = "Bees dance to show the way."
        ack = await a.request("post", {"thread_id": tid, "content": text})
        contents[ack["payload"]["message_id"]] = text
    async with alice.http() as http:
        for mid in (await http.get(f"/api/threads/{tid}/messages")).json()["messages"]:
            contents.setdefault(mid["message_id"], mid["content"])  # the approved spec's message
    return [alice, bob, carol], tid, contents


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Life]:
    data_dir = tmp_path_factory.mktemp("chain-server") / "data"
    url = f"sqlite:///{data_dir / 'choir.db'}"
    clock = Clock()
    with run_server(data_dir, clock=clock, chain="litesvm", sweep_interval_s=0.2) as server:
        users, tid, contents = asyncio.run(thread_life(server, clock))
        keys = read_keys(data_dir)
        name = f"litesvm:{keys.authority.pubkey()}"
        result = Life(data_dir, name, CustodyLayout(keys.authority.pubkey()), tid, {users[0].address})
        result.contents = contents
        result.first = wait_settled(url, name)
    result.anchors_before_restart = anchor_ranges(url, name)

    with run_server(data_dir, clock=clock, chain="litesvm", sweep_interval_s=0.2) as server:
        alice = User(server, key=users[0].key, cookie=users[0].cookie, address=users[0].address)

        async def after_restart() -> None:
            async with alice.socket() as a:
                text = "Tidal pools shelter anemones."
                ack = await a.request("post", {"thread_id": tid, "content": text})
                contents[ack["payload"]["message_id"]] = text

        asyncio.run(after_restart())
        result.after_restart = wait_settled(url, name)
    yield result


def test_every_mirrored_account_matches_the_ledger_once_the_worker_caught_up(life: Life) -> None:
    settled = life.first
    assert settled is not None
    accounts = settled.balances.keys()
    assert any(a.startswith("withdrawn:") for a in accounts)
    assert any(a.startswith("escrow:") for a in accounts)
    assert sum(1 for a in accounts if a.startswith("user:")) == 3
    drifts = asyncio.run(reconcile_chain(settled.chain(), life.layout, settled.balances, SUPPLY))
    assert drifts == []


def test_a_message_proof_verifies_against_the_root_read_back_from_the_chain(life: Life) -> None:
    assert life.after_restart is not None
    chain = life.after_restart.chain()
    store = Store(f"sqlite:///{life.data_dir / 'choir.db'}")
    try:
        anchors = SqlAnchorLog(store.engine, life.chain_name)
        assert len(life.contents) == 5
        for message_id, content in life.contents.items():
            proof = anchors.message_proof(message_id)
            # The leaf is rebuilt from the message alone, not taken from the server's proof.
            leaf = MessageRecord(message_id, life.thread_id, hashlib.sha256(content.encode()).digest()).leaf()
            assert proof.leaf == leaf
            memo = asyncio.run(read_anchor(chain, proof.signature))
            assert proof.proof.size == memo.leaves and verify_proof(memo.root, leaf, proof.proof)
            assert not verify_proof(memo.root, leaf + b"x", proof.proof)
        ownership = anchors.ownership_proof(life.thread_id)
        balance = life.after_restart.balances[f"thread:{life.thread_id}"]
        assert ownership.leaf == OwnershipRecord.of(life.thread_id, life.co_authors, balance).leaf()
        memo = asyncio.run(read_anchor(chain, ownership.signature))
        assert verify_proof(memo.root, ownership.leaf, ownership.proof)
    finally:
        store.close()


def test_a_restart_restores_the_chain_and_settles_nothing_twice(life: Life) -> None:
    before, after = life.first, life.after_restart
    assert before is not None and after is not None
    ranges = anchor_ranges(f"sqlite:///{life.data_dir / 'choir.db'}", life.chain_name)
    assert ranges[: len(life.anchors_before_restart)] == life.anchors_before_restart
    # Contiguous from position 1, each range once: a batch settled twice would repeat its positions.
    assert [first for first, _ in ranges] == [1] + [through + 1 for _, through in ranges[:-1]]
    assert ranges[-1][1] == after.position > before.position
    assert len(ranges) > len(life.anchors_before_restart)
    chain = after.chain()
    # Anchors of the first run are still on the restored chain: it is that chain, not a new one.
    assert asyncio.run(read_anchor(chain, anchor_signature(life, ranges[0][1]))).first == 1
    # Paying anything twice would leave the chain above the ledger somewhere.
    assert asyncio.run(reconcile_chain(chain, life.layout, after.balances, SUPPLY)) == []


def anchor_signature(life: Life, through: int) -> Signature:
    store = Store(f"sqlite:///{life.data_dir / 'choir.db'}")
    try:
        batch = next(
            b for b in SqlAnchorLog(store.engine, life.chain_name).batches() if b.memo.through == through
        )
        return batch.signature
    finally:
        store.close()


def test_choir_audit_chain_passes_then_names_a_tampered_co_author_set(life: Life, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "--chain", "--data-dir", str(life.data_dir)])
    assert result.exit_code == 0, result.output
    assert f"checked the chain {life.chain_name}" in result.output
    assert result.output.strip().endswith("audit passed")

    tampered = tmp_path / "data"
    tampered.mkdir()
    shutil.copytree(life.data_dir / "vectors", tampered / "vectors")
    with (
        closing(sqlite3.connect(life.data_dir / "choir.db")) as src,
        closing(sqlite3.connect(tampered / "choir.db")) as dst,
    ):
        src.backup(dst)
    intruder = "11111111111111111111111111111112"
    with closing(sqlite3.connect(tampered / "choir.db")) as conn, conn:
        members = json.dumps([[intruder, "2027-01-01T00:00:00+00:00"]])
        changed = conn.execute(
            "UPDATE threads SET members = ? WHERE thread_id = ?", (members, life.thread_id)
        )
        assert changed.rowcount == 1
    result = runner.invoke(cli, ["audit", "--chain", "--data-dir", str(tampered)])
    assert result.exit_code == 1, result.output
    coherence = [line for line in result.output.splitlines() if line.startswith("coherence: ")]
    assert any(
        f"thread {life.thread_id}: SQL co-authors {{{intruder}}}" in line
        and "anchored ownership record" in line
        for line in coherence
    ), result.output
    assert any(f"thread {life.thread_id}: co-authors differ" in line for line in coherence), result.output


# -- the settlement service itself, on a store the coordinator writes --------------------------

FAST = ChainServiceConfig(
    settlement=SettlementConfig(retry=RetryPolicy(poll_interval_s=0.001, backoff_initial_s=0.001)),
    coalesce_s=0.01,
    idle_wait_s=0.05,
    retry_wait_s=0.01,
)


def ledger_store(path: Path) -> tuple[Store, Coordinator, list[str]]:
    return ledger_store_at(f"sqlite:///{path}")


def ledger_store_at(url: str) -> tuple[Store, Coordinator, list[str]]:
    """A store whose coordinator has granted CHOIR to two people and seen a thread with a spec."""
    store = Store(url)
    coordinator = Coordinator.open(store)
    alice, bob = (str(Keypair().pubkey()) for _ in range(2))
    for who in (alice, bob):
        coordinator.execute(Grant(who, 10 * ONE_CHOIR, f"g-{who[:8]}"))
    coordinator.execute(CreateThread(alice, "t1", "A thread"))
    coordinator.execute(PostMessage(alice, "t1", "m1", "Herons nest in tall trees."))
    coordinator.execute(SubmitSpec(bob, "t1", "s1", "Owls fly silently.", 2 * ONE_CHOIR))
    coordinator.execute(Vote(alice, "s1", True))
    return store, coordinator, [alice, bob]


def with_chain_balance(snapshot: bytes, layout: CustodyLayout, name: str, amount: int) -> bytes:
    """The same chain with one custody account's token amount set (SPL layout: amount at 64..72)."""
    backend = LiteSvmBackend.restore(snapshot)
    address = layout.custody_address(name)
    account = backend.svm.get_account(address)
    assert account is not None
    data = bytearray(bytes(account.data))
    data[64:72] = struct.pack("<Q", amount)
    backend.svm.set_account(
        address, Account(account.lamports, bytes(data), account.owner, account.executable, account.rent_epoch)
    )
    return backend.snapshot()


async def test_the_live_service_reconciles_and_proves_against_its_own_chain(tmp_path: Path) -> None:
    store, coordinator, _ = ledger_store(tmp_path / "choir.db")
    service = ChainService(store.engine, "litesvm", ChainKeys.generate(), config=FAST)
    coordinator.feed.subscribe("chain", lambda _commit: service.wake())
    service.start()
    try:
        await service.wait_settled()
        coordinator.execute(
            PostMessage(coordinator.state.threads["t1"].co_authors[1], "t1", "m2", "Bees dance.")
        )
        settled = await service.wait_settled()
        assert service.status().state == "running" and service.status().settled_through == settled
        assert await service.reconcile() == []
        proof = await service.message_proof("m2")
        assert await service.verify(proof)
        assert not await service.verify(dataclasses.replace(proof, leaf=proof.leaf[:-1] + b"\x00"))
        ownership = await service.ownership_proof("t1")
        assert await service.verify(ownership)
        with pytest.raises(LookupError):
            await service.message_proof("no-such-message")
    finally:
        await service.stop()
    assert service.status().state == "stopped"
    with pytest.raises(ChainError):
        await service.reconcile()
    store.close()


async def test_a_batch_that_fails_on_chain_halts_settlement_and_keeps_its_journal(tmp_path: Path) -> None:
    store, coordinator, (alice, bob) = ledger_store(tmp_path / "choir.db")
    keys = ChainKeys.generate()
    first = ChainService(store.engine, "litesvm", keys, config=FAST)
    first.start()
    await first.wait_settled()
    await first.stop()
    # The chain loses bob's CHOIR behind the worker's back: his next stake cannot be paid on chain.
    cursor = SqlCursorStore(store.engine, first.name)
    checkpoint = await cursor.load()
    assert checkpoint.chain_snapshot is not None
    await cursor.save(
        checkpoint.with_snapshot(
            with_chain_balance(checkpoint.chain_snapshot, first.layout, f"user:{bob}", 0)
        )
    )
    coordinator.execute(CreateThread(alice, "t2", "Another"))
    coordinator.execute(SubmitSpec(bob, "t2", "s2", "Let me in.", ONE_CHOIR))

    second = ChainService(store.engine, "litesvm", keys, config=FAST)
    second.start()
    try:
        with pytest.raises(SettlementHalted):
            await second.wait_settled()
        status = second.status()
        assert status.state == "halted" and status.error is not None and "failed on chain" in status.error
        assert status.settled_through == checkpoint.position
    finally:
        await second.stop()
    assert second.status().state == "halted"
    kept = await cursor.load()
    assert kept.position == checkpoint.position and kept.in_flight is not None
    store.close()


async def test_settlement_over_rpc_has_the_same_interface(tmp_path: Path) -> None:
    pytest.importorskip("solana")
    from loopback_cluster import LoopbackCluster

    store, _, _ = ledger_store(tmp_path / "choir.db")
    cluster = LoopbackCluster(LiteSvmBackend())
    url = await cluster.start()
    keys = ChainKeys.generate()
    cluster.svm.airdrop(keys.authority.pubkey(), 10**12)  # the operator funds the custody authority
    service = ChainService(store.engine, "rpc", keys, rpc_url=url, config=FAST)
    service.start()
    try:
        await service.wait_settled()
        assert service.name.startswith("rpc:")
        assert await service.reconcile() == []
        assert await service.verify(await service.message_proof("m1"))
        source = find_chain_source(store, "rpc", url)
        report = await asyncio.to_thread(audit, store, None, source)
        assert report.ok, report.lines()
        assert report.chain_checked == service.name
    finally:
        await service.stop()
        await cluster.stop()
    store.close()


def test_rpc_without_a_url_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ChainError, match="CHOIR_SOLANA_RPC_URL"):
        ChainService(Store("sqlite://").engine, "rpc", ChainKeys.generate())


def test_the_keys_are_made_once_private_and_a_readable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chain" / "keys.json"
    made = load_or_create_keys(path)
    assert stat.S_IMODE(path.stat().st_mode) == KEYS_FILE_MODE
    again = load_or_create_keys(path)
    assert again.authority == made.authority and again.treasury_signers == made.treasury_signers
    assert again.multisig.threshold == 2 and len(again.signing) == 2
    path.chmod(0o644)
    with pytest.raises(ChainError, match="chmod 600"):
        load_or_create_keys(path)


async def test_on_postgresql_one_process_settles_and_another_takes_over(postgres_url: str) -> None:
    store, coordinator, (alice, _) = ledger_store_at(postgres_url)
    keys = ChainKeys.generate()
    first, second = (ChainService(store.engine, "litesvm", keys, config=FAST) for _ in range(2))
    first.start()
    await first.wait_settled()
    second.start()
    try:
        await asyncio.sleep(0.2)
        assert second.status().state == "standby"  # the settlement lock is the first one's
        await first.stop()
        coordinator.execute(PostMessage(alice, "t1", "m9", "Mushrooms spread through mycelium."))
        await second.wait_settled()
        assert second.status().state == "running"
        assert await second.reconcile() == []
        assert await second.verify(await second.message_proof("m9"))
    finally:
        await second.stop()
        store.close()
